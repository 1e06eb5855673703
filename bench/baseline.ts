import { createHmac, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { HealthBody } from '../schemas/health.ts'
import { KeyList } from '../schemas/keys.ts'
import { VerifyBody, VerifyResult } from '../schemas/verify.ts'

/**
 * The bare Fastify servers every ratio in the benchmark is measured against. BASELINE_SHAPE=bare
 * (logger off) or production (pino at warn, a random UUID request id, an onRequest and an
 * onResponse hook, an HMAC-SHA256 per call). BASELINE_FIXTURES names a JSON file holding the
 * bodies Keyward answered (a verify answer, a 20-key page, a health report), so each bare route
 * serialises the same bytes with the same response schema.
 */
const production = process.env.BASELINE_SHAPE === 'production'
const fixtures = process.env.BASELINE_FIXTURES === undefined ? {} : JSON.parse(readFileSync(process.env.BASELINE_FIXTURES, 'utf8'))
// A verify-sized nested answer (about 250 bytes) when no fixture was captured.
const answer = fixtures.verify ?? {
  valid: true,
  code: 'VALID',
  keyId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  name: 'client',
  environment: 'production',
  scopes: ['read'],
  metadata: {},
  expiresAt: null,
  usage: { used: 1, limit: null, remaining: null, resetAt: '2026-12-01T00:00:00.000Z' }
}

const app = Fastify(production ? { logger: { level: 'warn' }, genReqId: () => randomUUID() } : { logger: false })
const secret = 'baseline-hmac-secret-0123456789abcdef'
if (production) {
  let inFlight = 0
  app.addHook('onRequest', (_request, _reply, done) => { inFlight++; done() })
  app.addHook('onResponse', (_request, reply, done) => { inFlight--; if (reply.elapsedTime > 1000) app.log.warn({ inFlight }, 'slow'); done() })
}

app.get('/', async () => ({ hello: 'world' }))
app.post<{ Body: { key: string } }>('/verify', { schema: { body: VerifyBody, response: { 200: VerifyResult } } }, async (request) => {
  if (production) createHmac('sha256', secret).update(request.body.key).digest('base64url')
  return answer
})
if (fixtures.list !== undefined) app.get('/list', { schema: { response: { 200: KeyList } } }, async () => fixtures.list)
if (fixtures.health !== undefined) app.get('/health', { schema: { response: { 200: HealthBody } } }, async () => fixtures.health)

const address = await app.listen({ port: 0, host: '127.0.0.1' })
process.stdout.write(`listening at ${address}\n`)
process.on('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
