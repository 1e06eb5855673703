import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Queue } from 'bullmq'
import { bullConnection, MAINTENANCE_QUEUE } from '../../jobs/queue.ts'
import { generateKey } from '../../plugins/app/keys/format.ts'
import { verifySignature } from '../../plugins/app/notifications/webhooks.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.ts'
import { onScopeEnd, suiteScope } from '../helpers/scope.ts'
import { startReceiver, startServer, type RunningServer } from '../helpers/server.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

/** A secret of this run: recognisable, random, long enough that a hit is never a coincidence. */
const fresh = (label: string) => `${label}-${randomBytes(12).toString('base64url')}`

/** The forms a secret could take in text: as sent, base64-encoded (Basic auth, blobs) and URL-encoded. */
function forms (secret: string): string[] {
  return [...new Set([secret, Buffer.from(secret).toString('base64'), Buffer.from(secret).toString('base64url'), encodeURIComponent(secret)])]
}

/** Where each secret was found: `place: secret…` for every hit. */
function search (secrets: Iterable<string>, places: Record<string, string | Buffer>): string[] {
  const hits: string[] = []
  for (const secret of secrets) {
    for (const [place, haystack] of Object.entries(places)) {
      const found = typeof haystack === 'string'
        ? forms(secret).some((f) => haystack.includes(f))
        : haystack.includes(Buffer.from(secret, 'utf8'))
      if (found) hits.push(`${place}: ${secret.slice(0, 10)}…`)
    }
  }
  return hits
}

/** Every key under the prefix with its value, whatever its type. */
async function dumpRedis (prefix: string): Promise<{ text: string, entries: number, types: Record<string, number> }> {
  const redis = redisClient()
  const parts: string[] = []
  const types: Record<string, number> = {}
  let entries = 0
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      for (const key of keys) {
        const type = await redis.type(key)
        types[type] = (types[type] ?? 0) + 1
        let value: unknown
        switch (type) {
          case 'string': value = (await redis.getBuffer(key))?.toString('utf8'); break
          case 'hash': value = await redis.hgetall(key); break
          case 'list': value = await redis.lrange(key, 0, -1); break
          case 'set': value = await redis.smembers(key); break
          case 'zset': value = await redis.zrange(key, 0, -1, 'WITHSCORES'); break
          case 'stream': value = await redis.xrange(key, '-', '+'); break
          case 'none': continue // expired between SCAN and TYPE
          default: assert.fail(`Redis key ${key} has a type the search cannot read: ${type}`)
        }
        entries++
        parts.push(key, typeof value === 'string' ? value : JSON.stringify(value))
      }
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
  return { text: parts.join('\n'), entries, types }
}

interface Answer { status: number, body: string, json: any }

/** Everything gathered once the run is over: where a secret could have ended up. */
interface Material {
  live: Record<string, Buffer>
  stopped: Record<string, Buffer>
  redis: Awaited<ReturnType<typeof dumpRedis>>
  logLines: string[]
  logs: string
}

