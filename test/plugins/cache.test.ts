import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type CacheBus, TwoLayerCache } from '../../plugins/app/cache/cache.ts'
import { dropPrefix, redisClient, testPrefix } from '../helpers/redis.ts'
import { until } from '../helpers/until.ts'

describe('TwoLayerCache in memory', () => {
  it('serves L1 hits, counts misses and coalesces concurrent loads', async () => {
    const cache = new TwoLayerCache({ redis: null, prefix: 'x:' })
    let loads = 0
    const loader = async () => { loads++; await sleep(20); return { n: loads } }
    const results = await Promise.all(Array.from({ length: 10 }, () => cache.get('k', loader)))
    assert.equal(loads, 1, 'one load for ten concurrent misses')
    assert.ok(results.every((r) => r.n === 1))
    assert.deepEqual(await cache.get('k', loader), { n: 1 })
    const stats = cache.stats()
    assert.equal(stats.loads, 1)
    assert.equal(stats.coalesced, 9)
    assert.equal(stats.l1.hits, 1)
    assert.equal(stats.l1.misses, 10)
    assert.equal(stats.l2.enabled, false)
  })

  it('expires entries after their TTL and forgets deleted keys', async () => {
    const cache = new TwoLayerCache({ redis: null, prefix: 'x:' })
    let n = 0
    const loader = async () => ++n
    assert.equal(await cache.get('ttl', loader, { ttlMs: 30 }), 1)
    assert.equal(await cache.get('ttl', loader, { ttlMs: 30 }), 1)
    await sleep(50) // past the TTL
    assert.equal(await cache.get('ttl', loader, { ttlMs: 30 }), 2)
    await cache.delete('ttl')
    assert.equal(await cache.get('ttl', loader), 3)
  })

  it('a generation bump moves every key built with it', async () => {
    const cache = new TwoLayerCache({ redis: null, prefix: 'x:' })
    assert.equal(await cache.generation('user-1'), 0)
    assert.equal(await cache.bumpGeneration('user-1'), 1)
    assert.equal(await cache.generation('user-1'), 1)
    assert.equal(await cache.generation('user-2'), 0)
  })

  it('a failing loader is not cached and does not poison later calls', async () => {
    const cache = new TwoLayerCache({ redis: null, prefix: 'x:' })
    await assert.rejects(cache.get('f', async () => { throw new Error('store down') }), /store down/)
    assert.equal(await cache.get('f', async () => 'ok'), 'ok')
  })

  it('ttlFor gives each loaded value its own TTL', async () => {
    const cache = new TwoLayerCache({ redis: null, prefix: 'x:' })
    let n = 0
    const loader = async () => (++n === 1 ? null : n)
    const options = { ttlMs: 60_000, ttlFor: (v: number | null) => (v === null ? 20 : 60_000) }
    assert.equal(await cache.get('neg', loader, options), null)
    assert.equal(await cache.get('neg', loader, options), null, 'the negative result is cached')
    // Time passing is what is tested here: the 20 ms entry expires, the 60 s one does not.
    await sleep(40)
    assert.equal(await cache.get('neg', loader, options), 2, 'for its own shorter TTL')
    await sleep(40)
    assert.equal(await cache.get('neg', loader, options), 2)
  })

  it('a key deleted while its load runs is not cached from that load; its callers still get the value', async () => {
    const cache = new TwoLayerCache({ redis: null, prefix: 'x:' })
    let release = () => {}
    const loaded = new Promise<void>((resolve) => { release = resolve })
    const slow = cache.get('k', async () => { await loaded; return 'before the delete' })
    await cache.delete('k')
    release()
    assert.equal(await slow, 'before the delete')
    assert.equal(await cache.get('k', async () => 'after the delete'), 'after the delete')
  })
})

