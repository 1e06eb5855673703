import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { PAGE_CSP } from '../plugins/app/security-headers.ts'
import pageHelmet from '../plugins/external/helmet.ts'

// public/ is not compiled into dist/: the built server reads the same folder as the sources.
const PAGE_DIR = fileURLToPath(new URL('../public/console/', import.meta.url)).replace('/dist/public/', '/public/')
const resolve = createRequire(import.meta.url).resolve
const UPLOT_DIR = dirname(resolve('uplot/dist/uPlot.iife.min.js'))
// Preact 10's UMD builds set globals (preact, preactHooks, htm): no import map, no bundler (decision 013).
// Preact's exports map hides its UMD files, so they are found from its package.json.
const PREACT_ROOT = dirname(resolve('preact/package.json'))
const PREACT_DIR = join(PREACT_ROOT, 'dist')
const HOOKS_DIR = join(PREACT_ROOT, 'hooks', 'dist')
const HTM_DIR = dirname(resolve('htm'))

/** The pages take no input: a query string is refused like on every other route. */
const NO_INPUT = Type.Object({}, { additionalProperties: false })
const KEY_PAGE = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false })

/** The console's own addresses (history routing): each answers the one page, which draws the view. */
const VIEWS = ['/console', '/console/keys', '/console/usage', '/console/audit', '/console/notifications', '/console/account']

/**
 * GET /console: the key owners' console, a Preact page that calls the JSON API with the signed-in
 * user's access token. The page is public (a sign-in form); all data comes from the owner's own
 * endpoints. Files carry an ETag and are revalidated on each load (no-cache).
 */
export default async function consolePage (fastify: FastifyInstance) {
  await fastify.register(pageHelmet, { contentSecurityPolicy: PAGE_CSP })
  fastify.addHook('onRoute', (route) => { route.schema = { ...route.schema, hide: true, querystring: NO_INPUT } })
  await fastify.register(fastifyStatic, {
    root: PAGE_DIR,
    prefix: '/console/',
    // One route per file at start-up (no wildcard): an unknown file is a 404, not the page.
    wildcard: false,
    globIgnore: ['index.html'],
    cacheControl: false,
    setHeaders: (reply) => { reply.header('cache-control', 'no-cache') }
  })
  for (const view of VIEWS) fastify.get(view, (_request, reply) => reply.sendFile('index.html'))
  fastify.get('/console/keys/:id', { schema: { params: KEY_PAGE } }, (_request, reply) => reply.sendFile('index.html'))
  const vendor: Array<[string, string, string]> = [
    ['/console/vendor/preact.js', 'preact.min.umd.js', PREACT_DIR],
    ['/console/vendor/hooks.js', 'hooks.umd.js', HOOKS_DIR],
    ['/console/vendor/htm.js', 'htm.umd.js', HTM_DIR],
    ['/console/vendor/uplot.js', 'uPlot.iife.min.js', UPLOT_DIR],
    ['/console/vendor/uplot.css', 'uPlot.min.css', UPLOT_DIR]
  ]
  for (const [url, file, dir] of vendor) fastify.get(url, (_request, reply) => reply.sendFile(file, dir))
}
