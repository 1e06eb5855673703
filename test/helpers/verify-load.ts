import assert from 'node:assert/strict'
import autocannon from 'autocannon'

/** POSTs JSON to a running server and returns the answer's body; anything but a 2xx fails the test. */
export async function call (url: string, path: string, body: unknown, token?: string) {
  const res = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body)
  })
  const json = await res.json() as Record<string, unknown>
  assert.ok(res.status < 300, `${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** Verify traffic for `seconds` over `connections` connections, with its latency and its failures. */
export async function verifyLoad (url: string, root: string, key: string, seconds: number, connections: number) {
  const result = await autocannon({
    url: `${url}/api/keys/verify`,
    method: 'POST',
    headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
    body: JSON.stringify({ key }),
    connections,
    duration: seconds
  })
  const unexpected = Object.entries(result.statusCodeStats ?? {}).filter(([code]) => code !== '200').reduce((s, [, v]) => s + (v as { count: number }).count, 0)
  return { requests: result.requests.total, rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.timeouts, unexpected }
}
