import { Writable } from 'node:stream'
import { buildApp, type App } from '../../app.ts'
import { createConfig } from '../../config.ts'
import type { Clock } from '../../plugins/app/clock.ts'
import { tempDir } from './tmp.ts'
import { testStoreEnv } from './store-env.ts'

/** Every log line an app wrote, kept so tests can search them for secrets. */
export class LogCapture extends Writable {
  readonly lines: string[] = []
  _write (chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    this.lines.push(...chunk.toString('utf8').split('\n').filter((l) => l.length > 0))
    done()
  }

  text () {
    return this.lines.join('\n')
  }
}

export const TEST_SECRETS = {
  JWT_SECRET: 'test-jwt-secret-0123456789abcdefghijklmnop',
  KEY_HASH_SECRET: 'test-key-hash-secret-0123456789abcdefghijk'
}

export interface TestApp {
  app: App
  logs: LogCapture
  dataDir: string
  close (): Promise<void>
}

/** Builds the real app on a fresh SQLite file (and the real Redis when env.REDIS_URL is given). */
export async function createTestApp (env: Record<string, string> = {}, options: { dataDir?: string, clock?: Clock } = {}): Promise<TestApp> {
  const tmp = options.dataDir === undefined ? await tempDir('app') : null
  const dataDir = options.dataDir ?? tmp!.dir
  // In-process apps share the test runner's event loop, whose delay on this 2-core machine under
  // the other suites' load says nothing about the app: no shedding on it unless a test asks.
  // (Spawned servers keep the default and wait for a clean sample before they listen.)
  const config = createConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', DATA_DIR: dataDir, PASSWORD_HASH_COST: '10', VAULT_KDF_COST: '10', AUTH_RATE_LIMIT_MAX: '100000', MAX_EVENT_LOOP_DELAY_MS: '0', ...TEST_SECRETS, ...testStoreEnv(), ...env })
  const logs = new LogCapture()
  const app = await buildApp(config, { logStream: logs, clock: options.clock })
  await app.ready()
  return {
    app,
    logs,
    dataDir,
    close: async () => {
      await app.close()
      await tmp?.remove()
    }
  }
}

/** A clock tests move by hand. */
export class ManualClock implements Clock {
  constructor (public current = Date.now()) {}
  now () { return this.current }
  advance (ms: number) { this.current += ms }
}

/** Registers a user through the API and returns its tokens and an authorization header. */
export async function registerUser (app: App, overrides: { email?: string, password?: string, name?: string } = {}) {
  const email = overrides.email ?? `user-${Math.random().toString(36).slice(2)}@example.com`
  const password = overrides.password ?? 'correct horse battery staple'
  const res = await app.inject({ method: 'POST', url: '/api/auth/register', payload: { email, password, ...(overrides.name ? { name: overrides.name } : {}) } })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  const body = res.json() as { accessToken: string, refreshToken: string, user: { id: string, email: string, role: string } }
  return { ...body, email, password, headers: { authorization: `Bearer ${body.accessToken}` } }
}
