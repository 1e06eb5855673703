import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import pageHelmet from './helmet.ts'

/** OpenAPI 3 document at /docs/json and the UI at /docs, generated from the route schemas. */
export default fp(async function swaggerPlugin (fastify: FastifyInstance) {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Keyward',
        description: 'API-key management: keys you hold (encrypted), keys you issue (verified from memory), metering, rotation and audit.',
        version: '0.1.0',
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // Relative: the document describes whichever Keyward serves it.
      servers: [{ url: '/', description: 'This Keyward server' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token from /api/auth/login' }
        }
      },
      tags: [
        { name: 'system', description: 'Health and operations' },
        { name: 'auth', description: 'Accounts and sessions' },
        { name: 'console', description: 'The web console\'s sessions: refresh token in an HttpOnly cookie, CSRF token in a header' },
        { name: 'keys', description: 'Held and issued keys' },
        { name: 'verify', description: 'The hot path: checking an issued key' },
        { name: 'usage', description: 'Metering' },
        { name: 'notifications', description: 'Quota, expiry and rotation notices, and the webhook that receives them' },
        { name: 'vault', description: 'The passphrase that protects held and recoverable keys' },
        { name: 'audit', description: 'The hash-chained audit trail' }
      ]
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`)
    }
  })
  // The UI is an HTML page: its own context, with helmet's page headers. Swagger UI sets the content
  // security policy itself (staticCSP: hashes of its inline scripts and styles).
  await fastify.register(async function docsPage (docs) {
    await docs.register(pageHelmet, { contentSecurityPolicy: false })
    await docs.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: true,
      uiConfig: { docExpansion: 'list', deepLinking: true }
    })
  })
}, { name: 'swagger' })
