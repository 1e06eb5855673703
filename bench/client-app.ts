/**
 * The app bench/client.ts measures: one Fastify route, unprotected or behind @keyward/client's
 * plugin (CLIENT_MODE=unprotected|cached|uncached), in its own process.
 */
import Fastify from 'fastify'
import { Keyward } from '../clients/node/src/index.ts'
import keywardPlugin from '../clients/node/src/fastify.ts'

const mode = process.env.CLIENT_MODE ?? 'unprotected'
const app = Fastify()
const client = new Keyward({
  baseUrl: process.env.KEYWARD_URL ?? 'http://127.0.0.1:8080',
  token: process.env.KEYWARD_TOKEN,
  connections: 100,
  cache: mode === 'cached' ? { ttlMs: 1000 } : false
})
await app.register(async (api) => {
  if (mode !== 'unprotected') await api.register(keywardPlugin, { keyward: client, scopes: ['read'] })
  api.get('/data', async () => ({ ok: true }))
})
app.addHook('onClose', () => client.close())
const url = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(`client-app listening at ${url}`)
process.once('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
