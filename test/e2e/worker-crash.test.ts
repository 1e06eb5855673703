import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { it } from 'node:test'
import { Queue } from 'bullmq'
import { bullConnection, MAINTENANCE_QUEUE, WEBHOOK_QUEUE } from '../../jobs/queue.ts'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, testPrefix } from '../helpers/redis.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { startServer } from '../helpers/server.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

// Part of the faults suite: the jobs worker is killed (kill -9) in the middle of a job, a
// webhook delivery waiting on its receiver. Another worker finds the job once its lock lapses
// and delivers it: the event acknowledged by the store is not lost.

const json = { 'content-type': 'application/json' }

it('kill -9 of the jobs worker mid-delivery: another worker delivers the webhook once the job lock lapses', { timeout: 120_000 }, async (ctx) => {
  const dataDir = await testDir(ctx, 'worker-crash')
  const prefix = testPrefix('wcrash')
  onScopeEnd(ctx, () => dropPrefix(prefix))
  const arrivals: Array<{ eventId: string, at: number, answered: boolean }> = []
  let holdFirst = true
  const held: ServerResponse[] = []
  const receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    const arrival = { eventId: String(req.headers['keyward-event-id']), at: Date.now(), answered: false }
    arrivals.push(arrival)
    if (holdFirst) {
      holdFirst = false
      held.push(res) // the worker waits on this answer when it is killed
      return
    }
    arrival.answered = true
    res.writeHead(204).end()
  })
  receiver.listen(0, '127.0.0.1')
  onScopeEnd(ctx, () => { receiver.close() })
  onScopeEnd(ctx, () => { for (const res of held) res.destroy() })
  await once(receiver, 'listening')
  const hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`

  const env = {
    DATA_DIR: dataDir,
    REDIS_URL,
    REDIS_PREFIX: prefix,
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_TIMEOUT_MS: '30000',
    JOBS_LOCK_MS: '2000',
    JOBS_CONCURRENCY: '1'
  }
  const connection = bullConnection(REDIS_URL)
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection, prefix: `${prefix}bull` })
  const webhooks = new Queue(WEBHOOK_QUEUE, { connection, prefix: `${prefix}bull` })
  onScopeEnd(ctx, async () => {
    await maintenance.obliterate({ force: true }).catch(() => {})
    await webhooks.obliterate({ force: true }).catch(() => {})
    await maintenance.close()
    await webhooks.close()
  })
  const server = await startServer(env)
  onScopeEnd(ctx, () => server.stop('SIGTERM'))
  const register = await fetch(`${server.url}/api/auth/register`, { method: 'POST', headers: json, body: JSON.stringify({ email: 'crash-worker@example.com', password: 'worker crash password' }) })
  assert.equal(register.status, 201)
  const auth = { ...json, authorization: `Bearer ${((await register.json()) as { accessToken: string }).accessToken}` }
  const key = await fetch(`${server.url}/api/keys`, { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'issued', name: 'expires in 3 days', expiresAt: new Date(Date.now() + 3 * 86_400_000).toISOString() }) })
  assert.equal(key.status, 201)
  const hook = await fetch(`${server.url}/api/auth/me/webhook`, { method: 'PUT', headers: auth, body: JSON.stringify({ url: hookUrl }) })
  assert.equal(hook.status, 200)

  const first = await startServer(env, 'worker.ts', /"msg":"worker ready"()/)
  onScopeEnd(ctx, () => first.stop('SIGKILL'))
  await maintenance.add('key-expiration', {})
  await until(() => arrivals.length > 0, 20_000, 'the notice reaches the receiver', 50)
  assert.equal(arrivals.length, 1, 'the first worker is delivering the notice')
  const [job] = await webhooks.getJobs(['active'])
  assert.ok(job !== undefined, 'the delivery job is active in the first worker')
  first.proc.kill('SIGKILL')
  await once(first.proc, 'exit')
  const killedAt = Date.now()
  for (const res of held) res.destroy()

  const second = await startServer(env, 'worker.ts', /"msg":"worker ready"()/)
  onScopeEnd(ctx, () => second.stop('SIGKILL'))
  const delivered = await until(() => arrivals.find((a) => a.answered), 30_000, () => `the replacement delivered the notice (${arrivals.length} arrivals)`, 100)
  assert.equal(delivered.eventId, arrivals[0]?.eventId, 'the same event, so a receiver can drop the duplicate')
  await until(async () => await webhooks.getJobState(job.id as string) === 'completed', 10_000, 'the delivery job completes', 100)
  assert.equal(await second.stop('SIGTERM'), 0)

  const store = createSqliteStore({ dataDir, auditChain: new AuditChain(TEST_SECRETS.KEY_HASH_SECRET) })
  onScopeEnd(ctx, () => store.close())
  const delivery = await store.getDelivery(job.data.deliveryId as string)
  assert.equal(delivery?.status, 'delivered')
  console.log(`worker crash: kill -9 while a webhook delivery waited on its receiver; the replacement worker delivered the same event ${delivered.at - killedAt} ms after the kill (JOBS_LOCK_MS=2000); ${arrivals.length} arrivals, 1 answered, delivery marked delivered`)
})
