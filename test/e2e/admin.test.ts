import assert from 'node:assert/strict'
import { it } from 'node:test'
import { createTestApp, registerUser } from '../helpers/app.ts'
import { runToExit } from '../helpers/server.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

it('the admin command promotes and demotes an account in the store', async (ctx) => {
  const dataDir = await testDir(ctx, 'admin-cli')
  // The running service (no Redis): the command reaches it only through the store.
  const t = await createTestApp(ctx, {}, { dataDir })
  const user = await registerUser(t.app, { email: 'operator@example.com' })
  const adminRoute = async () => (await t.app.inject({ method: 'GET', url: '/api/system/info', headers: user.headers })).statusCode
  /** Polls the running service until the admin route answers `status`, at most 1.5 s after the command. */
  const seen = (status: number) => until(async () => await adminRoute() === status, 1500, `the running service answers ${status}`, 25)
  assert.equal(await adminRoute(), 403)

  const env = { NODE_ENV: 'test', DATA_DIR: dataDir, LOG_LEVEL: 'warn' }
  const promoted = await runToExit(env, 'scripts/admin.ts', 20_000, ['promote', 'Operator@Example.com'])
  assert.equal(promoted.code, 0, promoted.output)
  assert.match(promoted.output, /operator@example.com is now admin/)
  assert.equal((await t.app.store.getUser(user.user.id))?.role, 'admin')
  // Issue 14, finding 11: authorization reads the account within 1 s (it was up to 60 s).
  await seen(200)

  const demoted = await runToExit(env, 'scripts/admin.ts', 20_000, ['demote', 'operator@example.com'])
  assert.equal(demoted.code, 0, demoted.output)
  await seen(403)
  await t.close()

  const unknown = await runToExit(env, 'scripts/admin.ts', 20_000, ['promote', 'nobody@example.com'])
  assert.equal(unknown.code, 1)
  assert.match(unknown.output, /User not found/)

  const usage = await runToExit(env, 'scripts/admin.ts', 20_000, ['bogus'])
  assert.equal(usage.code, 64)
})
