import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import proxyAddr from '@fastify/proxy-addr'
import { Ajv } from 'ajv'
import { Type, type Static } from 'typebox'

const Int = (minimum: number, maximum: number, def: number, description: string) =>
  Type.Integer({ minimum, maximum, default: def, description })

// An IP address or a host name: what listen() accepts, without spaces, brackets or ports.
const HOST_PATTERN = '^[A-Za-z0-9._:-]{1,255}$'
const HOST_ALLOWED = 'an IP address or host name such as 127.0.0.1, 0.0.0.0 or ::'

const Secret = (description: string) => Type.Optional(Type.String({ minLength: 32, maxLength: 512, description }))

/**
 * Every setting Keyward reads, as the environment spells it. Values arrive as strings;
 * numbers and booleans are coerced by the validator, and nothing else is accepted.
 */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development', description: 'development, test or production (production requires every secret)' }),
  PORT: Int(0, 65535, 8080, 'HTTP port of the API'),
  HOST: Type.String({ pattern: HOST_PATTERN, allowed: HOST_ALLOWED, default: '127.0.0.1', description: 'Address to listen on: loopback unless set (0.0.0.0 = every interface, as the image and manifests set)' }),
  LOG_REQUESTS: Type.Boolean({ default: false, description: 'Log every request and response (errors and slow requests are always logged)' }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'pino log level' }),
  DATA_DIR: Type.String({ minLength: 1, maxLength: 4096, default: './data', description: 'Folder of the embedded SQLite store' }),
  SQLITE_BUSY_TIMEOUT_MS: Int(0, 60_000, 250, "How long a write waits for another process's lock on the SQLite file; past it the write gets 503 STORE_BUSY and writes fail fast for 1 s (the wait blocks the event loop)"),
  MONGODB_URI: Type.Optional(Type.String({ pattern: '^mongodb(\\+srv)?://', allowed: 'a mongodb:// or mongodb+srv:// URL', maxLength: 4096, description: 'MongoDB connection string; unset = embedded SQLite' })),
  MONGODB_DB: Type.String({ pattern: '^[A-Za-z0-9_-]{1,63}$', allowed: '1 to 63 letters, digits, _ or -', default: 'keyward', description: 'Database name when MONGODB_URI names none' }),
  MONGODB_CONNECT_TIMEOUT_MS: Int(500, 60000, 5000, 'Server selection timeout at start-up'),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', allowed: 'a redis:// or rediss:// URL', maxLength: 4096, description: 'Redis URL; unset = in-memory cache and limits' })),
  REDIS_COMMAND_TIMEOUT_MS: Int(50, 60_000, 300, 'A Redis command unanswered this long fails (the caller falls back to memory or the store) and the connection is reopened, so a frozen Redis cannot hang requests'),
  REDIS_PREFIX: Type.String({ pattern: '^[A-Za-z0-9:_-]{1,64}$', allowed: '1 to 64 letters, digits, :, _ or -', default: 'kw:', description: 'Prefix of every Redis key Keyward writes' }),
  FRONTEND_URL: Type.String({ maxLength: 4096, default: '', description: 'Comma-separated CORS allow-list of origins' }),
  TRUST_PROXY: Type.String({ maxLength: 1024, default: 'false', description: 'false, true, a hop count, or comma-separated proxy addresses/CIDRs' }),
  BODY_LIMIT: Int(1024, 16 * 1024 * 1024, 1024 * 1024, 'Largest request body in bytes'),
  MAX_CONNECTIONS: Int(1, 1_000_000, 10_000, 'Open connections per process before new ones are refused'),
  CONNECTION_TIMEOUT_MS: Int(1000, 3_600_000, 120_000, 'Socket inactivity timeout while a request is read or answered (idle keep-alive sockets use KEEP_ALIVE_TIMEOUT_MS)'),
  KEEP_ALIVE_TIMEOUT_MS: Int(1000, 600_000, 72_000, 'Keep-alive timeout (above common load balancer idle timeouts)'),
  REQUEST_TIMEOUT_MS: Int(1000, 600_000, 30_000, 'Whole-request timeout'),
  HEADERS_TIMEOUT_MS: Int(1000, 600_000, 10_000, 'Time allowed to receive request headers (slowloris bound)'),
  MAX_REQUESTS_PER_SOCKET: Int(0, 10_000_000, 0, 'Requests per keep-alive socket (0 = unlimited); past it Node answers 503 and leaves closing to the client'),
  SHUTDOWN_TIMEOUT_MS: Int(1000, 120_000, 10_000, 'Graceful shutdown bound'),
  MAX_EVENT_LOOP_DELAY_MS: Int(0, 60_000, 1000, 'Under-pressure: event-loop delay (0 = off)'),
  MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0, description: 'Under-pressure: event-loop utilisation (0 = off; a saturated but healthy process sits near 1)' }),
  MAX_HEAP_USED_BYTES: Int(0, Number.MAX_SAFE_INTEGER, 0, 'Under-pressure: heap bytes (0 = 90% of the heap limit)'),
  MAX_RSS_BYTES: Int(0, Number.MAX_SAFE_INTEGER, 0, 'Under-pressure: RSS bytes (0 = off)'),
  JWT_SECRET: Secret('Signs access tokens (required in production)'),
  KEY_HASH_SECRET: Secret('Pepper of the issued-key lookup hash (required in production)'),
  JWT_ACCESS_TTL_SECONDS: Int(60, 86_400, 900, 'Access token lifetime'),
  REFRESH_TTL_SECONDS: Int(3600, 31_536_000, 30 * 86_400, 'Refresh token (session) lifetime'),
  PASSWORD_HASH_COST: Int(10, 20, 15, 'scrypt cost as log2(N) for new password hashes; raising it re-hashes at next login'),
  ADMIN_EMAILS: Type.String({ maxLength: 4096, default: '', description: 'Comma-separated emails promoted to admin on register or login' }),
  AUTH_RATE_LIMIT_MAX: Int(1, 1_000_000, 10, 'Auth tier: attempts per window per IP'),
  AUTH_RATE_LIMIT_WINDOW_MS: Int(1000, 86_400_000, 15 * 60_000, 'Auth tier window'),
  GENERAL_RATE_LIMIT_MAX: Int(1, 1_000_000_000, 1000, 'General tier: requests per window per client IP (every route not in another tier)'),
  GENERAL_RATE_LIMIT_WINDOW_MS: Int(1000, 86_400_000, 15 * 60_000, 'General tier window'),
  VERIFY_RATE_LIMIT_MAX: Int(0, 1_000_000_000, 0, 'Verify tier: calls per window per caller credential (0 = off)'),
  VERIFY_RATE_LIMIT_WINDOW_MS: Int(1000, 86_400_000, 60_000, 'Verify tier window'),
  VERIFY_FAILURE_LIMIT_MAX: Int(1, 1_000_000_000, 100, 'Verify-failure tier: MALFORMED or NOT_FOUND answers per window per caller credential (and end user, with client); only failing calls are refused'),
  VERIFY_FAILURE_LIMIT_WINDOW_MS: Int(1000, 86_400_000, 60_000, 'Verify-failure tier window'),
  RATE_LIMIT_BLOCK_MS: Int(1000, 86_400_000, 15 * 60_000, 'First block after a tier is exceeded; each further violation within a day doubles it'),
  RATE_LIMIT_MAX_BLOCK_MS: Int(1000, 7 * 86_400_000, 86_400_000, 'Longest block'),
  RATE_LIMIT_ALLOW_CIDRS: Type.String({ maxLength: 4096, default: '127.0.0.0/8,::1/128', description: 'Addresses whose health and metrics requests are never limited' }),
  KEY_CREATE_RATE_LIMIT_MAX: Int(1, 1_000_000, 20, 'Key-creation tier: keys per hour per user'),
  HEAVY_RATE_LIMIT_MAX: Int(1, 1_000_000, 100, 'Heavy tier: reveal, rotate, bulk, export and audit verify per hour per user'),
  USAGE_FLUSH_INTERVAL_MS: Int(100, 60_000, 1000, 'How often usage counts and lastUsedAt are written to the store'),
  JOBS_TZ: Type.String({ minLength: 1, maxLength: 64, default: 'UTC', description: 'Time zone of the job schedules' }),
  JOBS_EMBEDDED: Type.Boolean({ default: true, description: 'Without REDIS_URL, run the maintenance jobs in the API process (one process holds the lease)' }),
  JOBS_CONCURRENCY: Int(1, 64, 2, 'Jobs a worker process runs at once'),
  JOBS_LOCK_MS: Int(1000, 600_000, 30_000, 'BullMQ job lock: renewed every half of it while a job runs; the job of a worker that died is run again by another worker after at most twice this'),
  WEBHOOK_ALLOW_PRIVATE: Type.Boolean({ default: false, description: 'Allow webhooks to loopback, link-local and private addresses (tests, private networks)' }),
  WEBHOOK_TIMEOUT_MS: Int(500, 60_000, 5000, 'Webhook delivery timeout'),
  RETENTION_REVOKED_KEY_DAYS: Int(0, 3650, 30, 'Revoked keys are purged after this many days'),
  RETENTION_HOURLY_USAGE_DAYS: Int(1, 3650, 90, 'Hourly usage kept this long (daily and monthly totals stay)'),
  RETENTION_AUDIT_DAYS: Int(0, 36500, 0, 'Audit events kept this long (0 = forever); the chain stays verifiable'),
  RETENTION_STATS_DAYS: Int(1, 3650, 30, 'Hourly statistics snapshots kept this long'),
  METRICS_ENABLED: Type.Boolean({ default: true, description: 'Collect request metrics (per-request hooks); off for measuring their cost' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, maxLength: 512, description: 'Bearer token for /metrics on the API port; unset = /metrics only on METRICS_PORT' })),
  METRICS_PORT: Int(0, 65535, 0, 'Serve /metrics on this port instead of the API port (0 = off); must differ from PORT'),
  METRICS_HOST: Type.String({ pattern: HOST_PATTERN, allowed: HOST_ALLOWED, default: '127.0.0.1', description: 'Address of the METRICS_PORT listener: loopback unless set; without METRICS_TOKEN anyone who reaches it reads the metrics' }),
  SLOW_REQUEST_MS: Int(1, 600_000, 500, 'Requests slower than this are counted and logged'),
  ALERT_WEBHOOK_URL: Type.Optional(Type.String({ pattern: '^https?://', allowed: 'an http:// or https:// URL', maxLength: 2048, description: 'Alerts are POSTed here, signed like user webhooks' })),
  ALERT_WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'Signing secret of alert deliveries (default: derived from KEY_HASH_SECRET)' })),
  ALERT_ERROR_RATE: Type.Number({ minimum: 0, maximum: 1, default: 0.05, description: 'Alert when 5xx answers exceed this share of requests' }),
  ALERT_P99_MS: Int(1, 600_000, 500, 'Alert when p99 latency exceeds this'),
  ALERT_EVENT_LOOP_DELAY_MS: Int(1, 600_000, 200, 'Alert when event-loop delay exceeds this'),
  ALERT_HEAP_RATIO: Type.Number({ minimum: 0.1, maximum: 1, default: 0.8, description: 'Alert when the heap exceeds this share of its limit' }),
  ALERT_QUEUE_BACKLOG: Int(1, 100_000_000, 1000, 'Alert when more jobs or deliveries than this are waiting'),
  ALERT_HOLD_MS: Int(0, 3_600_000, 60_000, 'A condition must hold this long to raise an alert, and be clear this long to resolve it'),
  VAULT_KDF_COST: Int(10, 20, 15, 'scrypt cost as log2(N) deriving the vault key from a passphrase')
}, { additionalProperties: true })

