import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { frameworkErrorHandler, notFoundHandler, sendError, unauthorized } from '../errors.ts'
import { isLoopback, listenFailure } from '../listen.ts'

const digest = (text: string) => createHash('sha256').update(text).digest()

/**
 * Whether an Authorization header carries `Bearer <token>`, in constant time: both sides are
 * hashed first, so neither the first differing byte nor a difference in length shows in timing.
 */
export function bearerMatches (header: string | undefined, token: string): boolean {
  return timingSafeEqual(digest(header ?? ''), digest(`Bearer ${token}`))
}

export const METRICS_TOKEN_REQUIRED = 'A bearer METRICS_TOKEN is required'

export interface MetricsListenerOptions {
  token: string | undefined
  contentType: string
  /** The metrics text: this process's registry, or under the cluster every worker's. */
  text: () => Promise<string>
}

/** The /metrics handler, on METRICS_PORT or the API port: the metrics text, behind the bearer token when there is one. */
export function metricsHandler ({ token, contentType, text }: MetricsListenerOptions) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (token !== undefined && !bearerMatches(request.headers.authorization, token)) throw unauthorized(METRICS_TOKEN_REQUIRED)
    return reply.type(contentType).send(await text())
  }
}

/** The METRICS_PORT server: /metrics only, every other answer in the one error shape. */
export function metricsListener (options: MetricsListenerOptions): FastifyInstance {
  const server = Fastify({ logger: false, genReqId: () => randomUUID(), frameworkErrors: frameworkErrorHandler })
  server.setErrorHandler(sendError)
  server.setNotFoundHandler(notFoundHandler)
  server.get('/metrics', metricsHandler(options))
  return server
}

/** Listens on METRICS_HOST:METRICS_PORT; a failure becomes one line naming the variable. */
export async function listenMetrics (server: FastifyInstance, host: string, port: number): Promise<void> {
  try {
    await server.listen({ host, port })
  } catch (err) {
    throw new Error(listenFailure(err, { host, port, hostVariable: 'METRICS_HOST', portVariable: 'METRICS_PORT' }))
  }
}

/** The start-up line about metrics: where they are served and whether a token guards them (warn when nothing does beyond loopback). */
export function metricsStartupLine (metrics: { host: string, port: number, token: string | undefined }): { level: 'info' | 'warn', line: string } {
  if (metrics.port === 0) {
    return metrics.token === undefined
      ? { level: 'info', line: 'metrics are not served: set METRICS_PORT, or METRICS_TOKEN for /metrics on the API port' }
      : { level: 'info', line: 'metrics served at /metrics on the API port, bearer METRICS_TOKEN required' }
  }
  const where = `metrics listening at http://${metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host}:${metrics.port}/metrics`
  if (metrics.token !== undefined) return { level: 'info', line: `${where}, bearer METRICS_TOKEN required` }
  if (isLoopback(metrics.host)) return { level: 'info', line: `${where}, no token (loopback only: set METRICS_HOST to expose them, with METRICS_TOKEN)` }
  return { level: 'warn', line: `${where} with no token: anyone who can reach METRICS_HOST=${metrics.host} reads them; set METRICS_TOKEN` }
}
