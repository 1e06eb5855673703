import assert from 'node:assert/strict'
import { it } from 'node:test'
import { runToExit, startServer } from '../helpers/server.ts'
import { dropPrefix, REDIS_URL, testPrefix } from '../helpers/redis.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { testDir } from '../helpers/tmp.ts'

it('npm run jobs lists and runs a job now; the worker needs Redis and stops gracefully', async (ctx) => {
  const env = { NODE_ENV: 'test', DATA_DIR: await testDir(ctx, 'jobs-cli'), LOG_LEVEL: 'warn' }
  const prefix = testPrefix('worker')
  onScopeEnd(ctx, () => dropPrefix(prefix))
  const list = await runToExit(env, 'scripts/jobs.ts', 20_000, ['list'])
  assert.equal(list.code, 0)
  assert.match(list.output, /key-expiration\s+0 2 \* \* \*/)
  const ran = await runToExit(env, 'scripts/jobs.ts', 20_000, ['run', 'stats-report'])
  assert.equal(ran.code, 0, ran.output)
  assert.equal(JSON.parse(ran.output.trim().split('\n').pop() as string).job, 'stats-report')
  assert.equal((await runToExit(env, 'scripts/jobs.ts', 20_000, ['run', 'nope'])).code, 64)

  const noRedis = await runToExit(env, 'worker.ts')
  assert.equal(noRedis.code, 78)
  assert.match(noRedis.output, /The worker needs REDIS_URL/)

  const worker = await startServer({ ...env, LOG_LEVEL: 'info', REDIS_URL, REDIS_PREFIX: prefix }, 'worker.ts', /worker ready/)
  assert.equal(await worker.stop('SIGTERM'), 0)
})