type Env = Static<typeof EnvSchema>

const SECRET_NAMES = ['JWT_SECRET', 'KEY_HASH_SECRET'] as const
type SecretName = typeof SECRET_NAMES[number]

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

const ajv = new Ajv({ coerceTypes: true, useDefaults: true, allErrors: false, strict: false })
const validateEnv = ajv.compile(EnvSchema)

const PACKAGE_VERSION: string = JSON.parse(readFileSync(new URL('./package.json', import.meta.url).pathname.replace(/\/dist\/package\.json$/, '/package.json'), 'utf8')).version

const DEV_SECRETS_FILE = '.dev-secrets.json'

/**
 * Development secrets generated once and kept beside the embedded store, so a restart of
 * `npm start` keeps sessions and issued keys valid. Never used in production.
 */
function developmentSecrets (dataDir: string): Record<string, string> {
  try {
    const parsed = JSON.parse(readFileSync(join(dataDir, DEV_SECRETS_FILE), 'utf8'))
    return typeof parsed === 'object' && parsed !== null ? parsed : {}
  } catch {
    return {}
  }
}

function saveDevelopmentSecrets (dataDir: string, secrets: Record<string, string>) {
  try {
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(join(dataDir, DEV_SECRETS_FILE), JSON.stringify(secrets, null, 2), { mode: 0o600 })
  } catch {
    // An unwritable DATA_DIR surfaces when the store opens; secrets then last for this process only.
  }
}

