import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import proxyAddr from '@fastify/proxy-addr'
import { ConfigError, createConfig, FD_RESERVE, openFileLimit } from '../config.ts'
import { nextRun } from '../plugins/app/jobs/embedded.ts'
import { staleReadPreference } from '../plugins/app/store/mongo/connection.ts'
import { EnvSchema } from '../schemas/env.ts'

const SECRETS = {
  JWT_SECRET: 'a'.repeat(16) + 'b'.repeat(16) + 'c'.repeat(8),
  KEY_HASH_SECRET: 'k'.repeat(40)
}

describe('createConfig', () => {
  it('runs with nothing set: embedded store, in-memory cache, generated secrets with warnings', () => {
    const config = createConfig({ NODE_ENV: 'test' })
    assert.equal(config.port, 8080)
    assert.equal(config.host, '127.0.0.1', 'loopback unless HOST is set')
    assert.equal(config.metrics.host, '127.0.0.1', 'the METRICS_PORT listener too, unless METRICS_HOST is set')
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

  it('development keeps its generated secrets in DATA_DIR across restarts', async (ctx) => {
    const { testDir } = await import('./helpers/tmp.ts')
    const { statSync } = await import('node:fs')
    const dataDir = await testDir(ctx, 'config')
    const first = createConfig({ DATA_DIR: dataDir })
    assert.equal(first.env, 'development')
    const second = createConfig({ DATA_DIR: dataDir })
    assert.equal(second.auth.jwtSecret, first.auth.jwtSecret)
    assert.equal(second.keys.hashSecret, first.keys.hashSecret)
    assert.notEqual(first.auth.jwtSecret, first.keys.hashSecret)
    assert.equal(statSync(`${dataDir}/.dev-secrets.json`).mode & 0o777, 0o600)
    assert.match(first.warnings[0] as string, /generated development secret/)
  })

  it('coerces and bounds numbers', () => {
    assert.equal(createConfig({ NODE_ENV: 'test', PORT: '3000' }).port, 3000)
    assert.throws(() => createConfig({ NODE_ENV: 'test', PORT: 'abc' }), (err: Error) =>
      err instanceof ConfigError && /^Invalid configuration: PORT must be an integer from 0 to 65535 \(got "abc"\)$/.test(err.message))
    assert.throws(() => createConfig({ NODE_ENV: 'test', PORT: '70000' }), /PORT must be an integer from 0 to 65535 \(got "70000"\)/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', MAX_CONNECTIONS: '0' }), /MAX_CONNECTIONS must be an integer from 1 to 1000000 \(got "0"\)/)
  })

  it('names the variable for bad enumerations and URLs', () => {
    assert.throws(() => createConfig({ NODE_ENV: 'staging' }), /NODE_ENV/)
    assert.throws(() => createConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', MONGODB_URI: 'postgres://x' }), /MONGODB_URI must be a mongodb:\/\/ or mongodb\+srv:\/\/ URL \(got "postgres:\/\/x"\)/)
    assert.throws(() => createConfig({ NODE_ENV: 'test', REDIS_URL: 'localhost:6379' }), /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/)
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

  it('MONGODB_READ_PREFERENCE and MONGODB_MAX_STALENESS_SECONDS: primary and 90 s by default, refused in one line otherwise', () => {
    const staleReads = (env: Record<string, string>) => createConfig({ NODE_ENV: 'test', MONGODB_URI: 'mongodb://db:27017/kw', ...env }).mongo?.staleReads
    assert.deepEqual(staleReads({}), { mode: 'primary', maxStalenessSeconds: 90 })
    assert.deepEqual(staleReads({ MONGODB_READ_PREFERENCE: 'secondaryPreferred', MONGODB_MAX_STALENESS_SECONDS: '120' }), { mode: 'secondaryPreferred', maxStalenessSeconds: 120 })
    assert.throws(() => staleReads({ MONGODB_READ_PREFERENCE: 'secondaryOnly' }), (err: Error) =>
      /^Invalid configuration: MONGODB_READ_PREFERENCE must be one of primary, primaryPreferred, secondaryPreferred, secondary, nearest \(got "secondaryOnly"\)$/.test(err.message))
    assert.throws(() => staleReads({ MONGODB_MAX_STALENESS_SECONDS: '30' }), (err: Error) =>
      /^Invalid configuration: MONGODB_MAX_STALENESS_SECONDS must be an integer from 90 to 86400 \(got "30"\)$/.test(err.message))
    assert.equal(staleReadPreference('primary', 90).mode, 'primary')
    assert.equal(staleReadPreference('primary', 90).maxStalenessSeconds, undefined, 'the driver refuses a bound with primary')
    const secondary = staleReadPreference('secondaryPreferred', 120)
    assert.deepEqual([secondary.mode, secondary.maxStalenessSeconds], ['secondaryPreferred', 120])
  })

  it('refuses to start in production without secrets, or with short or placeholder ones', () => {
    assert.throws(() => createConfig({ NODE_ENV: 'production' }), /JWT_SECRET is required in production/)
    assert.throws(() => createConfig({ NODE_ENV: 'production', JWT_SECRET: SECRETS.JWT_SECRET }), /KEY_HASH_SECRET is required in production/)
    assert.throws(() => createConfig({ NODE_ENV: 'production', ...SECRETS, JWT_SECRET: 'short' }), (err: Error) =>
      /JWT_SECRET must be 32 to 512 characters$/.test(err.message) && !err.message.includes('short'))
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

  describe('every variable refused at start-up is named, with its allowed values, in one line', () => {
    interface VarSchema { type?: string, anyOf?: Array<{ const: string }>, minimum?: number, maximum?: number, minLength?: number, maxLength?: number, pattern?: string }
    const refuse = (env: Record<string, string>, name: string, allowed: RegExp) => {
      assert.throws(() => createConfig({ NODE_ENV: 'test', ...SECRETS, ...env }), (err: Error) => {
        assert.ok(err instanceof ConfigError, `${name}: a ConfigError, not ${err.name}: ${err.message}`)
        assert.ok(err.message.startsWith(`Invalid configuration: ${name} `), err.message)
        assert.ok(!err.message.includes('\n'), `${name}: one line`)
        assert.match(err.message, allowed)
        if (/SECRET|TOKEN/.test(name)) for (const value of Object.values(env)) assert.ok(!err.message.includes(value), `${name}: the value is not shown`)
        return true
      })
    }
    const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

    for (const [name, raw] of Object.entries(EnvSchema.properties)) {
      const schema = raw as VarSchema
      it(name, () => {
        if (schema.anyOf !== undefined) {
          refuse({ [name]: 'not-a-choice' }, name, new RegExp(`must be one of ${schema.anyOf.map((s) => s.const).join(', ')} \\(got "not-a-choice"\\)$`))
        } else if (schema.type === 'boolean') {
          refuse({ [name]: 'maybe' }, name, /must be true or false \(got "maybe"\)$/)
        } else if (schema.type === 'integer' || schema.type === 'number') {
          const range = new RegExp(`must be an? ${schema.type} from ${schema.minimum} to ${schema.maximum}`)
          refuse({ [name]: 'x' }, name, range)
          refuse({ [name]: String((schema.maximum ?? 0) + 1) }, name, range)
          if ((schema.minimum ?? 0) > 0) refuse({ [name]: String((schema.minimum ?? 0) - 1) }, name, range)
        } else if (schema.pattern !== undefined) {
          refuse({ [name]: 'not valid here' }, name, /must be \S.* \(got "not valid here"\)$/)
        } else {
          refuse({ [name]: 'x'.repeat((schema.maxLength ?? 0) + 1) }, name, new RegExp(`must be ${schema.minLength ?? 0} to ${schema.maxLength} characters`))
          if ((schema.minLength ?? 0) > 1) refuse({ [name]: 'x' }, name, new RegExp(`must be ${schema.minLength} to ${schema.maxLength} characters`))
        }
      })
    }

    it('TRUST_PROXY and RATE_LIMIT_ALLOW_CIDRS: only what proxy-addr accepts, checked before the app is built', () => {
      const allowed = /must be .*loopback, linklocal, uniquelocal and IPv4 or IPv6 addresses, optionally with a \/prefix \(\/1 to \/32 for IPv4, \/1 to \/128 for IPv6\)$/
      for (const entry of ['10.0.0.0/33', '::/129', '0.0.0.0/0', '10.0.0.1/8/1', '10.0.0.256', '10.0.0.0/', 'fd00::/-1', 'evil host']) {
        refuse({ TRUST_PROXY: `127.0.0.1,${entry}` }, 'TRUST_PROXY', new RegExp(`entry "${escape(entry)}" is not allowed: .*${allowed.source}`))
        refuse({ RATE_LIMIT_ALLOW_CIDRS: entry }, 'RATE_LIMIT_ALLOW_CIDRS', allowed)
        assert.throws(() => proxyAddr.compile(entry), `proxy-addr refuses ${entry} too`)
      }
      for (const entry of ['10.0.0.0/32', '0.0.0.0/1', '::/1', 'fd00::/128', '::ffff:10.0.0.1', '192.168.1.1', '10.0.0.0/255.0.0.0']) {
        const config = createConfig({ NODE_ENV: 'test', TRUST_PROXY: entry, RATE_LIMIT_ALLOW_CIDRS: entry })
        assert.deepEqual(config.trustProxy, [entry])
        assert.doesNotThrow(() => proxyAddr.compile(config.trustProxy as string[]))
      }
      assert.deepEqual(createConfig({ NODE_ENV: 'test', TRUST_PROXY: 'loopback,uniquelocal' }).trustProxy, ['loopback', 'uniquelocal'])
    })

    it('JOBS_TZ: an IANA time zone the job schedules can use', () => {
      refuse({ JOBS_TZ: 'Mars/Base' }, 'JOBS_TZ', /must be an IANA time zone such as UTC, Europe\/Paris or America\/New_York \(got "Mars\/Base"\)$/)
      for (const tz of ['UTC', 'Europe/Paris', 'America/New_York', 'Etc/GMT+5']) {
        const config = createConfig({ NODE_ENV: 'test', JOBS_TZ: tz })
        assert.ok(nextRun('0 3 * * *', Date.now(), config.jobs.tz) > Date.now(), `${tz} schedules`)
      }
    })

    it('METRICS_PORT: off, or a port other than PORT', () => {
      refuse({ PORT: '9100', METRICS_PORT: '9100' }, 'METRICS_PORT', /must be 0 \(off\) or a port other than PORT, from 1 to 65535 \(both are 9100\)$/)
      assert.equal(createConfig({ NODE_ENV: 'test', PORT: '0', METRICS_PORT: '0' }).metrics.port, 0)
      assert.equal(createConfig({ NODE_ENV: 'test', PORT: '9100', METRICS_PORT: '9101' }).metrics.port, 9101)
    })

    it('enumerations list their values', () => {
      refuse({ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL', /^Invalid configuration: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent \(got "verbose"\)$/)
      refuse({ NODE_ENV: 'staging' }, 'NODE_ENV', /^Invalid configuration: NODE_ENV must be one of development, production, test \(got "staging"\)$/)
    })

    it('list entries: FRONTEND_URL, ADMIN_EMAILS; and ALERT_WEBHOOK_URL must parse', () => {
      refuse({ FRONTEND_URL: 'not a url' }, 'FRONTEND_URL', /entry "not a url" is not a URL: FRONTEND_URL must be a comma-separated list of origins/)
      refuse({ ADMIN_EMAILS: 'ops@example.com,root' }, 'ADMIN_EMAILS', /entry "root" is not allowed: ADMIN_EMAILS must be a comma-separated list of email addresses$/)
      refuse({ ALERT_WEBHOOK_URL: 'http://' }, 'ALERT_WEBHOOK_URL', /must be an http:\/\/ or https:\/\/ URL \(got "http:\/\/"\)$/)
      refuse({ HOST: '0.0.0.0:8080 ' }, 'HOST', /must be an IP address or host name such as 127\.0\.0\.1, 0\.0\.0\.0 or ::/)
    })
  })
})
