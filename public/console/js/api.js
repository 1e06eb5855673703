import { send } from './http.js'
import { accessToken, forget, refresh } from './session.js'

const EXPIRED = new Set(['TOKEN_EXPIRED', 'INVALID_TOKEN', 'UNAUTHORIZED'])

/**
 * A call to the JSON API as the signed-in user; an expired access token is renewed once. A
 * session ended elsewhere (another browser, a password change) signs this page out.
 */
export async function api (method, path, body) {
  const call = () => send(method, path, { body, headers: { authorization: 'Bearer ' + accessToken() } })
  try {
    return await call()
  } catch (err) {
    if (err.status !== 401) throw err
    if (!EXPIRED.has(err.code)) { forget(err); throw err }
    try {
      await refresh()
    } catch (failed) {
      if (failed.status === 401) forget(failed)
      throw failed
    }
    return call()
  }
}

/** A query string from the set values of an object. */
export function query (params) {
  const entries = Object.entries(params).filter(([, v]) => v !== '' && v !== null && v !== undefined)
  return entries.length === 0 ? '' : '?' + new URLSearchParams(entries).toString()
}
