import assert from 'node:assert/strict'
import { it } from 'node:test'
import { RedisBuckets } from '../../plugins/app/verify/token-bucket.ts'
import { createTestApp } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, testPrefix } from '../helpers/redis.ts'

it('with REDIS_URL, fastify.redis is the guarded connection registered through @fastify/redis', async () => {
  const prefix = testPrefix('redis-plugin')
  const t = await createTestApp({ REDIS_URL, REDIS_PREFIX: prefix })
  try {
    assert.ok(t.app.hasPlugin('@fastify/redis'))
    assert.equal(t.app.redis?.status, 'ready')
    assert.equal(t.app.redis?.options.enableOfflineQueue, false, 'commands fail at once while disconnected')
    assert.equal(await t.app.redis?.ping(), 'PONG')
  } finally {
    await t.close()
    await dropPrefix(prefix)
  }
  assert.equal(t.app.redis?.status, 'end', 'closed with the app')
})

it('commands issued in one turn of the event loop leave as one pipeline, and each gets its own answer in order', async () => {
  const prefix = testPrefix('redis-pipeline')
  const t = await createTestApp({ REDIS_URL, REDIS_PREFIX: prefix })
  try {
    const redis = t.app.redis as NonNullable<typeof t.app.redis>
    const buckets = new RedisBuckets(redis, prefix)
    const limit = { limit: 10, windowMs: 60_000 }
    const now = Date.now()
    // 25 concurrent verify calls of one key with a per-key limit of 10: 25 bucket scripts.
    const takes = Array.from({ length: 25 }, () => buckets.take('one-key', limit, now))
    assert.equal(redis.autoPipelineQueueSize, 25, 'the 25 scripts wait for one write instead of leaving one by one')
    const results = await Promise.all(takes)
    assert.equal(redis.autoPipelineQueueSize, 0)
    assert.deepEqual(results.map((r) => r.allowed), [...Array<boolean>(10).fill(true), ...Array<boolean>(15).fill(false)], 'the bucket stays exact: 10 granted, in the order asked')
    assert.deepEqual(results.slice(0, 10).map((r) => r.remaining), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    assert.equal(buckets.fallbacks, 0, 'answered by Redis, not by the memory fallback')
  } finally {
    await t.close()
    await dropPrefix(prefix)
  }
})

it('without REDIS_URL, fastify.redis is null and @fastify/redis is not registered', async () => {
  const t = await createTestApp()
  try {
    assert.equal(t.app.redis, null)
    assert.equal(t.app.hasPlugin('@fastify/redis'), false)
  } finally {
    await t.close()
  }
})
