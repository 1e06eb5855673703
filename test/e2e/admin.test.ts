import assert from 'node:assert/strict'
import { it } from 'node:test'
import { createTestApp, registerUser } from '../helpers/app.ts'
import { runToExit } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'

it('the admin command promotes and demotes an account in the store', async () => {
  const tmp = await tempDir('admin-cli')
  try {
    const t = await createTestApp({}, { dataDir: tmp.dir })
    const user = await registerUser(t.app, { email: 'operator@example.com' })
    await t.app.close()

    const env = { NODE_ENV: 'test', DATA_DIR: tmp.dir, LOG_LEVEL: 'warn' }
    const promoted = await runToExit(env, 'scripts/admin.ts', 20_000, ['promote', 'Operator@Example.com'])
    assert.equal(promoted.code, 0, promoted.output)
    assert.match(promoted.output, /operator@example.com is now admin/)

    const check = await createTestApp({}, { dataDir: tmp.dir })
    assert.equal((await check.app.store.getUser(user.user.id))?.role, 'admin')
    await check.app.close()

    const demoted = await runToExit(env, 'scripts/admin.ts', 20_000, ['demote', 'operator@example.com'])
    assert.equal(demoted.code, 0, demoted.output)

    const unknown = await runToExit(env, 'scripts/admin.ts', 20_000, ['promote', 'nobody@example.com'])
    assert.equal(unknown.code, 1)
    assert.match(unknown.output, /User not found/)

    const usage = await runToExit(env, 'scripts/admin.ts', 20_000, ['bogus'])
    assert.equal(usage.code, 64)
  } finally {
    await tmp.remove()
  }
})
