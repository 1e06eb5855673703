// docker-compose.yml: validated against the official Compose Specification JSON schema
// (compose-spec/compose-spec, schema/compose-spec.json) as shipped in the `dclint` package
// (v3.1.x, file schemas/compose.schema.json, downloaded from compose-spec's main branch by its
// update-compose-schema script), then checked for the topology Keyward relies on.
// `docker compose config` is not used: the machine has no compose v2 plugin, and the
// legacy docker-compose 1.x rejects the top-level `name` of the Compose Specification.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { Ajv, type ErrorObject } from 'ajv'
import { parse } from 'yaml'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const require = createRequire(import.meta.url)

// dclint's package exports do not list the schema file, so locate it from its package.json.
const SCHEMA_PATH = join(dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json')
const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { title?: string, $schema?: string, properties?: Record<string, unknown> }

// The schema names its meta-schema "https://json-schema.org/draft-07/schema" (https, no '#'):
// register Ajv's draft-07 meta-schema under that id so the schema itself is checked too.
// strictTypes is off because the upstream schema uses `additionalProperties` without `type`.
const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true })
ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-07.json'), 'https://json-schema.org/draft-07/schema')
const validateCompose = ajv.compile(schema)

function errorsOf (doc: unknown): string[] {
  if (validateCompose(doc)) return []
  return (validateCompose.errors ?? []).map((e: ErrorObject) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`)
}

interface ComposeService {
  image?: string
  build?: unknown
  command?: string[]
  ports?: unknown[]
  expose?: unknown[]
  volumes?: unknown[]
  healthcheck?: { test?: unknown, disable?: boolean }
  depends_on?: string[] | Record<string, { condition?: string }>
  environment?: Record<string, string> | string[]
}

interface ComposeFile {
  name?: string
  services: Record<string, ComposeService>
}

/** Compose reads YAML merge keys (`<<: *app`); yaml 2 needs them switched on. */
function loadCompose (text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')): ComposeFile {
  return parse(text, { merge: true }) as ComposeFile
}

const compose = loadCompose()

function service (name: string): ComposeService {
  const s = compose.services[name]
  assert.ok(s, `service ${name} exists`)
  return s
}

function dependsOn (s: ComposeService): Record<string, string | undefined> {
  const d = s.depends_on ?? {}
  if (Array.isArray(d)) return Object.fromEntries(d.map((n) => [n, 'service_started']))
  return Object.fromEntries(Object.entries(d).map(([n, v]) => [n, v.condition ?? 'service_started']))
}

/** A service can become healthy when it has an enabled healthcheck, or builds the Dockerfile that has one. */
function hasHealthcheck (s: ComposeService): boolean {
  if (s.healthcheck !== undefined) return s.healthcheck.disable !== true && s.healthcheck.test !== undefined
  return s.build !== undefined && /^HEALTHCHECK\s/m.test(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
}

describe('docker-compose.yml: compose-spec schema', () => {
  it('uses the Compose Specification schema', () => {
    assert.equal(schema.title, 'Compose Specification')
    assert.ok(schema.properties?.name && schema.properties.services, 'a current schema (knows the top-level name)')
  })

  it('is valid', () => {
    assert.deepEqual(errorsOf(compose), [])
  })

  describe('rejects invalid documents', () => {
    it('an unknown service key (a typo)', () => {
      const doc = structuredClone(compose) as unknown as { services: { api: Record<string, unknown> } }
      doc.services.api.imgae = 'keyward:local'
      assert.ok(errorsOf(doc).some((e) => e.includes('/services/api') && e.includes('imgae')))
    })

    it('an unknown depends_on condition', () => {
      const doc = structuredClone(compose)
      doc.services.nginx!.depends_on = { api: { condition: 'service_sleepy' } }
      assert.ok(errorsOf(doc).some((e) => e.startsWith('/services/nginx/depends_on/api/condition')))
    })

    it('ports given as a string instead of a list', () => {
      const doc = loadCompose('services:\n  web:\n    image: nginx:1.27-alpine\n    ports: "8080:80"\n')
      assert.ok(errorsOf(doc).some((e) => e.startsWith('/services/web/ports')))
    })

    it('an unknown top-level key', () => {
      assert.notDeepEqual(errorsOf({ ...compose, servces: {} }), [])
    })
  })
})

describe('docker-compose.yml: topology', () => {
  it('has the mongo, redis, api, worker and nginx services', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['api', 'mongo', 'nginx', 'redis', 'worker'])
  })

  it('only nginx publishes ports; the API is reached through it', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      if (name !== 'nginx') assert.equal(s.ports, undefined, `${name} publishes no port`)
    }
    const nginx = service('nginx')
    assert.ok((nginx.ports ?? []).length > 0, 'nginx publishes a port')
    assert.deepEqual(service('api').expose, ['8080'])
    const conf = readFileSync(join(ROOT, 'deploy', 'nginx.conf'), 'utf8')
    assert.match(conf, /^\s*server\s+api:8080\b/m, 'nginx proxies to api:8080')
    assert.ok((nginx.volumes ?? []).some((v) => typeof v === 'string' && v.startsWith('./deploy/nginx.conf:')))
  })

  it('mongo and redis have health checks', () => {
    for (const name of ['mongo', 'redis']) {
      const hc = service(name).healthcheck
      assert.ok(hc && hc.disable !== true && Array.isArray(hc.test), `${name} healthcheck`)
    }
  })

  it('api and worker wait for healthy mongo and redis', () => {
    for (const name of ['api', 'worker']) {
      const deps = dependsOn(service(name))
      assert.equal(deps.mongo, 'service_healthy', `${name} -> mongo`)
      assert.equal(deps.redis, 'service_healthy', `${name} -> redis`)
    }
    assert.equal(dependsOn(service('nginx')).api, 'service_healthy', 'nginx -> healthy api')
  })

  it('every service_healthy dependency can become healthy', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [dep, condition] of Object.entries(dependsOn(s))) {
        assert.ok(compose.services[dep], `${name} depends on an existing service ${dep}`)
        if (condition === 'service_healthy') assert.ok(hasHealthcheck(compose.services[dep]!), `${dep} (needed healthy by ${name}) has a health check`)
      }
    }
  })

  it('the API listens on every interface of its container, set explicitly (Keyward alone listens on loopback)', () => {
    const environment = service('api').environment
    assert.ok(environment !== undefined && !Array.isArray(environment), 'environment as a map')
    assert.equal(environment.HOST, '0.0.0.0')
    assert.match(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'), /^ENV [^\n]*(\\\n[^\n]*)*\bHOST=0\.0\.0\.0\b/m, 'the image sets it too, for `docker run`')
  })

  it('runs the cluster entry for the API and the jobs worker from the same image', () => {
    assert.deepEqual(service('api').command, ['node', 'dist/cluster.js'])
    assert.deepEqual(service('worker').command, ['node', 'dist/worker.js'])
    assert.equal(service('api').image, service('worker').image)
    assert.equal(service('worker').healthcheck?.disable, true, 'the HTTP health check of the image does not apply to the worker')
  })
})
