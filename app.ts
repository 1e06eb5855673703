import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { createRequire } from 'node:module'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { DestinationStream } from 'pino'
import type { Config } from './config.ts'
import { SCHEDULE } from './jobs/schedule.ts'
import audit from './plugins/app/audit/index.ts'
import auth from './plugins/app/auth/index.ts'
import cache from './plugins/app/cache/index.ts'
import clock, { type Clock } from './plugins/app/clock.ts'
import errors, { frameworkErrorHandler } from './plugins/app/errors.ts'
import health from './plugins/app/health/index.ts'
import jobs from './plugins/app/jobs/index.ts'
import keys from './plugins/app/keys/index.ts'
import metrics from './plugins/app/metrics/index.ts'
import { MetricsRegistry } from './plugins/app/metrics/registry.ts'
import notifications from './plugins/app/notifications/index.ts'
import rateLimit from './plugins/app/rate-limit/index.ts'
import { requestLoggerFactory } from './plugins/app/request-logger.ts'
import securityHeaders from './plugins/app/security-headers.ts'
import store from './plugins/app/store/index.ts'
import system from './plugins/app/system/index.ts'
import usage from './plugins/app/usage/index.ts'
import { validatorCompiler } from './plugins/app/validation.ts'
import vault from './plugins/app/vault/index.ts'
import verify from './plugins/app/verify/index.ts'
import cors from './plugins/external/cors.ts'
import jwt from './plugins/external/jwt.ts'
import mongodb from './plugins/external/mongodb.ts'
import redis from './plugins/external/redis.ts'
import swagger from './plugins/external/swagger.ts'
import underPressure from './plugins/external/under-pressure.ts'
import queuesUi from './routes/admin/queues.ts'
import consolePage from './routes/console.ts'
import dashboard from './routes/dashboard.ts'
import api from './routes/api/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export interface BuildOptions {
  /** Where logs go (tests capture them to search for secrets); stdout by default. */
  logStream?: DestinationStream
  /** The time source for expiry decisions; tests inject one. */
  clock?: Clock
}

/** Paths that may carry secrets; pino replaces their values wherever they appear in a log line. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  '*.password', '*.currentPassword', '*.newPassword',
  '*.passphrase', '*.currentPassphrase',
  '*.secret', '*.key', '*.token', '*.accessToken', '*.refreshToken'
]

/** pino-pretty is a devDependency: an install without dev dependencies logs JSON, even on a terminal. */
function prettyPrinterInstalled (): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}

export function loggerOptions (config: Config, stream?: DestinationStream): FastifyServerOptions['logger'] {
  // Production never loads pino-pretty, whatever the terminal.
  const pretty = stream === undefined && process.stdout.isTTY && !config.isProduction && prettyPrinterInstalled()
  return {
    level: config.logLevel,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    ...(stream !== undefined ? { stream } : {}),
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {})
  }
}

/** How often Node looks for requests past their headers or request timeout. */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1000

/**
 * Trust the nearest `hops` proxies, as proxy-addr does for a number. Fastify itself (since 5.12.1)
 * trusts nothing when `trustProxy` is a number, so TRUST_PROXY's hop count needs this function.
 */
function hopCount (hops: number) {
  return (_address: string, index: number) => index < hops
}

/** The HTTP server's own limits, which Fastify's options do not reach. */
function guardConnections (app: FastifyInstance, config: Config) {
  // A flood of connections is refused at the socket instead of exhausting file descriptors.
  const server = app.server as Server
  server.maxConnections = config.http.maxConnections
  server.headersTimeout = config.http.headersTimeoutMs
  // During shutdown, keep-alive sockets whose last request just finished are closed at once
  // instead of lingering until their keep-alive timeout holds the process open.
  let drain: NodeJS.Timeout | undefined
  app.addHook('preClose', async () => {
    drain = setInterval(() => server.closeIdleConnections(), 100).unref()
  })
  app.addHook('onClose', async () => { clearInterval(drain) })
}

/**
 * The whole application: ecosystem plugins, then Keyward's own plugins, then the routes. The
 * same builder serves production (server.ts) and every test.
 */
export async function buildApp (config: Config, options: BuildOptions = {}) {
  const app = Fastify({
    logger: loggerOptions(config, options.logStream),
    genReqId: () => randomUUID(),
    childLoggerFactory: requestLoggerFactory,
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    bodyLimit: config.http.bodyLimit,
    trustProxy: typeof config.trustProxy === 'number' ? hopCount(config.trustProxy) : config.trustProxy,
    connectionTimeout: config.http.connectionTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    requestTimeout: config.http.requestTimeoutMs,
    maxRequestsPerSocket: config.http.maxRequestsPerSocket === 0 ? undefined : config.http.maxRequestsPerSocket,
    // Node checks the headers and request timeouts on this interval (30 s by default), so a
    // slowloris connection would live up to 30 s past HEADERS_TIMEOUT_MS. The check walks only
    // connections with a request in progress, not idle keep-alive ones, so every second is cheap.
    http: { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS },
    // Requests already accepted when shutdown begins are served, not refused: during a rolling
    // reload the cluster may still hand a closing worker a connection it had accepted.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    frameworkErrors: frameworkErrorHandler,
    pluginTimeout: Math.max(10_000, (config.mongo?.connectTimeoutMs ?? 0) + 5000)
  }).withTypeProvider<TypeBoxTypeProvider>()

  guardConnections(app, config)
  app.setValidatorCompiler(validatorCompiler)
  // Every body Keyward takes is JSON: Fastify's built-in text/plain parser would hand a string to
  // the body schema (400 "must be object") where the answer is 415 UNSUPPORTED_MEDIA_TYPE.
  app.removeContentTypeParser('text/plain')
  for (const warning of config.warnings) app.log.warn(warning)

  // Shared by everything below: the configuration, the one error shape, the time source.
  await app.register(fp(async (instance) => { instance.decorate('config', config) }, { name: 'config' }))
  await app.register(errors)
  await app.register(clock, { clock: options.clock })

  // The API's security headers, computed once (decision 005); HTML pages replace them (decision 011).
  await app.register(securityHeaders)

  // Ecosystem plugins (plugins/external): thin wrappers configured from config.
  await app.register(cors)
  await app.register(underPressure)
  await app.register(redis)
  await app.register(mongodb)
  await app.register(jwt)

  // Keyward's concerns (plugins/app): each decorates its service, after the concerns it uses.
  // Rate limits come first: @fastify/rate-limit limits only the routes registered after it.
  await app.register(rateLimit)
  // The metrics registry exists before the store so that the store is built timed (no patching afterwards).
  const metricsRegistry = new MetricsRegistry(config.metrics.slowRequestMs)
  await app.register(store, { observe: metricsRegistry.storeObserver })
  await app.register(cache)
  await app.register(health)
  await app.register(audit)
  await app.register(vault)
  await app.register(auth)
  await app.register(keys)
  await app.register(usage)
  await app.register(verify)
  await app.register(notifications)
  await app.register(jobs, { schedule: SCHEDULE })
  await app.register(metrics, { registry: metricsRegistry })
  await app.register(system)

  // The OpenAPI document (/docs) collects the routes registered after it.
  await app.register(swagger)

  // Routes: thin handlers, a schema and a service call each.
  await app.register(api, { prefix: '/api' })
  await app.register(queuesUi)
  await app.register(dashboard)
  await app.register(consolePage)
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
