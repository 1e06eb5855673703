import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import proxyAddr from '@fastify/proxy-addr'
import { Ajv } from 'ajv'
import type { Static } from 'typebox'
import { EnvSchema } from './schemas/env.ts'

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

/** The database named in the URI's path, if any (mongodb+srv URIs cannot be parsed by URL). */
function databaseFromUri (uri: string): string | undefined {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]+)/.exec(uri)
  return match?.[1] === undefined ? undefined : decodeURIComponent(match[1])
}

/** The environment validated against its schema, defaults applied; the first refusal names the variable and what it accepts. */
function validatedEnv (source: Record<string, string | undefined>): Env {
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
  return env
}

/**
 * The signing secrets: required in production and never a placeholder; elsewhere generated when
 * unset (kept beside the store in development, so a restart keeps sessions and keys valid).
 */
function secretsFor (env: Env, dataDir: string, warnings: string[]): Record<SecretName, string> {
  const secrets = {} as Record<SecretName, string>
  let generated: Record<string, string> | undefined
  for (const name of SECRET_NAMES) {
    const value = env[name]
    if (value !== undefined) {
      if (/^(change[-_ ]?me|replace|secret|default|example)/i.test(value)) {
        throw new ConfigError(`Invalid configuration: ${name} is a placeholder value; set a random secret of at least 32 characters`)
      }
      secrets[name] = value
    } else if (env.NODE_ENV === 'production') {
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
  return secrets
}

/** Where data lives: the SQLite file (its lock wait), MongoDB when set, Redis when set. */
function storesConfig (env: Env) {
  return {
    sqliteBusyTimeoutMs: env.SQLITE_BUSY_TIMEOUT_MS,
    mongo: env.MONGODB_URI === undefined
      ? undefined
      : {
          uri: env.MONGODB_URI,
          database: databaseFromUri(env.MONGODB_URI) ?? env.MONGODB_DB,
          connectTimeoutMs: env.MONGODB_CONNECT_TIMEOUT_MS,
          staleReads: { mode: env.MONGODB_READ_PREFERENCE, maxStalenessSeconds: env.MONGODB_MAX_STALENESS_SECONDS }
        },
    redis: env.REDIS_URL === undefined ? undefined : { url: env.REDIS_URL, prefix: env.REDIS_PREFIX, commandTimeoutMs: env.REDIS_COMMAND_TIMEOUT_MS }
  }
}

function httpConfig (env: Env, warnings: string[]) {
  return {
    bodyLimit: env.BODY_LIMIT,
    maxConnections: connectionCap(env.MAX_CONNECTIONS, openFileLimit(), warnings),
    connectionTimeoutMs: env.CONNECTION_TIMEOUT_MS,
    keepAliveTimeoutMs: env.KEEP_ALIVE_TIMEOUT_MS,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    headersTimeoutMs: Math.min(env.HEADERS_TIMEOUT_MS, env.REQUEST_TIMEOUT_MS),
    maxRequestsPerSocket: env.MAX_REQUESTS_PER_SOCKET,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS
  }
}

function pressureConfig (env: Env) {
  return {
    maxEventLoopDelay: env.MAX_EVENT_LOOP_DELAY_MS,
    maxEventLoopUtilization: env.MAX_EVENT_LOOP_UTILIZATION,
    maxHeapUsedBytes: env.MAX_HEAP_USED_BYTES === 0 ? Math.floor(getHeapStatistics().heap_size_limit * 0.9) : env.MAX_HEAP_USED_BYTES,
    maxRssBytes: env.MAX_RSS_BYTES
  }
}

function authConfig (env: Env, jwtSecret: string) {
  return {
    jwtSecret,
    accessTtlSeconds: env.JWT_ACCESS_TTL_SECONDS,
    refreshTtlSeconds: env.REFRESH_TTL_SECONDS,
    adminEmails: parseEmails(env.ADMIN_EMAILS),
    passwordParams: { ln: env.PASSWORD_HASH_COST, r: 8, p: 1 },
    rateLimit: { max: env.AUTH_RATE_LIMIT_MAX, windowMs: env.AUTH_RATE_LIMIT_WINDOW_MS }
  }
}

function metricsConfig (env: Env) {
  return { enabled: env.METRICS_ENABLED, token: env.METRICS_TOKEN, port: env.METRICS_PORT, host: env.METRICS_HOST, slowRequestMs: env.SLOW_REQUEST_MS }
}

function alertsConfig (env: Env) {
  return {
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
  }
}

/** Background work: job schedules, webhook delivery and how long data is kept. */
function backgroundConfig (env: Env) {
  return {
    jobs: { tz: parseTimeZone(env.JOBS_TZ), concurrency: env.JOBS_CONCURRENCY, embedded: env.JOBS_EMBEDDED, lockMs: env.JOBS_LOCK_MS },
    webhooks: { allowPrivate: env.WEBHOOK_ALLOW_PRIVATE, timeoutMs: env.WEBHOOK_TIMEOUT_MS },
    retention: {
      revokedKeyDays: env.RETENTION_REVOKED_KEY_DAYS,
      hourlyUsageDays: env.RETENTION_HOURLY_USAGE_DAYS,
      auditDays: env.RETENTION_AUDIT_DAYS,
      statsDays: env.RETENTION_STATS_DAYS
    }
  }
}

function rateLimitsConfig (env: Env) {
  return {
    general: { max: env.GENERAL_RATE_LIMIT_MAX, windowMs: env.GENERAL_RATE_LIMIT_WINDOW_MS },
    verify: { max: env.VERIFY_RATE_LIMIT_MAX, windowMs: env.VERIFY_RATE_LIMIT_WINDOW_MS },
    verifyFailures: { max: env.VERIFY_FAILURE_LIMIT_MAX, windowMs: env.VERIFY_FAILURE_LIMIT_WINDOW_MS },
    blockMs: env.RATE_LIMIT_BLOCK_MS,
    maxBlockMs: Math.max(env.RATE_LIMIT_MAX_BLOCK_MS, env.RATE_LIMIT_BLOCK_MS),
    allowCidrs: parseCidrs(env.RATE_LIMIT_ALLOW_CIDRS, 'RATE_LIMIT_ALLOW_CIDRS')
  }
}

function keysConfig (env: Env, hashSecret: string) {
  return {
    hashSecret,
    vaultKdf: { ln: env.VAULT_KDF_COST, r: 8, p: 1 },
    createPerHour: env.KEY_CREATE_RATE_LIMIT_MAX,
    heavyPerHour: env.HEAVY_RATE_LIMIT_MAX,
    usageFlushIntervalMs: env.USAGE_FLUSH_INTERVAL_MS
  }
}

/**
 * Builds the validated configuration from an environment-like record. Pure: tests pass the
 * values they need instead of touching process.env. Sections are built in a fixed order, so
 * with several bad values the same one is always reported.
 */
export function createConfig (source: Record<string, string | undefined> = process.env) {
  const env = validatedEnv(source)
  const warnings: string[] = []
  const dataDir = resolve(env.DATA_DIR)
  const secrets = secretsFor(env, dataDir, warnings)
  return {
    version: PACKAGE_VERSION,
    env: env.NODE_ENV,
    isProduction: env.NODE_ENV === 'production',
    port: env.PORT,
    host: env.HOST,
    logLevel: env.LOG_LEVEL,
    logRequests: env.LOG_REQUESTS,
    dataDir,
    ...storesConfig(env),
    corsOrigins: parseOrigins(env.FRONTEND_URL),
    trustProxy: parseTrustProxy(env.TRUST_PROXY),
    http: httpConfig(env, warnings),
    pressure: pressureConfig(env),
    auth: authConfig(env, secrets.JWT_SECRET),
    metrics: metricsConfig(env),
    alerts: alertsConfig(env),
    ...backgroundConfig(env),
    rateLimits: rateLimitsConfig(env),
    keys: keysConfig(env, secrets.KEY_HASH_SECRET),
    warnings
  }
}

export type Config = ReturnType<typeof createConfig>

/** For entry points: a configuration error found past parsing (a standalone MongoDB) is one line and exit code 78, like any other. */
export function exitIfConfigError (err: unknown): void {
  if (!(err instanceof ConfigError)) return
  console.error(err.message)
  process.exit(78)
}

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