describe('no secret the run created or sent reaches a log line, a metric, Redis, the SQLite files, an error body, the audit trail or the export', () => {
  const suite = suiteScope()
  const metricsToken = fresh('metrics-token')
  const alertSecret = fresh('alert-signing')
  const secrets = new Set<string>([TEST_SECRETS.JWT_SECRET, TEST_SECRETS.KEY_HASH_SECRET, metricsToken, alertSecret])
  const keep = (...values: string[]) => { for (const v of values) { assert.ok(v.length >= 12, `too short to search: ${v}`); secrets.add(v) } return values[0] as string }
  const prefix = testPrefix('secrets')
  let dataDir: string
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  let maintenance: Queue
  let server: RunningServer
  let worker: RunningServer
  let subscriber: ReturnType<typeof redisClient>
  const published: string[] = []

  const errorBodies: string[] = []
  const headerTexts: string[] = []
  let requests = 0
  async function call (method: string, path: string, options: { body?: unknown, raw?: string, token?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
    requests++
    const headers: Record<string, string> = { ...options.headers }
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
    let body: string | undefined
    if (options.raw !== undefined) body = options.raw
    else if (options.body !== undefined) body = JSON.stringify(options.body)
    if (body !== undefined) headers['content-type'] ??= 'application/json'
    const res = await fetch(server.url + path, { method, headers, body })
    const text = await res.text()
    const headerText: string[] = []
    res.headers.forEach((value, name) => { headerText.push(`${name}: ${value}`) })
    headerTexts.push(headerText.join('\n'))
    if (res.status >= 400) errorBodies.push(text)
    let json: unknown = null
    try { json = JSON.parse(text) } catch {}
    return { status: res.status, body: text, json }
  }
  const expect = async (status: number, answer: Promise<Answer>) => {
    const res = await answer
    assert.equal(res.status, status, res.body)
    return res.json
  }

  before(async () => {
    dataDir = await testDir(suite, 'secrets')
    onScopeEnd(suite, () => dropPrefix(prefix))
    receiver = await startReceiver()
    onScopeEnd(suite, receiver.close)

    // Capture cache invalidations as they cross Redis pub/sub: messages are never stored, so a
    // secret in one would escape the key scan.
    subscriber = redisClient()
    onScopeEnd(suite, () => subscriber.disconnect())
    subscriber.on('message', (_channel: string, message: string) => { published.push(message) })
    await subscriber.subscribe(`${prefix}cache-invalidate`)

    const env = {
      DATA_DIR: dataDir,
      LOG_LEVEL: 'trace',
      LOG_REQUESTS: 'true',
      REDIS_URL,
      REDIS_PREFIX: prefix,
      METRICS_TOKEN: metricsToken,
      ALERT_WEBHOOK_SECRET: alertSecret,
      PASSWORD_HASH_COST: '10',
      VAULT_KDF_COST: '10',
      AUTH_RATE_LIMIT_MAX: '10000',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      USAGE_FLUSH_INTERVAL_MS: '200'
    }
    maintenance = new Queue(MAINTENANCE_QUEUE, { connection: bullConnection(REDIS_URL), prefix: `${prefix}bull` })
    onScopeEnd(suite, () => maintenance.close())
    server = await startServer(env)
    onScopeEnd(suite, () => server.stop('SIGKILL'))
    worker = await startServer(env, 'worker.ts', /"msg":"worker ready"()/)
    onScopeEnd(suite, () => worker.stop('SIGKILL'))
  })

  // What the steps create and the later ones use.
  let alice: any
  let bob: any
  let bobPassword: string
  let token: string
  let refreshed: any
  let newPassword: string
  let passphrase2: string
  let held: { id: string }
  let hookUrl: string
  let signingSecret: string
  let metrics: string
  let exported: string
  const audit: string[] = []
  let material: Material

  it('accounts: passwords, token pairs, wrong passwords, refresh rotation and reuse', async () => {
    const alicePassword = keep(fresh('alice password'))
    bobPassword = keep(fresh('bob password'))
    alice = await expect(201, call('POST', '/api/auth/register', { body: { email: 'alice@example.com', password: alicePassword, name: 'Alice' } }))
    bob = await expect(201, call('POST', '/api/auth/register', { body: { email: 'bob@example.com', password: bobPassword } }))
    keep(alice.accessToken, alice.refreshToken, bob.accessToken, bob.refreshToken)
    token = alice.accessToken as string
    await expect(401, call('POST', '/api/auth/login', { body: { email: 'alice@example.com', password: keep(fresh('wrong password')) } }))
    await expect(401, call('POST', '/api/auth/login', { body: { email: 'nobody@example.com', password: keep(fresh('unknown user password')) } }))
    const second = await expect(200, call('POST', '/api/auth/login', { body: { email: 'alice@example.com', password: alicePassword } }))
    keep(second.accessToken, second.refreshToken)
    refreshed = await expect(200, call('POST', '/api/auth/refresh', { body: { refreshToken: second.refreshToken } }))
    keep(refreshed.accessToken, refreshed.refreshToken)
    await expect(401, call('POST', '/api/auth/refresh', { body: { refreshToken: second.refreshToken } }))
    await expect(401, call('POST', '/api/auth/refresh', { body: { refreshToken: keep('rt_' + randomBytes(32).toString('base64url')) } }))
    newPassword = keep(fresh('alice new password'))
    await expect(403, call('POST', '/api/auth/change-password', { token, body: { currentPassword: keep(fresh('not the current one')), newPassword: keep(fresh('never applied')) } }))
    await expect(204, call('POST', '/api/auth/change-password', { token, body: { currentPassword: alicePassword, newPassword } }))
  })

  // Issued keys the verification step checks.
  let issued: any
  let rotated: any
  let verifier: any
  let expiring: any
  const bulk: Array<{ id: string, secret: string }> = []

  it('the vault: passphrases, held secrets, issued keys (plain, recoverable, verify-scoped), rotation, reveal', async () => {
    const passphrase = keep(fresh('first vault passphrase'))
    passphrase2 = keep(fresh('second vault passphrase'))
    await expect(200, call('PUT', '/api/vault/passphrase', { token, body: { passphrase } }))
    await expect(403, call('PUT', '/api/vault/passphrase', { token, body: { currentPassphrase: keep(fresh('wrong current passphrase')), passphrase: keep(fresh('rejected passphrase')) } }))
    await expect(200, call('PUT', '/api/vault/passphrase', { token, body: { currentPassphrase: passphrase, passphrase: passphrase2 } }))

    const held1 = keep(fresh('sk_live_held'))
    const held2 = keep(fresh('sk_live_held_rotated'))
    held = (await expect(201, call('POST', '/api/keys', { token, body: { kind: 'held', name: 'payments provider', secret: held1, passphrase: passphrase2 } }))).key
    await expect(200, call('POST', `/api/keys/${held.id}/rotate`, { token, body: { secret: held2, passphrase: passphrase2 } }))
    assert.equal((await expect(200, call('POST', `/api/keys/${held.id}/reveal`, { token, body: { passphrase: passphrase2 } }))).secret, held2)
    assert.equal((await expect(200, call('POST', `/api/keys/${held.id}/reveal`, { token, body: { passphrase: passphrase2, version: 1 } }))).secret, held1)
    await expect(403, call('POST', `/api/keys/${held.id}/reveal`, { token, body: { passphrase: keep(fresh('wrong reveal passphrase')) } }))
    await expect(403, call('POST', `/api/keys/${held.id}/rotate`, { token, body: { secret: keep(fresh('sk_never_stored')), passphrase: keep(fresh('wrong rotate passphrase')) } }))

    issued = await expect(201, call('POST', '/api/keys', { token, body: { kind: 'issued', name: 'backend client', monthlyLimit: 1000 } }))
    rotated = await expect(200, call('POST', `/api/keys/${issued.key.id}/rotate`, { token, body: { gracePeriodSeconds: 0 } }))
    const recoverable = await expect(201, call('POST', '/api/keys', { token, body: { kind: 'issued', name: 'recoverable', recoverable: true, passphrase: passphrase2 } }))
    assert.equal((await expect(200, call('POST', `/api/keys/${recoverable.key.id}/reveal`, { token, body: { passphrase: passphrase2 } }))).secret, recoverable.secret)
    verifier = await expect(201, call('POST', '/api/keys', { token, body: { kind: 'issued', name: 'verifier', scopes: ['keyward:verify'] } }))
    expiring = await expect(201, call('POST', '/api/keys', { token, body: { kind: 'issued', name: 'short lived', expiresAt: new Date(Date.now() + 1500).toISOString() } }))
    const expiringSoon = await expect(201, call('POST', '/api/keys', { token, body: { kind: 'issued', name: 'expires in 3 days', expiresAt: new Date(Date.now() + 3 * 86_400_000).toISOString() } }))
    keep(issued.secret, rotated.secret, recoverable.secret, verifier.secret, expiring.secret, expiringSoon.secret)
    for (let i = 0; i < 3; i++) {
      const created = await expect(201, call('POST', '/api/keys', { token, body: { kind: 'issued', name: `bulk ${i}` } }))
      bulk.push({ id: created.key.id, secret: keep(created.secret) })
    }
    await expect(200, call('POST', '/api/keys/bulk', { token, body: { action: 'disable', ids: [bulk[0]!.id] } }))
    await expect(200, call('POST', '/api/keys/bulk', { token, body: { action: 'revoke', ids: [bulk[1]!.id, bulk[2]!.id] } }))
  })

  it('verification: valid, rotated out, revoked, disabled, expired, unknown, malformed, and a verify key as caller', async () => {
    const verify = async (key: string, caller = token) => (await expect(200, call('POST', '/api/keys/verify', { token: caller, body: { key } }))).code
    assert.equal(await verify(rotated.secret), 'VALID')
    assert.equal(await verify(rotated.secret, verifier.secret), 'VALID')
    assert.equal(await verify(issued.secret), 'EXPIRED')
    assert.equal(await verify(bulk[0]!.secret), 'DISABLED')
    assert.equal(await verify(bulk[2]!.secret), 'REVOKED')
    assert.equal(await verify(keep(generateKey('kw_').secret)), 'NOT_FOUND')
    assert.equal(await verify(keep(fresh('kw_malformed'))), 'MALFORMED')
    await sleep(Date.parse(expiring.key.expiresAt) - Date.now() + 100) // the short-lived key's lifetime runs out
    assert.equal(await verify(expiring.secret), 'EXPIRED')
    await expect(401, call('POST', '/api/keys/verify', { token: keep(generateKey('kw_').secret), body: { key: rotated.secret } }))
    await expect(400, call('POST', '/api/keys/verify', { token: bob.accessToken, body: { key: keep(fresh('kw_in_a_bad_body')), extra: true } }))
  })

  it('bodies that fail carry secrets too: unknown fields, bad JSON, wrong types, a body over the limit', async () => {
    await expect(400, call('POST', '/api/keys', { token, body: { kind: 'held', name: 'x', secret: keep(fresh('sk_in_invalid_body')), passphrase: passphrase2, extra: 1 } }))
    await expect(400, call('POST', '/api/auth/login', { raw: `{"email":"alice@example.com","password":"${keep(fresh('password in broken json'))}"` }))
    await expect(400, call('POST', '/api/auth/register', { body: { email: 'not-an-email', password: keep(fresh('password with bad email')) } }))
    await expect(400, call('PUT', '/api/vault/passphrase', { token, body: { passphrase: keep(fresh('passphrase with extra field')), bogus: true } }))
    await expect(413, call('POST', '/api/keys', { token, raw: JSON.stringify({ kind: 'held', name: 'x', secret: keep(fresh('sk_in_oversized_body')), pad: 'x'.repeat(1_100_000) }) }))
    await expect(400, call('POST', `/api/keys/${held.id}/reveal`, { token, body: { passphrase: keep(fresh('reveal passphrase typed wrong')), version: 'one' } }))
  })

  it('webhook signing secrets: given, generated, and one refused with its URL', async () => {
    hookUrl = receiver.url
    await expect(200, call('PUT', '/api/auth/me/webhook', { token, body: { url: hookUrl, secret: keep(fresh('whsec_given')) } }))
    const generated = await expect(200, call('PUT', '/api/auth/me/webhook', { token, body: { url: hookUrl } }))
    signingSecret = keep(generated.secret)
    await expect(400, call('PUT', '/api/auth/me/webhook', { token, body: { url: 'ftp://files.example.com/', secret: keep(fresh('whsec_refused')) } }))
  })

  it('a maintenance job in the worker process notifies the expiring key; the delivery is signed with the secret', async () => {
    const deliveries = receiver.received
    await maintenance.add('key-expiration', {})
    await until(() => deliveries.length >= 1, 20_000, 'the worker delivered a webhook', 100)
    assert.ok(deliveries.some((d) => verifySignature(signingSecret, d.body, d.signature, Math.floor(Date.now() / 1000))), 'signed with the generated secret')
  })

  it('usage, metrics (with a wrong token too), audit, export, sessions, logout, and Bob\'s account deletion', async () => {
    await expect(201, call('POST', `/api/keys/${held.id}/usage`, { token, headers: { 'idempotency-key': 'usage-1' }, body: { count: 3 } }))
    await expect(401, call('GET', '/metrics', { token: keep(fresh('wrong metrics token')) }))
    metrics = (await call('GET', '/metrics', { token: metricsToken })).body
    assert.match(metrics, /keyward_http_request_duration_seconds_count/)
    let cursor: string | null = null
    do {
      const page: { items: unknown[], nextCursor: string | null } = await expect(200, call('GET', `/api/audit?limit=100${cursor === null ? '' : `&cursor=${cursor}`}`, { token }))
      audit.push(JSON.stringify(page.items))
      cursor = page.nextCursor
    } while (cursor !== null)
    assert.equal((await expect(200, call('GET', '/api/audit/verify', { token }))).valid, true)
    exported = (await call('GET', '/api/auth/me/export', { token })).body
    assert.ok(exported.includes(held.id) && exported.includes('auth.password_changed'), 'the export holds the keys and the audit trail')
    await expect(200, call('GET', '/api/auth/sessions', { token }))
    const third = await expect(200, call('POST', '/api/auth/login', { body: { email: 'alice@example.com', password: newPassword } }))
    keep(third.accessToken, third.refreshToken)
    await expect(204, call('POST', '/api/auth/logout', { token: third.accessToken }))
    await expect(401, call('GET', '/api/auth/me', { token: refreshed.accessToken }))
    await expect(403, call('DELETE', '/api/auth/me', { token: bob.accessToken, body: { password: keep(fresh('bob wrong password')) } }))
    await expect(204, call('DELETE', '/api/auth/me', { token: bob.accessToken, body: { password: bobPassword } }))
  })

  it('the server and the worker stop cleanly, leaving logs, Redis and the SQLite files to search', async () => {
    // The two VALID verifications are metered: wait for the usage flush to write them.
    let metered = 0
    await until(async () => {
      metered = (await expect(200, call('GET', `/api/keys/${issued.key.id}/usage`, { token }))).total.requests
      return metered === 2
    }, 5000, () => `the verifications' usage reaches the store (${metered} of 2)`, 100)
    const dbFiles = async () => {
      const out: Record<string, Buffer> = {}
      for (const suffix of ['', '-wal', '-shm']) {
        try { out[`keyward.db${suffix}`] = await readFile(join(dataDir, `keyward.db${suffix}`)) } catch {}
      }
      return out
    }
    const live = await dbFiles()
    const redis = await dumpRedis(prefix)
    await subscriber.unsubscribe()
    assert.equal(await server.stop(), 0)
    assert.equal(await worker.stop(), 0)
    const logLines = [...server.output, ...worker.output]
    material = { live, stopped: await dbFiles(), redis, logLines, logs: logLines.join('\n') }
  })

  it('the search must be able to fail, and must have looked at real material', async () => {
    const { live, redis, logLines, logs } = material
    assert.ok(logLines.length > requests, `${logLines.length} log lines for ${requests} requests`)
    assert.ok(logLines.some((l) => l.includes('"msg":"incoming request"')) && logLines.some((l) => l.includes('"msg":"request completed"')), 'request logs are on')
    assert.ok(logLines.some((l) => l.includes('"msg":"request failed"') || l.includes('"code":"INVALID_CREDENTIALS"')), 'error paths were logged')
    if (process.env.SECRETS_DUMP !== undefined) await writeFile(process.env.SECRETS_DUMP, logs)
    assert.ok(redis.entries > 0 && (redis.types.string ?? 0) > 0 && (redis.types.hash ?? 0) > 0, `Redis holds the run's cache, limits and queues: ${JSON.stringify(redis.types)}`)
    assert.ok(published.length > 0, 'invalidations crossed pub/sub')
    assert.ok(errorBodies.length >= 15, `${errorBodies.length} error bodies`)
    assert.ok((live['keyward.db']?.length ?? 0) > 0)
    const planted = [...secrets][5] as string
    assert.deepEqual(search([planted], { logs: logs + `\n{"msg":"oops","secret":"${planted}"}` }), [`logs: ${planted.slice(0, 10)}…`], 'a planted secret is found in text')
    assert.equal(search([planted], { db: Buffer.concat([live['keyward.db']!, Buffer.from(planted)]) }).length, 1, 'a planted secret is found in bytes')
    assert.equal(search([planted], { logs: `auth ${Buffer.from(planted).toString('base64')}` }).length, 1, 'an encoded secret is found too')
  })

  it('finds none of them anywhere', () => {
    const { live, stopped, redis, logLines, logs } = material
    const hits = search(secrets, {
      logs,
      metrics,
      redis: redis.text,
      pubsub: published.join('\n'),
      'error bodies': errorBodies.join('\n'),
      'response headers': headerTexts.join('\n'),
      audit: audit.join('\n'),
      export: exported,
      ...Object.fromEntries(Object.entries(live).map(([name, bytes]) => [`${name} (running)`, bytes])),
      ...Object.fromEntries(Object.entries(stopped).map(([name, bytes]) => [`${name} (stopped)`, bytes]))
    })
    const dbBytes = Object.values(live).concat(Object.values(stopped)).reduce((n, b) => n + b.length, 0)
    console.log(`secrets: ${secrets.size} secrets searched in ${logLines.length} log lines, ${redis.entries} redis entries (${Object.entries(redis.types).map(([k, v]) => `${v} ${k}`).join(', ')}), ${published.length} pub/sub messages, ${metrics.split('\n').length} metric lines, ${errorBodies.length} error bodies, ${audit.join('').length + exported.length} audit/export bytes, ${dbBytes} DB bytes; ${hits.length} found`)
    assert.deepEqual(hits, [])
  })
})
