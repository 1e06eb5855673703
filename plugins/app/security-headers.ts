import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: a machine-to-machine route that answers without browser security headers. */
    securityHeaders?: boolean
  }
}

/** The API's helmet policy: JSON only, so the CSP forbids everything. */
export const API_HELMET: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] }
  },
  crossOriginEmbedderPolicy: false,
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
  xFrameOptions: { action: 'deny' },
  // Meaningless for JSON answers; each would only add bytes to every response.
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
  originAgentCluster: false
}

/**
 * The HTML pages' policy (the console, the dashboard): their own files only, no inline script or
 * style, no other origin, never framed, no HTML sinks. Keyward's policy, so it lives beside the API's.
 */
export const PAGE_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    connectSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    fontSrc: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    // No page script writes HTML from strings: the browser refuses innerHTML and its kin outright.
    requireTrustedTypesFor: ["'script'"],
    trustedTypes: ["'none'"]
  }
} satisfies HelmetOptions['contentSecurityPolicy']

/** Runs helmet once against a recording response and returns the headers it sets. */
export function helmetHeaders (options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const res = {
    setHeader (name: string, value: string | number) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { delete headers[name.toLowerCase()] }
  }
  helmet(options)({} as never, res as never, () => {})
  return headers
}

/** The API's security headers, computed once; also set on framework errors raised before routing. */
export const API_SECURITY_HEADERS = helmetHeaders(API_HELMET)

/** Whether an answer on this route carries the API's set: false for machine-to-machine routes and HTML pages. */
export function wantsSecurityHeaders (request: FastifyRequest): boolean {
  return request.routeOptions.config?.securityHeaders !== false
}

/**
 * Security headers for the API (decision 005). @fastify/helmet rebuilds helmet's middleware on every
 * request, which halved throughput in our measurements; the API's policy never varies per request,
 * so helmet computes it once here and each answer gets the same header set in one call. HTML pages
 * replace this set with @fastify/helmet's in their own context (plugins/external/helmet.ts).
 * The hook is bound per route, so a route that opts out (verify) runs none and no request reads
 * its route options; answers that never reach it (404s, errors raised before it) get the set from
 * plugins/app/errors.ts.
 */
export default fp(async function securityHeadersPlugin (fastify: FastifyInstance) {
  fastify.addHook('onRoute', (route) => {
    if (route.config?.securityHeaders === false) return
    // A page's context opts out in its own onRoute hook, which runs after this one: read the flag on first use.
    let wanted: boolean | undefined
    const setHeaders = (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      wanted ??= route.config?.securityHeaders !== false
      if (wanted) reply.headers(API_SECURITY_HEADERS)
      done()
    }
    route.onRequest = route.onRequest === undefined ? [setHeaders] : [setHeaders, ...[route.onRequest].flat()]
  })
}, { name: 'security-headers' })
