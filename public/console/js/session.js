// The console's sign-in, in one place. The access token lives in this module's memory only,
// never in localStorage or sessionStorage; staying signed in across reloads is the HttpOnly
// refresh cookie's job, which page scripts cannot read.
import { send } from './http.js'

let access = null
let refreshTimer = null
const listeners = new Set()

export function accessToken () { return access === null ? null : access.token }
export function currentUser () { return access === null ? null : access.user }
export function onSessionChange (listener) { listeners.add(listener); return () => listeners.delete(listener) }

function settle (answer) {
  clearTimeout(refreshTimer)
  access = answer === null ? null : { token: answer.accessToken, user: answer.user }
  if (answer !== null) {
    // A minute before the access token expires (never sooner than 10 s from now).
    const inMs = Math.max(10, answer.expiresIn - 60) * 1000
    refreshTimer = setTimeout(() => { refresh().catch(() => settle(null)) }, inMs)
  }
  for (const listener of listeners) listener(currentUser())
  return currentUser()
}

// TEMPORARY bearer transport until the refresh-cookie routes land.
let refreshToken = null
async function post (path, body) {
  const map = { '/register': '/api/auth/register', '/login': '/api/auth/login', '/refresh': '/api/auth/refresh' }
  if (path === '/logout') {
    if (access !== null) await send('POST', body.everywhere ? '/api/auth/logout-all' : '/api/auth/logout', { headers: { authorization: 'Bearer ' + access.token } })
    return null
  }
  if (path === '/refresh') {
    if (refreshToken === null) throw Object.assign(new Error('no'), { status: 401 })
    body = { refreshToken }
  }
  const answer = await send('POST', map[path], { body })
  refreshToken = answer.refreshToken
  return answer
}

export async function signUp ({ email, password, name }) {
  return settle(await post('/register', name ? { email, password, name } : { email, password }))
}

export async function signIn ({ email, password }) {
  return settle(await post('/login', { email, password }))
}

/** At load and before the access token expires: the refresh cookie buys a new one (401 when signed out). */
export async function refresh () {
  return settle(await post('/refresh', {}))
}

/** Restores the session at load; null when there is none. */
export async function restore () {
  try {
    return await refresh()
  } catch (err) {
    if (err.status === 401) return settle(null)
    throw err
  }
}

export async function signOut (everywhere = false) {
  try {
    await post('/logout', { everywhere })
  } finally {
    settle(null)
  }
}

/** After the account is deleted the server has ended every session already. */
export function forget () { settle(null) }