/** Descriptors a process needs besides its client connections: store files, Redis and MongoDB sockets, pipes, webhooks. */
export const FD_RESERVE = 256

/** This process's soft limit on open files (Node raises it to the hard limit at start-up), where /proc tells. */
export function openFileLimit (): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

/**
 * The connection cap, lowered to fit the open-file limit: past the cap a connection is refused
 * cleanly, while past the file limit accept() fails and so does every file, socket and pipe the
 * process then tries to open.
 */
function connectionCap (wanted: number, fileLimit: number | undefined, warnings: string[]): number {
  if (fileLimit === undefined || wanted <= fileLimit - FD_RESERVE) return wanted
  const cap = Math.max(1, fileLimit - FD_RESERVE)
  warnings.push(`MAX_CONNECTIONS ${wanted} does not fit the open-file limit of ${fileLimit} (with ${FD_RESERVE} kept for the process): using ${cap}; raise nofile to hold more`)
  return cap
}

interface VariableSchema { allowed?: string, type?: string, anyOf?: Array<{ const?: unknown }>, minimum?: number, maximum?: number, minLength?: number, maxLength?: number }

/** What a variable accepts, in words, from its schema: every refusal names the allowed values. */
export function allowedValues (schema: VariableSchema): string {
  if (schema.allowed !== undefined) return schema.allowed
  if (schema.anyOf !== undefined) return `one of ${schema.anyOf.map((s) => String(s.const)).join(', ')}`
  if (schema.type === 'boolean') return 'true or false'
  if (schema.type === 'integer') return `an integer from ${schema.minimum} to ${schema.maximum}`
  if (schema.type === 'number') return `a number from ${schema.minimum} to ${schema.maximum}`
  return `${schema.minLength ?? 0} to ${schema.maxLength} characters`
}

