import assert from 'node:assert/strict'
import { it } from 'node:test'
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

it('without REDIS_URL, fastify.redis is null and @fastify/redis is not registered', async () => {
  const t = await createTestApp()
  try {
    assert.equal(t.app.redis, null)
    assert.equal(t.app.hasPlugin('@fastify/redis'), false)
  } finally {
    await t.close()
  }
})
