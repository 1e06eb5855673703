import { Writable } from 'node:stream'
import { buildApp, type App } from '../../app.ts'
import { createConfig } from '../../config.ts'
import type { Clock } from '../../plugins/app/clock.ts'
import { dropPrefix, REDIS_URL, testPrefix } from './redis.ts'
import { onScopeEnd, type TestScope } from './scope.ts'
import { testStoreEnv } from './store-env.ts'
import { tempDir, testDir } from './tmp.ts'

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
  /** Closes the app and removes its own folder; a second call waits for the first. */
  close (): Promise<void>
}

export interface TestAppOptions {
  /** A folder the caller owns (two instances, a restart); by default the app gets its own. */
  dataDir?: string
  clock?: Clock
}

/**
 * Builds the real app on a fresh SQLite file (and the real Redis when env.REDIS_URL is given).
 * Given the test's context (`it('...', async (ctx) => createTestApp(ctx, env))`), it closes when
 * the test ends; without one (an app a suite shares), the caller closes it in `after`.
 */
export async function createTestApp (scope: TestScope, env?: Record<string, string>, options?: TestAppOptions): Promise<TestApp>
export async function createTestApp (env?: Record<string, string>, options?: TestAppOptions): Promise<TestApp>
export async function createTestApp (first?: TestScope | Record<string, string>, second?: Record<string, string> | TestAppOptions, third?: TestAppOptions): Promise<TestApp> {
  if (!isScope(first)) return openTestApp(first, second as TestAppOptions | undefined)
  const t = await openTestApp(second as Record<string, string> | undefined, third)
  onScopeEnd(first, t.close)
  return t
}

function isScope (value: unknown): value is TestScope {
  return typeof (value as Partial<TestScope> | undefined)?.after === 'function'
}

async function openTestApp (env: Record<string, string> = {}, options: TestAppOptions = {}): Promise<TestApp> {
  const tmp = options.dataDir === undefined ? await tempDir('app') : null
  const dataDir = options.dataDir ?? tmp!.dir
  // In-process apps share the test runner's event loop, whose delay on this 2-core machine under
  // the other suites' load says nothing about the app: no shedding on it unless a test asks.
  // (Spawned servers keep the default and wait for a clean sample before they listen.)
  const config = createConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', DATA_DIR: dataDir, PASSWORD_HASH_COST: '10', VAULT_KDF_COST: '10', AUTH_RATE_LIMIT_MAX: '100000', MAX_EVENT_LOOP_DELAY_MS: '0', ...TEST_SECRETS, ...testStoreEnv(), ...env })
  const logs = new LogCapture()
  const app = await buildApp(config, { logStream: logs, clock: options.clock })
  await app.ready()
  let closing: Promise<void> | undefined
  return {
    app,
    logs,
    dataDir,
    close: () => {
      closing ??= app.close().then(() => tmp?.remove())
      return closing
    }
  }
}

/** `N` of a kind, as a tuple, so `const { apps: [a, b] }` is typed without `!`. */
type Tuple<T, N extends number, R extends T[] = []> = R['length'] extends N ? R : Tuple<T, N, [T, ...R]>

export interface Instances<N extends number> {
  apps: Tuple<TestApp, N>
  /** Their Redis key prefix (absent with `redis: false`). */
  prefix: string | undefined
  dataDir: string
}

/**
 * `count` instances of one deployment, as a load balancer would see them: one SQLite folder and,
 * unless `redis: false`, the real Redis under a key prefix of their own. When the scope ends the
 * apps close, then the prefix is dropped and the folder removed.
 */
export async function createInstances<N extends number> (scope: TestScope, count: N, env: Record<string, string> = {}, options: { redis?: boolean, clock?: Clock } = {}): Promise<Instances<N>> {
  const dataDir = await testDir(scope, 'instances')
  const prefix = options.redis === false ? undefined : testPrefix('inst')
  if (prefix !== undefined) onScopeEnd(scope, () => dropPrefix(prefix))
  const shared = prefix === undefined ? env : { REDIS_URL, REDIS_PREFIX: prefix, ...env }
  const apps: TestApp[] = []
  for (let i = 0; i < count; i++) apps.push(await createTestApp(scope, shared, { dataDir, clock: options.clock }))
  return { apps: apps as Tuple<TestApp, N>, prefix, dataDir }
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
