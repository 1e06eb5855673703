import { ApiError } from './errors.js'

/** One JSON request; an error body becomes an ApiError, a lost connection too. */
export async function send (method, path, { body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin', cache: 'no-store' }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let res
  try {
    res = await fetch(path, init)
  } catch {
    throw new ApiError(0, { code: 'NETWORK', message: 'The request did not reach Keyward; check the connection and try again.' }, 0)
  }
  if (res.status === 204) return null
  const text = await res.text()
  let data = null
  try { data = text === '' ? null : JSON.parse(text) } catch { data = null }
  if (!res.ok) {
    const fallback = { code: 'HTTP_' + res.status, message: `The server answered ${res.status}` }
    throw new ApiError(res.status, data !== null && typeof data === 'object' ? data : fallback, Number(res.headers.get('retry-after') ?? 0))
  }
  return data
}
