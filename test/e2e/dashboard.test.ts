/// <reference lib="dom" />
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, skipWithoutChromium } from '../helpers/browser.ts'
import { startServer, type RunningServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'

const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname

describe('the operators dashboard in headless Chromium', { skip: skipWithoutChromium }, () => {
  let server: RunningServer
  let browser: Browser
  let tmp: Awaited<ReturnType<typeof tempDir>>
  const email = 'ops@example.com'
  const password = 'dashboard password 1'

  before(async () => {
    tmp = await tempDir('dashboard')
    server = await startServer({ DATA_DIR: tmp.dir, ADMIN_EMAILS: email, GENERAL_RATE_LIMIT_MAX: '100000', AUTH_RATE_LIMIT_MAX: '1000' })
    browser = await launchChromium()
    mkdirSync(ARTIFACTS, { recursive: true })
  })
  after(async () => {
    await browser?.close()
    await server?.stop('SIGTERM')
    await tmp?.remove()
  })

  it('signs in, renders live charts with data after some traffic, and reads well on a phone', async () => {
    const register = await fetch(`${server.url}/api/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) })
    assert.equal(register.status, 201)
    const { accessToken } = await register.json() as { accessToken: string }

    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } })
    const problems: string[] = []
    page.on('pageerror', (err) => problems.push(err.message))
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()) })
    const response = await page.goto(`${server.url}/dashboard`)
    assert.equal(response?.status(), 200)
    assert.match(String(response?.headers()['content-security-policy']), /script-src 'self'/)
    await page.fill('#email', email)
    await page.fill('#password', password)
    await page.click('button[type=submit]')
    await page.waitForSelector('#board:not([hidden])', { timeout: 10_000 })

    const traffic = async () => {
      const key = await fetch(`${server.url}/api/keys`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'issued', name: 'dash' }) })
      const { secret } = await key.json() as { secret: string }
      for (let i = 0; i < 60; i++) {
        await fetch(`${server.url}/api/keys/verify`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ key: i % 5 === 0 ? 'kw_bad' : secret }) })
        await fetch(`${server.url}/api/health`)
      }
    }
    await traffic()
    await page.waitForFunction(() => Number(document.getElementById('c-rps')?.dataset.points ?? 0) >= 3, undefined, { timeout: 20_000 })
    const charts = await page.locator('.uplot').count()
    assert.equal(charts, 8, 'every chart is drawn')
    const rps = await page.textContent('#t-rps')
    assert.ok(rps !== null && rps !== '–')
    const jobs = await page.locator('#jobs tr').count()
    assert.equal(jobs, 5)
    await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true })

    // The charts take the new width when they next draw: wait for that poll, not for a time.
    const drawn = await page.evaluate(() => Number(document.getElementById('c-rps')?.dataset.points ?? 0))
    await page.setViewportSize({ width: 390, height: 844 })
    await page.waitForFunction((before) => Number(document.getElementById('c-rps')?.dataset.points ?? 0) > before, drawn, { timeout: 10_000 })
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 1, `no horizontal scrolling on a phone (${overflow}px)`)
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone.png`, fullPage: true })
    assert.deepEqual(problems, [])

    const user = await browser.newPage()
    await fetch(`${server.url}/api/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'plain@example.com', password }) })
    await user.goto(`${server.url}/dashboard`)
    await user.fill('#email', 'plain@example.com')
    await user.fill('#password', password)
    await user.click('button[type=submit]')
    await user.waitForFunction(() => (document.getElementById('signin-error')?.textContent ?? '').length > 0)
    assert.match(String(await user.textContent('#signin-error')), /not an administrator/)
  })
})