/** The refused value, for the error line; never a secret's. */
function shown (name: string, value: string | undefined): string {
  return value === undefined || /SECRET|TOKEN/.test(name) ? '' : ` (got "${value.slice(0, 80)}")`
}

function parseList (value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

const ADDRESS_OR_CIDR = 'loopback, linklocal, uniquelocal and IPv4 or IPv6 addresses, optionally with a /prefix (/1 to /32 for IPv4, /1 to /128 for IPv6)'

/** An entry that proxy-addr (Fastify's trustProxy, the rate limiter's allow-list) accepts, checked here so a bad one is a configuration error. */
function isAddressOrCidr (entry: string): boolean {
  try {
    proxyAddr.compile(entry)
    return true
  } catch {
    return false
  }
}

function parseTrustProxy (value: string): boolean | number | string[] {
  const v = value.trim().toLowerCase()
  if (v === 'false' || v === '0' || v === '') return false
  if (v === 'true') return true
  if (/^\d+$/.test(v)) return Number(v)
  const list = parseList(value)
  for (const entry of list) {
    if (!isAddressOrCidr(entry)) {
      throw new ConfigError(`Invalid configuration: TRUST_PROXY entry "${entry.slice(0, 80)}" is not allowed: TRUST_PROXY must be false, true, a hop count, or a comma-separated list of ${ADDRESS_OR_CIDR}`)
    }
  }
  return list
}

function parseCidrs (value: string, name: string): string[] {
  const list = parseList(value)
  for (const entry of list) {
    if (!isAddressOrCidr(entry)) throw new ConfigError(`Invalid configuration: ${name} entry "${entry.slice(0, 80)}" is not allowed: ${name} must be a comma-separated list of ${ADDRESS_OR_CIDR}`)
  }
  return list
}

/** The database named in the URI's path, if any (mongodb+srv URIs cannot be parsed by URL). */
function databaseFromUri (uri: string): string | undefined {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(uri)
  return match?.[1] === undefined ? undefined : decodeURIComponent(match[1])
}

function parseEmails (value: string): string[] {
  const emails = parseList(value).map((e) => e.toLowerCase())
  for (const email of emails) {
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new ConfigError(`Invalid configuration: ADMIN_EMAILS entry "${email.slice(0, 80)}" is not allowed: ADMIN_EMAILS must be a comma-separated list of email addresses`)
  }
  return emails
}

/** The schedules' time zone, checked against the same IANA database the cron parser reads. */
function parseTimeZone (value: string): string {
  try {
    Intl.DateTimeFormat('en-US', { timeZone: value })
    return value
  } catch {
    throw new ConfigError(`Invalid configuration: JOBS_TZ must be an IANA time zone such as UTC, Europe/Paris or America/New_York (got "${value.slice(0, 80)}")`)
  }
}

function parseUrl (value: string | undefined, name: string): string | undefined {
  if (value === undefined || URL.canParse(value)) return value
  throw new ConfigError(`Invalid configuration: ${name} must be an http:// or https:// URL (got "${value.slice(0, 80)}")`)
}

function parseOrigins (value: string): string[] {
  const origins = parseList(value)
  for (const origin of origins) {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      throw new ConfigError(`Invalid configuration: FRONTEND_URL entry "${origin.slice(0, 80)}" is not a URL: FRONTEND_URL must be a comma-separated list of origins (scheme://host[:port])`)
    }
    if (url.origin !== origin.replace(/\/$/, '')) {
      throw new ConfigError(`Invalid configuration: FRONTEND_URL entry "${origin.slice(0, 80)}" must be an origin (scheme://host[:port]) without a path`)
    }
  }
  return origins.map((o) => o.replace(/\/$/, ''))
}

