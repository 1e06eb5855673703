import { Type } from 'typebox'

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
  MONGODB_READ_PREFERENCE: Type.Union(['primary', 'primaryPreferred', 'secondaryPreferred', 'secondary', 'nearest'].map((m) => Type.Literal(m)), {
    default: 'primary',
    description: 'Where reads that tolerate staleness go (key lists, usage series, key stats, system stats and reports); sign-in, verify, quotas and every read followed by a write stay on the primary'
  }),
  MONGODB_MAX_STALENESS_SECONDS: Int(90, 86_400, 90, 'How far behind the primary a secondary may be and still serve those reads (the driver refuses less than 90; unused with primary)'),
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
