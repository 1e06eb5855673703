import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A key prefix of this test's own, so parallel tests never see each other's keys. */
export function testPrefix (label = 't') {
  return `kwtest:${label}:${randomBytes(4).toString('hex')}:`
}

export function redisClient () {
  return new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 })
}

/** Deletes every key under a prefix with SCAN (never FLUSHDB: the server is shared). */
export async function dropPrefix (prefix: string) {
  const client = redisClient()
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

/**
 * A redis-server of the test's own on `port` (nothing saved), for tests that kill and restart
 * it. Resolves once it answers PING.
 */
export async function startRedis (port: number): Promise<ChildProcess> {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  probe.on('error', () => {})
  for (let i = 0; i < 50; i++) {
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return proc
    } catch {
      await sleep(100)
    }
  }
  probe.disconnect()
  proc.kill('SIGKILL')
  throw new Error('redis-server did not start')
}