/**
 * Builds the validated configuration from an environment-like record. Pure: tests pass the
 * values they need instead of touching process.env.
 */
export function createConfig (source: Record<string, string | undefined> = process.env) {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key]
    if (value !== undefined && value !== '') raw[key] = value
  }
  if (!validateEnv(raw)) {
    const name = validateEnv.errors?.[0]?.instancePath.replace(/^\//, '') ?? ''
    const schema = (EnvSchema.properties as Record<string, VariableSchema | undefined>)[name]
    throw new ConfigError(`Invalid configuration: ${name} must be ${schema === undefined ? 'valid' : allowedValues(schema)}${shown(name, source[name])}`)
  }
  const env = raw as Env
  if (env.METRICS_PORT !== 0 && env.METRICS_PORT === env.PORT) {
    throw new ConfigError(`Invalid configuration: METRICS_PORT must be 0 (off) or a port other than PORT, from 1 to 65535 (both are ${env.PORT})`)
  }
  const production = env.NODE_ENV === 'production'
  const warnings: string[] = []

  const dataDir = resolve(env.DATA_DIR)
  const secrets = {} as Record<SecretName, string>
  let generated: Record<string, string> | undefined
  for (const name of SECRET_NAMES) {
    const value = env[name]
    if (value !== undefined) {
      if (/^(change[-_ ]?me|replace|secret|default|example)/i.test(value)) {
        throw new ConfigError(`Invalid configuration: ${name} is a placeholder value; set a random secret of at least 32 characters`)
      }
      secrets[name] = value
    } else if (production) {
      throw new ConfigError(`Invalid configuration: ${name} is required in production (at least 32 random characters)`)
    } else {
      generated ??= env.NODE_ENV === 'development' ? developmentSecrets(dataDir) : {}
      generated[name] ??= randomBytes(32).toString('base64url')
      secrets[name] = generated[name]
      warnings.push(env.NODE_ENV === 'development'
        ? `${name} is not set: using a generated development secret kept in ${join(dataDir, DEV_SECRETS_FILE)}; set it explicitly in production`
        : `${name} is not set: a random one was generated for this process`)
    }
  }
  if (generated !== undefined && env.NODE_ENV === 'development') saveDevelopmentSecrets(dataDir, generated)

  const heapLimit = getHeapStatistics().heap_size_limit

  return {
    version: PACKAGE_VERSION,
    env: env.NODE_ENV,
    isProduction: production,
    isTest: env.NODE_ENV === 'test',
    port: env.PORT,
    host: env.HOST,
    logLevel: env.LOG_LEVEL,
    logRequests: env.LOG_REQUESTS,
    dataDir,
    sqliteBusyTimeoutMs: env.SQLITE_BUSY_TIMEOUT_MS,
    mongo: env.MONGODB_URI === undefined
      ? undefined
      : { uri: env.MONGODB_URI, database: databaseFromUri(env.MONGODB_URI) ?? env.MONGODB_DB, connectTimeoutMs: env.MONGODB_CONNECT_TIMEOUT_MS },
    redis: env.REDIS_URL === undefined ? undefined : { url: env.REDIS_URL, prefix: env.REDIS_PREFIX, commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS },
    corsOrigins: parseOrigins(env.FRONTEND_URL),
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    http: {
      bodyLimit: env.BODY_LIMIT,
      maxConnections: connectionCap(env.MAX_CONNECTIONS, openFileLimit(), warnings),
      connectionTimeoutMs: env.CONNECTION_TIMEOUT_MS,
      keepAliveTimeoutMs: env.KEEP_ALIVE_TIMEOUT_MS,
      requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
      headersTimeoutMs: Math.min(env.HEADERS_TIMEOUT_MS, env.REQUEST_TIMEOUT_MS),
      maxRequestsPerSocket: env.MAX_REQUESTS_PER_SOCKET,
      shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS
    },
    pressure: {
      maxEventLoopDelay: env.MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: env.MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: env.MAX_HEAP_USED_BYTES === 0 ? Math.floor(heapLimit * 0.9) : env.MAX_HEAP_USED_BYTES,
      maxRssBytes: env.MAX_RSS_BYTES
    },
    auth: {
      jwtSecret: secrets.JWT_SECRET,
      accessTtlSeconds: env.JWT_ACCESS_TTL_SECONDS,
      refreshTtlSeconds: env.REFRESH_TTL_SECONDS,
      adminEmails: parseEmails(env.ADMIN_EMAILS),
      passwordParams: { ln: env.PASSWORD_HASH_COST, r: 8, p: 1 },
      rateLimit: { max: env.AUTH_RATE_LIMIT_MAX, windowMs: env.AUTH_RATE_LIMIT_WINDOW_MS }
    },
    metrics: {
      enabled: env.METRICS_ENABLED,
      token: env.METRICS_TOKEN,
      port: env.METRICS_PORT,
      host: env.METRICS_HOST,
      slowRequestMs: env.SLOW_REQUEST_MS
    },
    alerts: {
      webhookUrl: parseUrl(env.ALERT_WEBHOOK_URL, 'ALERT_WEBHOOK_URL'),
      webhookSecret: env.ALERT_WEBHOOK_SECRET,
      thresholds: {
        errorRate: env.ALERT_ERROR_RATE,
        p99Ms: env.ALERT_P99_MS,
        eventLoopDelayMs: env.ALERT_EVENT_LOOP_DELAY_MS,
        heapRatio: env.ALERT_HEAP_RATIO,
        queueBacklog: env.ALERT_QUEUE_BACKLOG,
        holdMs: env.ALERT_HOLD_MS
      }
    },
    jobs: { tz: parseTimeZone(env.JOBS_TZ), concurrency: env.JOBS_CONCURRENCY, embedded: env.JOBS_EMBEDDED, lockMs: env.JOBS_LOCK_MS },
    webhooks: { allowPrivate: env.WEBHOOK_ALLOW_PRIVATE, timeoutMs: env.WEBHOOK_TIMEOUT_MS },
    retention: {
      revokedKeyDays: env.RETENTION_REVOKED_KEY_DAYS,
      hourlyUsageDays: env.RETENTION_HOURLY_USAGE_DAYS,
      auditDays: env.RETENTION_AUDIT_DAYS,
      statsDays: env.RETENTION_STATS_DAYS
    },
    rateLimits: {
      general: { max: env.GENERAL_RATE_LIMIT_MAX, windowMs: env.GENERAL_RATE_LIMIT_WINDOW_MS },
      verify: { max: env.VERIFY_RATE_LIMIT_MAX, windowMs: env.VERIFY_RATE_LIMIT_WINDOW_MS },
      verifyFailures: { max: env.VERIFY_FAILURE_LIMIT_MAX, windowMs: env.VERIFY_FAILURE_LIMIT_WINDOW_MS },
      blockMs: env.RATE_LIMIT_BLOCK_MS,
      maxBlockMs: Math.max(env.RATE_LIMIT_MAX_BLOCK_MS, env.RATE_LIMIT_BLOCK_MS),
      allowCidrs: parseCidrs(env.RATE_LIMIT_ALLOW_CIDRS, 'RATE_LIMIT_ALLOW_CIDRS')
    },
    keys: {
      hashSecret: secrets.KEY_HASH_SECRET,
      vaultKdf: { ln: env.VAULT_KDF_COST, r: 8, p: 1 },
      createPerHour: env.KEY_CREATE_RATE_LIMIT_MAX,
      heavyPerHour: env.HEAVY_RATE_LIMIT_MAX,
      usageFlushIntervalMs: env.USAGE_FLUSH_INTERVAL_MS
    },
    warnings
  }
}

export type Config = ReturnType<typeof createConfig>

/** For entry points: the configuration, or one line naming what is wrong and exit code 78. */
export function configOrExit (source: Record<string, string | undefined> = process.env): Config {
  try {
    return createConfig(source)
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(78)
    }
    throw err
  }
}