describe('TwoLayerCache without Redis, joined by a bus (the cluster primary relays between workers)', () => {
  /** Processes on one bus: what one publishes reaches every other one, as the primary relays it. */
  function busOf () {
    const handlers = new Set<(raw: string) => void>()
    return (): CacheBus => {
      let own: ((raw: string) => void) | undefined
      return {
        publish: (raw) => { for (const h of handlers) if (h !== own) h(raw) },
        subscribe: (onMessage) => { own = onMessage; handlers.add(onMessage) },
        close: () => { if (own !== undefined) handlers.delete(own) }
      }
    }
  }

  it('a bump or a delete in one process drops the entry in the other at once', async () => {
    const join = busOf()
    const a = new TwoLayerCache({ redis: null, bus: join(), prefix: 'kw:' })
    const b = new TwoLayerCache({ redis: null, bus: join(), prefix: 'kw:' })
    await a.start()
    await b.start()
    let loads = 0
    const loader = async () => ++loads
    assert.equal(await b.get(`s:${await b.generation('user')}:x`, loader), 1)
    await a.bumpGeneration('user')
    assert.equal(await b.get(`s:${await b.generation('user')}:x`, loader), 2, 'B moved to a new generation')
    assert.equal(await b.get('plain', loader), 3)
    await a.delete('plain')
    assert.equal(await b.get('plain', loader), 4, 'B dropped the deleted key')
  })

  it('a bump from a restarted process (its own count back at 0) still moves the others past every generation they used', async () => {
    const join = busOf()
    const a = new TwoLayerCache({ redis: null, bus: join(), prefix: 'kw:' })
    await a.start()
    for (let i = 0; i < 3; i++) await a.bumpGeneration('user')
    assert.equal(await a.generation('user'), 3)
    const restarted = new TwoLayerCache({ redis: null, bus: join(), prefix: 'kw:' })
    await restarted.start()
    assert.equal(await restarted.bumpGeneration('user'), 1)
    assert.ok(await a.generation('user') > 3, 'A does not stay on a generation its cached entries were built with')
  })
})

describe('TwoLayerCache on the real Redis', () => {
  const prefix = testPrefix('cache')
  const clients: Array<ReturnType<typeof redisClient>> = []
  const caches: TwoLayerCache[] = []
  after(async () => {
    for (const c of caches) await c.stop()
    for (const c of clients) c.disconnect()
    await dropPrefix(prefix)
  })

  async function instance () {
    const redis = redisClient()
    const subscriber = redisClient()
    clients.push(redis, subscriber)
    const cache = new TwoLayerCache({ redis, subscriber, prefix })
    await cache.start()
    caches.push(cache)
    return cache
  }

  it('shares values through L2 and invalidations through pub/sub', async () => {
    const a = await instance()
    const b = await instance()
    let loads = 0
    const loader = async () => ({ version: ++loads })
    assert.deepEqual(await a.get('shared', loader), { version: 1 })
    // A writes L2 without waiting for it: wait for the write, not for a time.
    const raw = redisClient()
    clients.push(raw)
    await until(async () => await raw.exists(`${prefix}cache:shared`) === 1, 2000, 'A\'s value reaches Redis')
    assert.deepEqual(await b.get('shared', loader), { version: 1 }, 'B reads A\'s value from Redis')
    assert.equal(b.stats().l2.hits, 1)

    await a.delete('shared')
    await until(() => b.stats().invalidationsReceived === 1, 2000, 'B receives A\'s delete over pub/sub')
    assert.deepEqual(await b.get('shared', loader), { version: 2 }, 'B dropped its L1 copy after A\'s delete')
  })

  it('generations are shared: a bump in one process is seen by the other at once', async () => {
    const a = await instance()
    const b = await instance()
    assert.equal(await b.generation('scope'), 0)
    // No wait: with Redis a generation is read from the shared counter every time.
    assert.equal(await a.bumpGeneration('scope'), 1)
    assert.equal(await b.generation('scope'), 1)
    assert.equal(await b.bumpGeneration('scope'), 2)
    assert.equal(await a.generation('scope'), 2)
  })

  it('a generation Redis lost (restart, eviction) never goes back to one a process has seen, so a bump is not undone', async () => {
    const a = await instance()
    const b = await instance()
    const before = await a.generation('lost')
    let loads = 0
    const loader = async () => ({ session: 'valid', load: ++loads })
    await a.get(`session:${before}:s1`, loader, { l2: false })
    assert.equal(await b.bumpGeneration('lost'), before + 1, 'the session is revoked: its scope moves on')
    assert.equal(await a.generation('lost'), before + 1)

    const raw = redisClient()
    clients.push(raw)
    await raw.del(`${prefix}cache:gen:lost`) // Redis loses the counter
    const after = await a.generation('lost')
    assert.ok(after > before + 1, `generation ${after} is past every one seen (${before + 1}), not back at 0`)
    assert.equal(await raw.get(`${prefix}cache:gen:lost`), String(after), 'the raised counter is back in Redis for the others')
    assert.equal(await b.generation('lost'), after)
    assert.deepEqual(await a.get(`session:${after}:s1`, loader, { l2: false }), { session: 'valid', load: 2 }, 'the entry cached before the bump is not served')
  })
})
