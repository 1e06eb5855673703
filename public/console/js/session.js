// The console's sign-in, in one place. The access token lives in this module's memory only,
// never in localStorage or sessionStorage; staying signed in across reloads is the HttpOnly
// refresh cookie's job, which page scripts cannot read.
import { send } from './http.js'

const BASE = '/api/auth/console'
let access = null
let refreshTimer = null
let csrfToken = null
let endedBy = null
const listeners = new Set()

export function accessToken () { return access === null ? null : access.token }
export function currentUser () { return access === null ? null : access.user }
export function onSessionChange (listener) { listeners.add(listener); return () => listeners.delete(listener) }
/** Why the session ended without the person signing out here (for the sign-in page), or null. */
export function endedReason () { return endedBy }

function settle (answer, reason = null) {
  clearTimeout(refreshTimer)
  endedBy = reason
  access = answer === null ? null : { token: answer.accessToken, user: answer.user }
  if (answer !== null) {
    // A minute before the access token expires (never sooner than 10 s from now).
    const inMs = Math.max(10, answer.expiresIn - 60) * 1000
    refreshTimer = setTimeout(() => { refresh().catch((err) => settle(null, err.text ?? null)) }, inMs)
  }
  for (const listener of listeners) listener(currentUser())
  return currentUser()
}

async function csrf (renew) {
  if (csrfToken === null || renew) csrfToken = (await send('GET', `${BASE}/csrf`)).csrfToken
  return csrfToken
}

/** A POST to a cookie-authenticated route, with the CSRF token; a stale token is fetched again once. */
async function post (path, body) {
  try {
    return await send('POST', `${BASE}${path}`, { body, headers: { 'x-csrf-token': await csrf(false) } })
  } catch (err) {
    if (err.code !== 'CSRF_INVALID') throw err
    return send('POST', `${BASE}${path}`, { body, headers: { 'x-csrf-token': await csrf(true) } })
  }
}

export async function signUp ({ email, password, name }) {
  return settle(await post('/register', name ? { email, password, name } : { email, password }))
}

export async function signIn ({ email, password }) {
  return settle(await post('/login', { email, password }))
}

/**
 * Refreshes take turns across this origin's tabs: two tabs presenting the same single-use cookie
 * at once would read as token reuse and end the session; the second now sends the rotated cookie.
 */
function oneTabAtATime (task) {
  return navigator.locks === undefined ? task() : navigator.locks.request('keyward-console-refresh', task)
}

/** At load and before the access token expires: the refresh cookie buys a new one (401 when signed out). */
export async function refresh () {
  return settle(await oneTabAtATime(() => post('/refresh', {})))
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

/** The server has ended this session already: the account was deleted, or `reason` (an API error) says so. */
export function forget (reason) { settle(null, reason?.text ?? null) }
