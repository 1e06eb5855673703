import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConfigError, createConfig, FD_RESERVE, openFileLimit } from '../config.ts'

const SECRETS = {
  JWT_SECRET: 'a'.repeat(16) + 'b'.repeat(16) + 'c'.repeat(8),
  KEY_HASH_SECRET: 'k'.repeat(40)
}

describe('createConfig', () => {
  it('runs with nothing set: embedded store, in-memory cache, generated secrets with warnings', () => {
    const config = createConfig({ NODE_ENV: 'test' })
    assert.equal(config.port, 8080)
    assert.equal(config.host, '0.0.0.0')
    assert.equal(config.env, 'test')
    assert.match(config.dataDir, /data$/)
    assert.equal(config.mongo, undefined)
    assert.equal(config.redis, undefined)
    assert.deepEqual(config.corsOrigins, [])
    assert.equal(config.trustProxy, false)
    assert.equal(config.http.bodyLimit, 1024 * 1024)
    assert.ok(config.auth.jwtSecret.length >= 32)
    assert.ok(config.keys.hashSecret.length >= 32)
    assert.notEqual(config.auth.jwtSecret, createConfig({ NODE_ENV: 'test' }).auth.jwtSecret, 'a fresh secret per process')
    assert.equal(config.warnings.length, 2)
    assert.ok(config.warnings.every((w) => !w.includes(config.auth.jwtSecret)), 'warnings never print the secret')
  })

  it('development keeps its generated secrets in DATA_DIR across restarts', async () => {
    const { tempDir } = await import('./helpers/tmp.ts')
    const { statSync } = await import('node:fs')
    const tmp = await tempDir('config')
    try {
      const first = createConfig({ DATA_DIR: tmp.dir })
      assert.equal(first.env, 'development')
      const second = createConfig({ DATA_DIR: tmp.dir })
      assert.equal(second.auth.jwtSecret, first.auth.jwtSecret)
      assert.equal(second.keys.hashSecret, first.keys.hashSecret)
      assert.notEqual(first.auth.jwtSecret, first.keys.hashSecret)
      assert.equal(statSync(`${tmp.dir}/.dev-secrets.json`).mode & 0o777, 0o600)
      assert.match(first.warnings[0] as string, /generated development secret/)
    } finally {
      await tmp.remove()
    }
  })

  it('coerces and bounds numbers', () => {
    assert.equal(createConfig({ NODE_ENV: 'test', PORT: '3000' }).port, 3000)
    assert.throws(() => createConfig({ NODE_ENV: 'test', PORT: 'abc' }), (err: Error) =>
      err instanceof ConfigError && /^Invalid configuration: PORT must be integer \(got "abc"\)$/.test(err.message))
    assert.throws(() => createConfig({ NODE_ENV: 'test', PORT: '70000' }), /PORT must be <= 65535/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', MAX_CONNECTIONS: '0' }), /MAX_CONNECTIONS must be >= 1/)
  })

  it('names the variable for bad enumerations and URLs', () => {
    assert.throws(() => createConfig({ NODE_ENV: 'staging' }), /NODE_ENV/)
    assert.throws(() => createConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', MONGODB_URI: 'postgres://x' }), /MONGODB_URI must match pattern/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', REDIS_URL: 'localhost:6379' }), /REDIS_URL must match pattern/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', FRONTEND_URL: 'not a url' }), /FRONTEND_URL entry "not a url" is not a URL/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', FRONTEND_URL: 'https://app.example.com/path' }), /must be an origin/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', TRUST_PROXY: 'evil host' }), /TRUST_PROXY entry/)
  })

  it('parses lists', () => {
    const config = createConfig({
      NODE_ENV: 'test',
      FRONTEND_URL: 'https://app.example.com, http://localhost:5173/',
      TRUST_PROXY: '10.0.0.0/8,127.0.0.1',
      ADMIN_EMAILS: ' Root@Example.com ,ops@example.com'
    })
    assert.deepEqual(config.corsOrigins, ['https://app.example.com', 'http://localhost:5173'])
    assert.deepEqual(config.trustProxy, ['10.0.0.0/8', '127.0.0.1'])
    assert.deepEqual(config.auth.adminEmails, ['root@example.com', 'ops@example.com'])
    assert.equal(createConfig({ NODE_ENV: 'test', TRUST_PROXY: '2' }).trustProxy, 2)
    assert.equal(createConfig({ NODE_ENV: 'test', TRUST_PROXY: 'true' }).trustProxy, true)
  })

  it('configures MongoDB and Redis only when their URLs are set', () => {
    const config = createConfig({ NODE_ENV: 'test', MONGODB_URI: 'mongodb://db:27017/kw', REDIS_URL: 'redis://cache:6379/2' })
    assert.equal(config.mongo?.uri, 'mongodb://db:27017/kw')
    assert.equal(config.redis?.url, 'redis://cache:6379/2')
  })

  it('takes the MongoDB database from the URI, else MONGODB_DB', () => {
    const database = (env: Record<string, string>) => createConfig({ NODE_ENV: 'test', ...env }).mongo?.database
    assert.equal(database({ MONGODB_URI: 'mongodb://db:27017/kw', MONGODB_DB: 'other' }), 'kw')
    assert.equal(database({ MONGODB_URI: 'mongodb+srv://u:p@cluster.example.net/k%2Dw?retryWrites=true' }), 'k-w')
    assert.equal(database({ MONGODB_URI: 'mongodb://db:27017/?replicaSet=rs0', MONGODB_DB: 'other' }), 'other')
    assert.equal(database({ MONGODB_URI: 'mongodb://db:27017' }), 'keyward')
  })

  it('refuses to start in production without secrets, or with short or placeholder ones', () => {
    assert.throws(() => createConfig({ NODE_ENV: 'production' }), /JWT_SECRET is required in production/)
    assert.throws(() => createConfig({ NODE_ENV: 'production', JWT_SECRET: SECRETS.JWT_SECRET }), /KEY_HASH_SECRET is required in production/)
    assert.throws(() => createConfig({ NODE_ENV: 'production', ...SECRETS, JWT_SECRET: 'short' }), (err: Error) =>
      /JWT_SECRET must NOT have fewer than 32 characters$/.test(err.message) && !err.message.includes('short'))
    assert.throws(() => createConfig({ NODE_ENV: 'production', ...SECRETS, KEY_HASH_SECRET: 'changeme-changeme-changeme-changeme' }), /placeholder/)
    const config = createConfig({ NODE_ENV: 'production', ...SECRETS })
    assert.equal(config.isProduction, true)
    assert.equal(config.auth.jwtSecret, SECRETS.JWT_SECRET)
    assert.deepEqual(config.warnings, [])
  })

  it('keeps the headers timeout within the request timeout', () => {
    const config = createConfig({ NODE_ENV: 'test', REQUEST_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '20000' })
    assert.equal(config.http.headersTimeoutMs, 5000)
  })

  it('lowers the connection cap to fit the open-file limit, and says so', () => {
    const limit = openFileLimit()
    const config = createConfig({ NODE_ENV: 'test', ...SECRETS, MAX_CONNECTIONS: '1000000' })
    if (limit === undefined || limit - FD_RESERVE >= 1_000_000) {
      assert.equal(config.http.maxConnections, 1_000_000)
    } else {
      assert.equal(config.http.maxConnections, limit - FD_RESERVE)
      assert.match(config.warnings.join('\n'), /MAX_CONNECTIONS 1000000 does not fit the open-file limit/)
    }
    assert.equal(createConfig({ NODE_ENV: 'test', ...SECRETS, MAX_CONNECTIONS: '123' }).http.maxConnections, 123)
  })
})
