/// <reference lib="dom" />
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Browser, BrowserContext, Page, Request } from 'playwright-core'
import { launchChromium, skipWithoutChromium } from '../helpers/browser.ts'
import { runToExit, startServer, type RunningServer } from '../helpers/server.ts'
import { testStoreEnv } from '../helpers/store-env.ts'
import { tempDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

const ARTIFACTS = new URL('../artifacts/console/', import.meta.url).pathname

/** What went wrong in the page: errors, CSP violations, failed requests, 5xx and unexpected 4xx answers. */
interface Watch { problems: string[], clientErrors: string[] }

async function openConsole (browser: Browser, userAgent?: string): Promise<{ context: BrowserContext, page: Page, watch: Watch }> {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, ...(userAgent === undefined ? {} : { userAgent }) })
  // The CSP reports each violation to the page as an event: surface it where the test listens.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`))
  })
  const page = track(await context.newPage())
  const watch: Watch = { problems: [], clientErrors: [] }
  page.on('pageerror', (err) => watch.problems.push(`page error: ${err.message}`))
  page.on('console', (msg) => {
    const text = msg.text()
    // Chromium logs every 4xx as a console error; those are checked one by one through `clientErrors`.
    if (msg.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) watch.problems.push(`console: ${text}`)
    if (/Content Security Policy/i.test(text)) watch.problems.push(`csp: ${text}`)
  })
  page.on('requestfailed', (request) => watch.problems.push(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText}`))
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname
    if (response.status() >= 500) watch.problems.push(`${response.status()} ${path}`)
    else if (response.status() >= 400) watch.clientErrors.push(`${response.request().method()} ${path} ${response.status()}`)
  })
  return { context, page, watch }
}

/**
 * What `read` sees in the page once it equals `expected`, or its last reading after 5 s: the page
 * moves focus in an effect after it renders, a moment after the click that opened or closed a dialog.
 */
async function settled<T> (page: Page, read: () => T, expected: T): Promise<T> {
  let seen = await page.evaluate(read)
  for (const deadline = Date.now() + 5000; seen !== expected && Date.now() < deadline; seen = await page.evaluate(read)) await sleep(50)
  return seen
}

async function send (server: RunningServer, method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

function post (server: RunningServer, path: string, body: unknown, token?: string) {
  return send(server, 'POST', path, body, token)
}

const inFlight = new WeakMap<Page, Set<Request>>()

/** Counts the page's requests in flight, for `idle`. Call it before the page's first request. */
function track (page: Page): Page {
  const requests = new Set<Request>()
  inFlight.set(page, requests)
  page.on('request', (r) => requests.add(r))
  page.on('requestfinished', (r) => requests.delete(r))
  page.on('requestfailed', (r) => requests.delete(r))
  return page
}

/**
 * Waits until the page has had no request in flight for 250 ms. Playwright's 'networkidle' is a
 * state of the last document load, so it misses what the page fetches after an in-page navigation
 * such as signing in.
 */
async function idle (page: Page) {
  const requests = inFlight.get(page)
  assert.ok(requests !== undefined, 'idle() needs track(page) first')
  let quietSince = Date.now()
  await until(() => {
    if (requests.size > 0) quietSince = Date.now()
    return Date.now() - quietSince >= 250
  }, 15_000, () => `still in flight: ${[...requests].map((r) => r.url()).join(', ')}`)
}

async function signIn (page: Page, server: RunningServer, email: string, password: string) {
  await page.goto(`${server.url}/console`)
  await page.getByRole('heading', { name: 'Sign in to Keyward' }).waitFor()
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Keys', exact: true }).waitFor()
}

describe('the key owners console in headless Chromium', { skip: skipWithoutChromium }, () => {
  let server: RunningServer
  let browser: Browser
  let tmp: Awaited<ReturnType<typeof tempDir>>
  // The server and the jobs command share one store.
  const storeEnv = testStoreEnv()

  before(async () => {
    tmp = await tempDir('console')
    // The journey signs in several times and reveals, rotates and creates keys: well past the default tiers.
    server = await startServer({
      ...storeEnv,
      DATA_DIR: tmp.dir,
      GENERAL_RATE_LIMIT_MAX: '100000',
      AUTH_RATE_LIMIT_MAX: '1000',
      HEAVY_RATE_LIMIT_MAX: '1000',
      KEY_CREATE_RATE_LIMIT_MAX: '1000',
      USAGE_FLUSH_INTERVAL_MS: '200'
    })
    browser = await launchChromium()
    mkdirSync(ARTIFACTS, { recursive: true })
  })
  after(async () => {
    await browser?.close()
    await server?.stop('SIGTERM')
    await tmp?.remove()
  })

  it('takes a new user from sign-up to account deletion without an error', async () => {
    const { context, page, watch } = await openConsole(browser)
    try {
      await journey(server, context, page, watch)
    } catch (err) {
      // What the page showed when a step failed, for the reviewer.
      await page.screenshot({ path: `${ARTIFACTS}failure.png`, fullPage: true }).catch(() => {})
      throw err
    } finally {
      await context.close()
    }
  })

  it('reads a notification, opens a dialog from the keyboard, and manages the account from two browsers', async () => {
    const first = await openConsole(browser)
    const second = await openConsole(browser, 'Second browser')
    try {
      await accountJourney(server, { DATA_DIR: tmp.dir, ...storeEnv }, first, second)
    } catch (err) {
      await first.page.screenshot({ path: `${ARTIFACTS}account-failure.png`, fullPage: true }).catch(() => {})
      await second.page.screenshot({ path: `${ARTIFACTS}account-failure-second.png`, fullPage: true }).catch(() => {})
      throw err
    } finally {
      await first.context.close()
      await second.context.close()
    }
  })

  it('keeps two tabs of one browser signed in when they reload and renew at the same moment', async () => {
    const email = 'tabs@example.com'
    const password = 'two tabs password 1'
    assert.equal((await post(server, '/api/auth/register', { email, password })).status, 201)
    const { context, page, watch } = await openConsole(browser)
    try {
      await signIn(page, server, email, password)
      const other = track(await context.newPage())
      const refreshes: number[] = []
      for (const tab of [page, other]) tab.on('response', (r) => { if (r.url().endsWith('/api/auth/console/refresh')) refreshes.push(r.status()) })
      await other.goto(`${server.url}/console`)
      await other.getByRole('heading', { name: 'Keys', exact: true }).waitFor()
      // Both tabs present the one single-use cookie at once; without turns the second would read
      // as token reuse and end the session for both.
      // Each reload waits for the page's own requests to finish: a reload aborts what is still in
      // flight, and the watch counts an aborted request as a problem.
      for (let round = 0; round < 3; round++) {
        await Promise.all([idle(page), idle(other)])
        await Promise.all([page.reload(), other.reload()])
        await page.getByRole('heading', { name: 'Keys', exact: true }).waitFor()
        await other.getByRole('heading', { name: 'Keys', exact: true }).waitFor()
      }
      await Promise.all([idle(page), idle(other)])
      // Page loads rarely line up to the millisecond; the timers that renew the access token can.
      const renew = (tab: Page) => tab.evaluate(async (session) => { await (await import(session)).refresh() }, '/console/js/session.js')
      for (let round = 0; round < 3; round++) await Promise.all([renew(page), renew(other)])
      assert.deepEqual(refreshes, Array(13).fill(200), 'the second tab opened, both reloaded three times, then both renewed three times at once')
      assert.deepEqual(watch.problems, [])
      // The first tab's only 4xx: the refresh at its first load, before it signed in.
      assert.deepEqual(watch.clientErrors, ['POST /api/auth/console/refresh 401'])
    } finally {
      await context.close()
    }
  })

  it('at the default limits, tells a guesser when to try again', async () => {
    const dir = await tempDir('console-defaults')
    const defaults = await startServer({ DATA_DIR: dir.dir })
    const { context, page, watch } = await openConsole(browser)
    try {
      await page.goto(`${defaults.url}/console`)
      await page.getByRole('heading', { name: 'Sign in to Keyward' }).waitFor()
      await page.getByLabel('Email').fill('nobody@example.com')
      await page.getByLabel('Password', { exact: true }).fill('not the password')
      let text = ''
      for (let attempt = 0; attempt < 15 && !/Too many requests/.test(text); attempt++) {
        await page.getByRole('button', { name: 'Sign in' }).click()
        await page.waitForFunction(() => document.querySelector('button[aria-busy="true"]') === null && document.querySelector('.form-error') !== null)
        text = String(await page.locator('.form-error').textContent())
        if (!/Too many requests/.test(text)) assert.match(text, /Wrong email or password/)
      }
      assert.match(text, /Too many requests.*You can try again at \d/)
      assert.deepEqual(watch.problems, [])
      assert.ok(watch.clientErrors.some((e) => /login 429$/.test(e)), watch.clientErrors.join(', '))
    } finally {
      await context.close()
      await defaults.stop('SIGTERM')
      await dir.remove()
    }
  })
})

async function journey (server: RunningServer, context: BrowserContext, page: Page, watch: Watch) {
  const email = 'owner@example.com'
  const password = 'console password 1'
  const passphrase = 'vault passphrase for the console'
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url })
  // Fake timers that still run at real speed: the 30-second reveal can then be fast-forwarded.
  await page.clock.install()

  const response = await page.goto(`${server.url}/console`)
  assert.equal(response?.status(), 200)
  assert.match(String(response?.headers()['content-security-policy']), /script-src 'self'/)

  // Sign up, with a too-short password first: the API's message next to the field, no account made.
  await page.getByRole('button', { name: 'Create an account' }).click()
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password', { exact: true }).fill('short')
  await page.getByRole('button', { name: 'Create account' }).click()
  const passwordError = page.locator('.field:has(input[type=password]) .field-error')
  await passwordError.waitFor()
  assert.match(String(await passwordError.textContent()), /fewer than 10 characters/)
  assert.equal((await post(server, '/api/auth/login', { email, password: 'short' })).status, 401, 'no account was made')
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByRole('heading', { name: 'Keys', exact: true }).waitFor()

  // The vault passphrase: too short first, then set; the explanation says it cannot be recovered.
  const vault = page.locator('form[aria-label="Set vault passphrase"]')
  assert.match(String(await vault.textContent()), /cannot recover it/)
  await vault.getByLabel('Passphrase', { exact: true }).fill('too short')
  await vault.getByLabel('Repeat the passphrase').fill('too short')
  await vault.getByRole('button', { name: 'Set passphrase' }).click()
  await vault.locator('.field-error').waitFor()
  assert.match(String(await vault.locator('.field-error').textContent()), /fewer than 12 characters/)
  await vault.getByLabel('Passphrase', { exact: true }).fill(passphrase)
  await vault.getByLabel('Repeat the passphrase').fill(passphrase)
  await vault.getByRole('button', { name: 'Set passphrase' }).click()
  await vault.waitFor({ state: 'detached' })

  // A held key, then revealed: the plaintext shows, and is gone from the page 30 seconds later.
  const heldSecret = 'sk_live_console_journey_0123456789'
  await page.getByRole('button', { name: 'New key' }).click()
  const create = page.locator('dialog form[aria-label="New key"]')
  await create.getByLabel(/Held:/).check()
  await create.getByLabel('Secret', { exact: true }).fill(heldSecret)
  await create.getByLabel('Vault passphrase', { exact: true }).fill(passphrase)
  await create.getByLabel('Name', { exact: true }).fill('Stripe live')
  await create.getByLabel('Service', { exact: true }).fill('stripe')
  await create.getByRole('button', { name: 'Create key' }).click()
  await page.getByRole('heading', { name: /Stripe live/ }).waitFor()
  await page.getByRole('button', { name: 'Reveal' }).click()
  const reveal = page.locator('dialog')
  assert.equal(await settled(page, () => document.activeElement?.getAttribute('type'), 'password'), 'password', 'focus moves into the dialog')
  await reveal.getByLabel('Vault passphrase').fill(passphrase)
  await reveal.getByRole('button', { name: 'Reveal' }).click()
  await page.getByTestId('revealed').waitFor()
  assert.equal(await page.getByTestId('revealed').textContent(), heldSecret)
  await page.clock.fastForward(31_000)
  await page.getByTestId('revealed').waitFor({ state: 'detached' })
  assert.ok(!(await page.content()).includes(heldSecret), 'the plaintext left the page')
  await reveal.getByRole('button', { name: 'Close' }).last().click()
  assert.equal(await settled(page, () => document.activeElement?.textContent, 'Reveal'), 'Reveal', 'focus returns to the button that opened the dialog')

  // An issued key: a bad prefix first (the API's message at the field, nothing created), then for real.
  await page.getByRole('link', { name: '← Keys' }).click()
  await page.getByRole('button', { name: 'New key' }).click()
  await create.getByLabel('Name', { exact: true }).fill('Customer A')
  await create.getByLabel('Prefix', { exact: true }).fill('1bad')
  await create.getByRole('button', { name: 'Create key' }).click()
  const prefixError = create.locator('.field:has(input[name=prefix]) .field-error')
  await prefixError.waitFor()
  assert.match(String(await prefixError.textContent()), /must match pattern/)
  await create.getByLabel('Prefix', { exact: true }).fill('acme')
  await create.getByLabel('Environment', { exact: true }).selectOption('production')
  await create.getByLabel('Scopes', { exact: true }).fill('read, write')
  await create.getByLabel('Tags', { exact: true }).fill('customer, beta')
  await create.getByLabel('Metadata (JSON)', { exact: true }).fill('{"plan": "pro"}')
  await create.getByLabel('Monthly limit (units)', { exact: true }).fill('1000')
  await create.getByLabel('Rate limit (requests)', { exact: true }).fill('100')
  await create.getByLabel('Per (seconds)', { exact: true }).fill('60')
  await create.getByRole('button', { name: 'Create key' }).click()
  await page.getByTestId('secret').waitFor()
  assert.match(String(await page.locator('.secret-once').textContent()), /You will not see it again/)
  const issued = String(await page.getByTestId('secret').textContent())
  assert.match(issued, /^acme_/)
  await page.getByRole('button', { name: 'Copy' }).click()
  await page.getByText('Copied to the clipboard.').waitFor()
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), issued)
  await page.getByRole('button', { name: 'I have stored it' }).click()
  await page.getByRole('heading', { name: /Customer A/ }).waitFor()
  assert.equal(await page.getByTestId('secret').count(), 0, 'the secret is not kept once dismissed')
  const listed = await fetch(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) })
  const { accessToken } = await listed.json() as { accessToken: string }

  // The test's backend verifies the key three times; the console shows the usage.
  for (let i = 0; i < 3; i++) {
    const verified = await post(server, '/api/keys/verify', { key: issued }, accessToken)
    assert.equal(verified.body.code, 'VALID')
  }
  const requests = page.getByTestId('usage-requests')
  for (let tries = 0; (await requests.textContent()) !== '3'; tries++) {
    assert.ok(tries < 40, `usage shows 3 requests (shows ${await requests.textContent()})`)
    await page.getByRole('button', { name: 'Refresh' }).click()
    await page.waitForTimeout(250)
  }
  await page.locator('.chart .uplot').waitFor()
  await page.screenshot({ path: `${ARTIFACTS}key.png`, fullPage: true })

  // Edit: only the changed field is sent, and the page shows it.
  await page.getByRole('button', { name: 'Edit' }).click()
  await page.locator('dialog').getByLabel('Description').fill('Production key of customer A')
  await page.locator('dialog').getByRole('button', { name: 'Save' }).click()
  await page.locator('dl.fields').getByText('Production key of customer A').waitFor()

  // Rotate with a grace period: a new secret shown once; the old one still verifies for now.
  await page.getByRole('button', { name: 'Rotate' }).click()
  await page.locator('dialog').getByLabel('The old key keeps working for').selectOption('3600')
  await page.locator('dialog').getByRole('button', { name: 'Rotate' }).click()
  await page.getByTestId('secret').waitFor()
  const rotated = String(await page.getByTestId('secret').textContent())
  assert.notEqual(rotated, issued)
  await page.getByRole('button', { name: 'I have stored it' }).click()
  await page.locator('table').getByText('2 (current)').waitFor()
  assert.equal((await post(server, '/api/keys/verify', { key: rotated }, accessToken)).body.code, 'VALID')
  assert.equal((await post(server, '/api/keys/verify', { key: issued }, accessToken)).body.code, 'VALID', 'the old secret keeps verifying during its grace period')

  // Revoke, confirmed in a dialog: both secrets stop verifying.
  await page.getByRole('button', { name: 'Revoke' }).click()
  await page.getByRole('button', { name: 'Revoke key' }).click()
  await page.locator('h1 .badge.revoked').waitFor()
  assert.equal((await post(server, '/api/keys/verify', { key: rotated }, accessToken)).body.code, 'REVOKED')

  // The list, with a filter that finds the issued key only.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Keys' }).click()
  await page.getByRole('link', { name: 'Stripe live' }).waitFor()
  await page.getByLabel('Status').selectOption('revoked')
  await page.getByRole('link', { name: 'Stripe live' }).waitFor({ state: 'detached' })
  assert.equal(await page.getByRole('link', { name: 'Customer A' }).count(), 1)
  await page.getByLabel('Status').selectOption('')
  await page.getByRole('link', { name: 'Stripe live' }).waitFor()
  await page.screenshot({ path: `${ARTIFACTS}keys.png`, fullPage: true })

  // Usage: the month's totals count the five valid verifications (three, then one of each secret).
  await page.getByRole('link', { name: 'Usage' }).click()
  await page.getByTestId('total-requests').waitFor()
  assert.equal(await page.getByTestId('total-requests').textContent(), '5')
  await page.screenshot({ path: `${ARTIFACTS}usage.png`, fullPage: true })

  // Audit: the trail names what happened, and its hash chain checks out.
  await page.getByRole('link', { name: 'Audit' }).click()
  await page.getByTestId('chain').waitFor()
  assert.equal(await page.getByTestId('chain').textContent(), 'Chain valid')
  const actions = await page.locator('table.audit tbody td:nth-child(3)').allTextContents()
  for (const action of ['auth.register', 'vault.passphrase_set', 'key.created', 'key.revealed', 'key.rotated', 'key.revoked']) {
    assert.ok(actions.includes(action), `${action} in ${actions.join(', ')}`)
  }
  await page.screenshot({ path: `${ARTIFACTS}audit.png`, fullPage: true })

  // Notifications: the inbox is empty; a webhook to a private address is refused at its field, and none is set.
  await page.getByRole('link', { name: 'Notifications' }).click()
  await page.getByText('Nothing here.').waitFor()
  await page.getByLabel('URL').fill('http://127.0.0.1:9/hook')
  await page.getByRole('button', { name: 'Save webhook' }).click()
  const urlError = page.locator('.field:has(input[name=url]) .field-error')
  await urlError.waitFor()
  assert.match(String(await urlError.textContent()), /cannot receive webhooks/)
  const hook = await fetch(`${server.url}/api/auth/me/webhook`, { headers: { authorization: `Bearer ${accessToken}` } })
  assert.equal((await hook.json() as { configured: boolean }).configured, false)

  // A phone's width: no sideways scrolling on the keys list or a key's page.
  await page.setViewportSize({ width: 390, height: 844 })
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Keys' }).click()
  await page.getByRole('link', { name: 'Customer A' }).waitFor()
  for (const [name, next] of [['keys-phone', 'Customer A'], ['key-phone', null]] as const) {
    await page.waitForLoadState('networkidle')
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 1, `${name}: no horizontal scrolling on a phone (${overflow}px)`)
    await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true })
    if (next !== null) {
      await page.getByRole('link', { name: next }).click()
      await page.getByRole('heading', { name: next }).waitFor()
    }
  }
  await page.setViewportSize({ width: 1366, height: 900 })

  // A reload keeps the session (the refresh cookie); signing out ends it; signing in again works.
  await idle(page)
  await page.reload()
  await page.getByRole('heading', { name: /Customer A/ }).waitFor()
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in to Keyward' }).waitFor()
  await page.reload()
  await page.getByRole('heading', { name: 'Sign in to Keyward' }).waitFor()
  await page.getByLabel('Email').fill(email)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: /Customer A/ }).waitFor()

  // Delete the account: a wrong password is refused at its field, then the account goes.
  await page.getByRole('link', { name: 'Account' }).click()
  const remove = page.locator('form[aria-label="Delete account"]')
  await remove.getByLabel('Password').fill('not my password')
  await remove.getByLabel('I understand that this cannot be undone').check()
  await remove.getByRole('button', { name: 'Delete my account' }).click()
  await remove.locator('.field-error').waitFor()
  assert.match(String(await remove.locator('.field-error').textContent()), /Wrong password/)
  await remove.getByLabel('Password').fill(password)
  await remove.getByRole('button', { name: 'Delete my account' }).click()
  await page.getByRole('heading', { name: 'Sign in to Keyward' }).waitFor()
  assert.equal((await post(server, '/api/auth/login', { email, password })).status, 401, 'the account is gone')

  assert.deepEqual(watch.problems, [])
  assert.deepEqual(watch.clientErrors, [
    'POST /api/auth/console/refresh 401',
    'POST /api/auth/console/register 400',
    'PUT /api/vault/passphrase 400',
    'POST /api/keys 400',
    'PUT /api/auth/me/webhook 400',
    'POST /api/auth/console/refresh 401',
    'DELETE /api/auth/me 403'
  ])
}

interface Opened { context: BrowserContext, page: Page, watch: Watch }

async function accountJourney (server: RunningServer, storeEnv: Record<string, string>, first: Opened, second: Opened) {
  const { page, watch } = first
  const email = 'account@example.com'
  const password = 'account password 1'
  const newPassword = 'account password 2'
  const passphrase = 'vault passphrase of the account'
  const newPassphrase = 'the second vault passphrase'

  // Made through the API: an account with a passphrase and a key that expires in three days.
  const registered = await post(server, '/api/auth/register', { email, password })
  assert.equal(registered.status, 201)
  const token = String(registered.body.accessToken)
  assert.equal((await send(server, 'PUT', '/api/vault/passphrase', { passphrase }, token)).status, 200)
  const expiresAt = new Date(Date.now() + 3 * 86_400_000).toISOString()
  const key = await post(server, '/api/keys', { kind: 'issued', name: 'Expiring soon', expiresAt }, token)
  assert.equal(key.status, 201)

  // The nightly expiry job, run now by the operators' command against the server's store, notifies the owner.
  const job = await runToExit({ NODE_ENV: 'production', LOG_LEVEL: 'warn', ...storeEnv }, 'scripts/jobs.ts', 20_000, ['run', 'key-expiration'])
  assert.equal(job.code, 0, job.output)
  assert.equal(JSON.parse(job.output.trim().split('\n').pop() as string).result.expiringSoon, 1)

  // The page's policy makes the browser refuse HTML written from a string (a page of its own, so its report stays out of the watch).
  const probe = await first.context.newPage()
  await probe.goto(`${server.url}/console`)
  const written = await probe.evaluate(() => {
    try {
      document.createElement('div').innerHTML = '<img src=x>'
      return 'written'
    } catch (err) {
      return (err as Error).name
    }
  })
  assert.equal(written, 'TypeError')
  await probe.close()

  // The unread count shows in the navigation; marking the notification read takes it away.
  await signIn(page, server, email, password)
  const nav = page.getByRole('navigation', { name: 'Main' })
  await nav.locator('.count[aria-label="1 unread"]').waitFor()
  await nav.getByRole('link', { name: /Notifications/ }).click()
  const inbox = page.locator('ul.inbox li.unread', { hasText: 'Expiring soon expires soon' })
  await inbox.waitFor()
  await inbox.getByRole('button', { name: /Mark read/ }).click()
  await page.locator('ul.inbox li:not(.unread)', { hasText: 'Expiring soon expires soon' }).waitFor()
  await nav.locator('.count').waitFor({ state: 'detached' })

  // The new-key dialog from the keyboard alone: Tab to the button, Enter opens, Escape closes.
  await nav.getByRole('link', { name: 'Keys' }).click()
  await page.locator('.page-head button.primary:not([disabled])').waitFor()
  for (let tabs = 0; await page.evaluate(() => document.activeElement?.textContent) !== 'New key'; tabs++) {
    assert.ok(tabs < 30, 'New key is reachable with Tab')
    await page.keyboard.press('Tab')
  }
  await page.keyboard.press('Enter')
  await page.locator('dialog[open] form[aria-label="New key"]').waitFor()
  assert.equal(await settled(page, () => document.activeElement?.closest('dialog[open]') !== null, true), true, 'focus is inside the dialog')
  // A secret typed for a held key leaves the form when the kind changes to issued.
  const create = page.locator('dialog form[aria-label="New key"]')
  await create.getByLabel(/Held:/).check()
  await create.getByLabel('Secret', { exact: true }).fill('sk_typed_then_abandoned_0123')
  await create.getByLabel(/Issued:/).check()
  await create.getByLabel(/Held:/).check()
  assert.equal(await create.getByLabel('Secret', { exact: true }).inputValue(), '')
  await page.keyboard.press('Escape')
  await page.locator('dialog').waitFor({ state: 'detached' })
  assert.equal(await settled(page, () => document.activeElement?.textContent, 'New key'), 'New key', 'focus returns to the button that opened the dialog')

  // A second browser signs in; the first lists both sessions and ends the second one.
  await signIn(second.page, server, email, password)
  await nav.getByRole('link', { name: 'Account' }).click()
  const other = page.locator('ul.sessions li', { hasText: 'Second browser' })
  await other.waitFor()
  assert.ok(await page.locator('ul.sessions li').count() >= 2, 'both browsers are listed')
  assert.equal(await page.locator('ul.sessions li', { hasText: 'This browser' }).count(), 1)
  await other.getByRole('button', { name: /^End/ }).click()
  await other.waitFor({ state: 'detached' })
  // The second browser's next call is refused, and it is back at the sign-in form, told why.
  await second.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Usage' }).click()
  await second.page.getByRole('heading', { name: 'Sign in to Keyward' }).waitFor()
  assert.match(String(await second.page.locator('.form-error').textContent()), /This session was ended/)

  // Change the password: a wrong current one is refused at its field, then it changes.
  const change = page.locator('form[aria-label="Change password"]')
  await change.getByLabel('Current password').fill('not my password')
  await change.getByLabel('New password').fill(newPassword)
  await change.getByRole('button', { name: 'Change password' }).click()
  const currentError = change.locator('.field:has(input[name=currentPassword]) .field-error')
  await currentError.waitFor()
  assert.match(String(await currentError.textContent()), /Wrong password/)
  await change.getByLabel('Current password').fill(password)
  await change.getByLabel('New password').fill(newPassword)
  await change.getByRole('button', { name: 'Change password' }).click()
  await change.getByText('Password changed.').waitFor()
  assert.equal(await change.locator('.field-error').count(), 0)
  assert.equal((await post(server, '/api/auth/login', { email, password })).status, 401, 'the old password no longer signs in')
  const login = await post(server, '/api/auth/login', { email, password: newPassword })
  assert.equal(login.status, 200, 'the new one does')

  // Export: a JSON file with the account and its key, and no secret in it.
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download my data' }).click()])
  assert.match(download.suggestedFilename(), /^keyward-account-\d{4}-\d{2}-\d{2}\.json$/)
  const text = await readFile(String(await download.path()), 'utf8')
  const exported = JSON.parse(text) as { user: { email: string }, keys: Array<{ id: string, name: string }> }
  assert.equal(exported.user.email, email)
  assert.deepEqual(exported.keys.map((k) => [k.id, k.name]), [[(key.body.key as { id: string }).id, 'Expiring soon']])
  assert.ok(!text.includes(String(key.body.secret)), 'the export holds no secret')

  // Change the vault passphrase: a wrong current one is refused at its field, then it changes.
  const vault = page.locator('form[aria-label="Change vault passphrase"]')
  await vault.getByLabel('Current passphrase').fill('not the passphrase at all')
  await vault.getByLabel('New passphrase').fill(newPassphrase)
  await vault.getByLabel('Repeat the passphrase').fill(newPassphrase)
  await vault.getByRole('button', { name: 'Change passphrase' }).click()
  const passphraseError = vault.locator('.field:has(input[name=currentPassphrase]) .field-error')
  await passphraseError.waitFor()
  assert.match(String(await passphraseError.textContent()), /Wrong passphrase/)
  await vault.getByLabel('Current passphrase').fill(passphrase)
  await vault.getByRole('button', { name: 'Change passphrase' }).click()
  await vault.getByText('Your vault passphrase is changed').waitFor()
  const changed = await fetch(`${server.url}/api/audit?action=vault.passphrase_changed`, { headers: { authorization: `Bearer ${String(login.body.accessToken)}` } })
  assert.equal((await changed.json() as { items: unknown[] }).items.length, 1)

  assert.deepEqual(watch.problems, [])
  assert.deepEqual(watch.clientErrors, [
    'POST /api/auth/console/refresh 401',
    'POST /api/auth/change-password 403',
    'PUT /api/vault/passphrase 403'
  ])
  assert.deepEqual(second.watch.problems, [])
  assert.equal(second.watch.clientErrors[0], 'POST /api/auth/console/refresh 401')
  assert.ok(second.watch.clientErrors.length > 1 && second.watch.clientErrors.slice(1).every((e) => /^GET \/api\/usage\S* 401$/.test(e)), second.watch.clientErrors.join(', '))
}
