import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import type { Actor } from '../../../plugins/app/keys/service.ts'
import { keyView } from '../../../plugins/app/keys/view.ts'
import { iso } from '../../../plugins/app/time.ts'
import type { FastifyRequest } from 'fastify'
import { IdParams, NoContent } from '../../../schemas/common.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { IdempotencyHeaders, RecordedUsage, RecordUsageBody, UsageQuery, UsageSeries } from '../../../schemas/usage.ts'
import {
  BulkBody, BulkResults, CreatedKey, CreateKeyBody, KeyList, KeyListQuery, KeyStatsSchema, KeyVersionList, KeyView, RevealBody,
  Revealed, RotateBody, UpdateKeyBody
} from '../../../schemas/keys.ts'

function actorOf (request: FastifyRequest): Actor {
  const principal = principalOf(request)
  return { userId: principal.id, ip: request.ip ?? null, sessionId: principal.sessionId }
}

/** Held and issued keys of the signed-in user. */
const keys: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  const tags = ['keys']
  const security = [{ bearerAuth: [] }]
  // A cached list page is one object until its cache entry goes: its JSON, made by the route's own
  // serialiser, is kept beside it, so a cache hit is not serialised again.
  const listJson = new WeakMap<object, string>()

  fastify.post('/', {
    config: { rateLimit: fastify.tier('keyCreation') },
    schema: {
      operationId: 'createKey',
      summary: 'Create a key',
      description: 'Held keys need `secret` and `passphrase` (stored encrypted). Issued keys are generated and their `secret` is returned in this answer only; `recoverable: true` with the passphrase keeps an encrypted copy. 409 PASSPHRASE_NOT_SET until a vault passphrase exists.',
      tags,
      security,
      body: CreateKeyBody,
      response: { 201: CreatedKey, ...errorResponses(400, 401, 403, 409, 413, 415, 429) }
    }
  }, async (request, reply) => {
    const { key, secret } = await fastify.keys.create(actorOf(request), request.body)
    return reply.code(201).header('cache-control', 'no-store').send(secret === undefined ? { key: keyView(key) } : { key: keyView(key), secret })
  })

  fastify.get('/', {
    schema: {
      operationId: 'listKeys',
      summary: 'List keys',
      description: 'Filters, search, sorting (`sort=name` ascending, `sort=-name` descending) and cursor pagination. Served from the cache.',
      tags,
      security,
      querystring: KeyListQuery,
      response: { 200: KeyList, ...errorResponses(400, 401) }
    }
  }, async (request, reply) => {
    const page = await fastify.keys.list(principalOf(request).id, request.query)
    let json = listJson.get(page)
    if (json === undefined) {
      json = reply.serialize(page) as string
      listJson.set(page, json)
    }
    return reply.type('application/json; charset=utf-8').send(json as unknown as typeof page)
  })

  fastify.get('/stats', {
    schema: {
      operationId: 'getKeyStats',
      summary: 'Counts of keys',
      description: 'By status, kind, service and environment; expiring within 7 days; rotation due. Served from the cache.',
      tags,
      security,
      response: { 200: KeyStatsSchema, ...errorResponses(401) }
    }
  }, async (request) => fastify.keys.stats(principalOf(request).id))

  fastify.post('/bulk', {
    config: { rateLimit: fastify.tier('heavy') },
    schema: {
      operationId: 'bulkKeys',
      summary: 'Act on up to 100 keys',
      description: 'revoke, disable, enable, addTags or removeTags; one result per id.',
      tags,
      security,
      body: BulkBody,
      response: { 200: BulkResults, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, async (request) => ({ results: await fastify.keys.bulk(actorOf(request), request.body) }))

  fastify.get('/:id', {
    schema: {
      operationId: 'getKey',
      summary: 'One key',
      tags,
      security,
      params: IdParams,
      response: { 200: KeyView, ...errorResponses(401, 404) }
    }
  }, async (request) => keyView(await fastify.keys.get(principalOf(request).id, request.params.id)))

  fastify.patch('/:id', {
    schema: {
      operationId: 'updateKey',
      summary: 'Change a key',
      description: 'Metadata, limits, expiry, rotation interval, and status active or disabled. Revoked keys cannot change (409).',
      tags,
      security,
      params: IdParams,
      body: UpdateKeyBody,
      response: { 200: KeyView, ...errorResponses(400, 401, 404, 409, 413, 415) }
    }
  }, async (request) => keyView(await fastify.keys.update(actorOf(request), request.params.id, request.body)))

  fastify.delete('/:id', {
    schema: {
      operationId: 'revokeKey',
      summary: 'Revoke a key',
      description: 'Revokes at once: the key stops verifying everywhere. The record is purged later by the cleanup job.',
      tags,
      security,
      params: IdParams,
      response: { 204: NoContent, ...errorResponses(401, 404) }
    }
  }, async (request, reply) => {
    await fastify.keys.revoke(actorOf(request), request.params.id)
    return reply.code(204).send(null)
  })

  fastify.post('/:id/reveal', {
    config: { rateLimit: fastify.tier('heavy') },
    schema: {
      operationId: 'revealKey',
      summary: 'Reveal the secret of a held or recoverable key',
      description: 'Needs the vault passphrase (403 WRONG_PASSPHRASE). `version` reveals a previous version.',
      tags,
      security,
      params: IdParams,
      body: RevealBody,
      response: { 200: Revealed, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429) }
    }
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    return fastify.keys.reveal(actorOf(request), request.params.id, request.body.passphrase, request.body.version)
  })

  fastify.post('/:id/rotate', {
    config: { rateLimit: fastify.tier('heavy') },
    schema: {
      operationId: 'rotateKey',
      summary: 'Rotate a key',
      description: 'Held keys take the new `secret` from the provider; issued keys get a new generated secret (returned once), and the old one keeps verifying for `gracePeriodSeconds`. The last 10 previous versions are kept.',
      tags,
      security,
      params: IdParams,
      body: RotateBody,
      response: { 200: CreatedKey, ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429) }
    }
  }, async (request, reply) => {
    reply.header('cache-control', 'no-store')
    const { key, secret } = await fastify.keys.rotate(actorOf(request), request.params.id, request.body)
    return secret === undefined ? { key: keyView(key) } : { key: keyView(key), secret }
  })

  fastify.get('/:id/versions', {
    schema: {
      operationId: 'listKeyVersions',
      summary: 'The key\'s versions, newest first',
      tags,
      security,
      params: IdParams,
      response: { 200: KeyVersionList, ...errorResponses(401, 404) }
    }
  }, async (request) => {
    const { key, versions } = await fastify.keys.versions(principalOf(request).id, request.params.id)
    return {
      items: versions.map((v) => ({
        version: v.version,
        current: v.version === key.version,
        start: v.start,
        recoverable: v.ciphertext !== null,
        createdAt: iso(v.createdAt),
        retiredAt: iso(v.retiredAt),
        graceEndsAt: iso(v.graceEndsAt)
      })),
      nextCursor: null
    }
  })

  fastify.get('/:id/usage', {
    schema: {
      operationId: 'getKeyUsage',
      summary: 'Usage of a key over time',
      description: 'A series by hour, day or month (UTC). Verification counts appear within the usage flush interval (1 s by default).',
      tags: ['usage'],
      security,
      params: IdParams,
      querystring: UsageQuery,
      response: { 200: UsageSeries, ...errorResponses(400, 401, 404) }
    }
  }, async (request) => fastify.usage.series(principalOf(request).id, request.params.id, request.query))

  fastify.post('/:id/usage', {
    schema: {
      operationId: 'recordKeyUsage',
      summary: 'Record usage of a key',
      description: 'Meters calls made with a key outside Keyward (for example a held third-party key). With an `Idempotency-Key` header a retried request counts once (200 with duplicate: true).',
      tags: ['usage'],
      security,
      params: IdParams,
      headers: IdempotencyHeaders,
      body: RecordUsageBody,
      response: { 200: RecordedUsage, 201: RecordedUsage, ...errorResponses(400, 401, 404, 409, 413, 415) }
    }
  }, async (request, reply) => {
    const result = await fastify.usage.record(principalOf(request).id, request.params.id, request.body, request.headers['idempotency-key'])
    return reply.code(result.duplicate ? 200 : 201).send(result)
  })
}

export default keys
