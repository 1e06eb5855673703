import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { it } from 'node:test'
import { TEST_SECRETS } from '../helpers/app.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

it('PM2 starts the ecosystem\'s API in cluster mode and /api/health answers', async (ctx) => {
  const home = await testDir(ctx, 'pm2-home')
  const data = await testDir(ctx, 'pm2-data')
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as { port: number }).port
  probe.close()
  const env = { PATH: process.env.PATH, PM2_HOME: home, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: data, ...TEST_SECRETS }
  const pm2 = `${ROOT}node_modules/.bin/pm2`
  onScopeEnd(ctx, () => run(pm2, ['kill'], { cwd: ROOT, env }).catch(() => {}))
  await run('npm', ['run', 'build', '--silent'], { cwd: ROOT, env: { ...process.env } })
  await run(pm2, ['start', 'ecosystem.config.cjs', '--only', 'keyward-api'], { cwd: ROOT, env, timeout: 60_000 })
  let status = 0
  await until(async () => {
    status = await fetch(`http://127.0.0.1:${port}/api/health`).then((r) => r.status, () => 0)
    return status === 200
  }, 10_000, () => `/api/health answers 200 (last ${status})`, 200)
  const { stdout } = await run(pm2, ['jlist'], { cwd: ROOT, env })
  const apps = (JSON.parse(stdout) as Array<{ name: string, pm2_env: { exec_mode: string, status: string } }>).filter((a) => a.name === 'keyward-api')
  assert.ok(apps.length >= 1)
  assert.ok(apps.every((a) => a.pm2_env.exec_mode === 'cluster_mode' && a.pm2_env.status === 'online'))
})
