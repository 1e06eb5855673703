import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { PassphraseBody, PassphraseResult, VaultStatus } from '../../../schemas/vault.ts'

/** The user's vault passphrase (envelope encryption of held and recoverable keys). */
const vault: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  const tags = ['vault']
  const security = [{ bearerAuth: [] }]

  fastify.get('/', {
    schema: {
      operationId: 'getVault',
      summary: 'Whether a vault passphrase is set',
      tags,
      security,
      response: { 200: VaultStatus, ...errorResponses(401) }
    }
  }, async (request) => {
    const status = await fastify.vault.status(principalOf(request).id)
    return { passphraseSet: status !== null, updatedAt: status === null ? null : new Date(status.updatedAt).toISOString() }
  })

  fastify.put('/passphrase', {
    config: { rateLimit: fastify.tier('heavy') },
    schema: {
      operationId: 'setVaultPassphrase',
      summary: 'Set or change the vault passphrase',
      description: 'The first time: `{ passphrase }`. To change it: `{ currentPassphrase, passphrase }` (403 WRONG_PASSPHRASE); only the data key is re-wrapped, every secret stays revealable. The passphrase is never stored.',
      tags,
      security,
      body: PassphraseBody,
      response: { 200: PassphraseResult, ...errorResponses(400, 401, 403, 409, 413, 415, 429) }
    }
  }, async (request) => {
    const principal = principalOf(request)
    return { result: await fastify.vault.setPassphrase(principal.id, request.body, { ip: request.ip ?? null, sessionId: principal.sessionId }) }
  })
}

export default vault
