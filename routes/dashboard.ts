import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { Type } from 'typebox'

const require = createRequire(import.meta.url)
const here = (file: string) => fileURLToPath(new URL(`../public/dashboard/${file}`, import.meta.url).href.replace('/dist/public/', '/public/'))

/** The dashboard's policy: its own scripts, styles and API calls, nothing else. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/**
 * GET /dashboard: the operators' page. The page itself is public (a sign-in form); every figure it
 * shows comes from admin-only endpoints. uPlot is served from Keyward's own dependencies, no CDN.
 */
export default async function dashboard (fastify: FastifyInstance) {
  const assets: Record<string, { type: string, body: Buffer }> = {
    '': { type: 'text/html; charset=utf-8', body: readFileSync(here('index.html')) },
    'app.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(here('app.js')) },
    'style.css': { type: 'text/css; charset=utf-8', body: readFileSync(here('style.css')) },
    'uplot.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js')) },
    'uplot.css': { type: 'text/css; charset=utf-8', body: readFileSync(require.resolve('uplot/dist/uPlot.min.css')) }
  }
  const send = (reply: FastifyReply, name: string) => {
    const asset = assets[name]!
    return reply.header('content-security-policy', CSP).header('cache-control', 'no-cache').type(asset.type).send(asset.body)
  }
  // The pages take no input: a query string is refused like on every other route.
  const schema = { hide: true, querystring: Type.Object({}, { additionalProperties: false }) }
  fastify.get('/dashboard', { schema }, (_request, reply) => send(reply, ''))
  for (const name of Object.keys(assets).filter((n) => n !== '')) {
    fastify.get(`/dashboard/${name}`, { schema }, (_request, reply) => send(reply, name))
  }
}
