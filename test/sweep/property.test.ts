// Property-based sweep over every operation of the OpenAPI document (/docs/json): generated path
// ids, query strings, headers and JSON bodies (schema-shaped with hostile text, the same with one
// field broken by a depth bomb or arbitrary JSON, and free JSON with prototype-named keys), sent
// as the test user, an admin, nobody or a forged token. Every answer is a 2xx or a 4xx in the one
// error shape, never a 5xx; no request changes Object.prototype; afterwards a fresh user works.
//
// Replay: a failure prints fast-check's `seed` and `path`.
//   SWEEP_SEED=<seed> node scripts/test.mjs test/sweep/property.test.ts
// replays the whole run (the same requests in the same order); add SWEEP_PATH=<path> to jump
// straight to the shrunk case (a failure that needs an earlier request's state, such as a key
// created before, then needs the whole run).
import assert from 'node:assert/strict'
import { after, before, it } from 'node:test'
import fc from 'fast-check'
import type { InjectOptions } from 'fastify'
import { createTestApp, registerUser, TEST_SECRETS, type TestApp } from '../helpers/app.ts'
import { assertErrorShape, openApiOperations, type JsonSchema, type Operation, type Parameter } from '../helpers/openapi.ts'
import { signHs256 } from '../helpers/tokens.ts'

const RUNS = 5_000
const PROTO_NAMES = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString']
const VAULT_PASSPHRASE = 'sweep vault passphrase'
const ADMIN_EMAIL = 'sweep-admin@example.com'

/** A JSON object as written: keys in order, with duplicates and `__proto__` kept as plain text. */
class Obj {
  constructor (readonly entries: Array<[string, Json]>) {}
  [fc.toStringMethod] () {
    return `{${this.entries.map(([k, v]) => `${JSON.stringify(k)}:${fc.stringify(v)}`).join(',')}}`
  }
}

/** JSON (or URL) text sent as it is: depth bombs, numbers JSON.stringify cannot write, huge strings. */
class Raw {
  constructor (readonly text: string, readonly label = text) {}
  [fc.toStringMethod] () { return this.label }
}

interface Pools { keyIds: string[], secrets: string[], sessionIds: string[], notificationIds: string[], refreshTokens: string[] }

/** One of the test user's own resources (or tokens), picked when the request is sent: `back` 0 is the newest. */
class Ref {
  constructor (readonly pool: keyof Pools, readonly back: number) {}
  [fc.toStringMethod] () { return `${this.pool}[-${this.back + 1}]` }
}

type Json = null | boolean | number | string | Json[] | Obj | Raw | Ref
type Auth = 'user' | 'admin' | 'none' | Raw

interface Request {
  op: string
  auth: Auth
  id: string | Raw | Ref | undefined
  query: Array<[string, string | Ref]>
  rawQuery: string | undefined
  idempotencyKey: string | undefined
  body: Json | undefined
}

const pools: Pools = { keyIds: [], secrets: [], sessionIds: [], notificationIds: [], refreshTokens: [] }

function resolve (ref: Ref): string {
  const list = pools[ref.pool]
  return list.length === 0 ? 'none' : list[list.length - 1 - (ref.back % list.length)] as string
}

function remember (list: string[], value: unknown) {
  if (typeof value !== 'string') return
  list.push(value)
  if (list.length > 50) list.shift()
}

function forget (list: string[], value: unknown) {
  const at = list.indexOf(value as string)
  if (at >= 0) list.splice(at, 1)
}

function jsonText (v: Json): string {
  if (v instanceof Raw) return v.text
  if (v instanceof Ref) return JSON.stringify(resolve(v))
  if (v instanceof Obj) return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${jsonText(x)}`).join(',')}}`
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`
  return JSON.stringify(v)
}

/** Percent-encodes text for a URL; a lone surrogate (which encodeURIComponent refuses) becomes invalid UTF-8. */
function encode (text: string): string {
  return text.replace(/[\ud800-\udbff][\udc00-\udfff]|[\s\S]/g, (c) => c.length === 1 && c >= '\ud800' && c <= '\udfff' ? '%ED%A0%80' : encodeURIComponent(c))
}

// Depth bombs are JSON text: the server's JSON.parse (and whatever walks the result) is what matters.
const bomb = (depth: number, open: string, close: string, leaf = '') => new Raw(open.repeat(depth) + leaf + close.repeat(depth), `bomb(${open}×${depth})`)
const BOMBS = [
  bomb(5_000, '[', ']'),
  bomb(5_000, '{"a":', '}', 'null'),
  bomb(5_000, '{"__proto__":', '}', '{}'),
  bomb(5_000, '[{"constructor":', '}]', '1'),
  bomb(2_000, '{"toString":[', ']}', '"prototype"'),
  bomb(20_000, '[', ']')
]
const bombs = fc.constantFrom(...BOMBS)
const hugeStrings = fc.constantFrom(new Raw(JSON.stringify('x'.repeat(70_000)), '"x"×70000'), new Raw(JSON.stringify('😀'.repeat(30_000)), '"😀"×30000'))
// Past the 1 MiB body limit: a 413 in the error shape.
const oversize = new Raw(`{"name":${JSON.stringify('x'.repeat(1_100_000))}}`, '{"name":"x"×1100000}')
const hugeNumbers = fc.constantFrom(...['1e400', '-1e400', '123456789012345678901234567890', '-0', '1e-400', '1.0', '1E2', '0.1e1'].map((t) => new Raw(t)))
const oddNumbers = fc.constantFrom(-1, 0, 1.5, -2.5, 2 ** 31, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, -Number.MAX_VALUE, 1e21, Number.MIN_VALUE)

const protoName = fc.constantFrom(...PROTO_NAMES)
const hostileText: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: protoName },
  { weight: 2, arbitrary: fc.tuple(protoName, fc.constantFrom('.', ':', '/', '[]', ' ', '_'), protoName).map(([a, s, b]) => a + s + b) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('', ' ', '\u0000', '\ud800', '\udfff\ud800', '\u202e', '\u2066', '😀'.repeat(60), 'Ω'.repeat(101), 'a'.repeat(101),
      'a'.repeat(1001), 'x'.repeat(5000), '../../etc/passwd', '%00', '%E0%A4%A', "'; DROP TABLE keys; --", '<script>alert(1)</script>',
      'null', 'NaN', '1e400', '-0', '*', 'Object', 'units', 'requests')
  }
)

const leaf: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: hostileText },
  fc.constant(null), fc.boolean(), fc.integer(), fc.double(), oddNumbers, hugeNumbers
)
const jsonKey = fc.oneof({ weight: 3, arbitrary: protoName }, { weight: 2, arbitrary: hostileText })
// The JSON parser refuses a `__proto__` key outright, so values meant to pass it do without one.
const parsableKey = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...PROTO_NAMES.slice(1)) }, { weight: 2, arbitrary: hostileText.filter((s) => s !== '__proto__' && s.length <= 64) })
const smallLeaf = fc.oneof({ weight: 4, arbitrary: hostileText.filter((s) => s.length <= 64) }, fc.constant(null), fc.boolean(), fc.integer(), fc.double(), oddNumbers)

/** Free JSON like fc.jsonValue over these keys and leaves. */
function jsonOf (key: fc.Arbitrary<string>, leaves: fc.Arbitrary<Json>): fc.Arbitrary<Json> {
  return fc.letrec<{ value: Json }>((tie) => ({
    value: fc.oneof({ depthSize: 'small', withCrossShrink: true },
      leaves,
      fc.array(tie('value'), { maxLength: 4 }),
      fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map((entries) => new Obj(entries)))
  })).value
}
/** Anything: prototype-named keys, depth bombs, huge numbers and strings. */
const freeJson = jsonOf(jsonKey, fc.oneof({ weight: 8, arbitrary: leaf }, bombs, hugeStrings))
/** Small enough for metadata's 4 KiB and past the JSON parser, with hostile keys and text. */
const smallJson = jsonOf(parsableKey, smallLeaf)

/** Values that break a field: bombs in it or one level down, free JSON, huge numbers and strings. */
const badValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: bombs },
  { weight: 2, arbitrary: fc.tuple(jsonKey, bombs).map(([k, b]) => new Obj([[k, b]])) },
  { weight: 2, arbitrary: fc.tuple(hostileText, bombs).map(([s, b]) => [s, b]) },
  { weight: 2, arbitrary: freeJson },
  hugeNumbers, oddNumbers, hugeStrings, hostileText
)

const DAY = 86_400_000
const dateTimes = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 70 * 365 }).map((days) => new Date(Date.now() + days * DAY).toISOString()) },
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('2020-01-01T00:00:00Z', '+275760-09-13T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '0000-01-01T00:00:00Z', '1970-01-01T00:00:00Z',
    '2024-02-30T00:00:00Z', '2030-01-01T25:00:00Z', '2030-01-01T00:00:00+14:00', '2030-01-01T00:00:00.123456789Z')
)

function intIn (min: number, max: number): fc.Arbitrary<number> {
  if (min >= -(2 ** 31) && max < 2 ** 31) return fc.integer({ min, max })
  return fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => min + ((a * 2 ** 31 + b) % (max - min + 1)))
}

/** Mostly the newest (a key just created, then used and reported on); `anyAge` for operations that destroy what they name. */
const refTo = (pool: keyof Pools, anyAge = false) => (anyAge ? fc.nat(1000) : fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, fc.integer({ min: 0, max: 4 }), fc.nat(1000))).map((back) => new Ref(pool, back))

function enumOf (schema: JsonSchema): unknown[] | undefined {
  if (schema.enum !== undefined) return schema.enum
  const values = schema.anyOf?.flatMap((s) => enumOf(s) ?? [])
  return values !== undefined && values.length > 0 ? values : undefined
}

function typesOf (schema: JsonSchema): string[] {
  return schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type]
}

interface Known { user: { email: string }, admin: { email: string } }

/** Schema-valid values (mostly): hostile text wherever the schema lets it through, real ids, secrets and tokens where the field names them. */
function validFor (schema: JsonSchema, field: string, known: Known): fc.Arbitrary<Json> {
  const values = enumOf(schema)
  if (values !== undefined) return fc.constantFrom(...values as Json[])
  if (schema.anyOf !== undefined) return fc.oneof(...schema.anyOf.map((s) => validFor(s, field, known)))
  const types = typesOf(schema)
  if (types.length === 0) return smallJson
  // A nullable field is null in one of four values, so that its text mostly reaches the service.
  return fc.oneof(...types.map((type) => ({ weight: type === 'null' ? 1 : 3, arbitrary: validOfType(type, schema, field, known) })))
}

function validOfType (type: string, schema: JsonSchema, field: string, known: Known): fc.Arbitrary<Json> {
  switch (type) {
    case 'null': return fc.constant(null)
    case 'boolean': return fc.boolean()
    case 'integer': case 'number': {
      const min = schema.minimum ?? -1_000_000_000
      const max = schema.maximum ?? 1_000_000_000
      return fc.oneof({ weight: 4, arbitrary: intIn(min, max) }, fc.constantFrom(min, max))
    }
    case 'array': return fc.array(validFor(schema.items ?? {}, field, known), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 8, 8) })
    case 'object': return validObject(schema, known)
    default: return validString(schema, field, known)
  }
}

function validString (schema: JsonSchema, field: string, known: Known): fc.Arbitrary<Json> {
  if (schema.format === 'date-time') return dateTimes
  const min = schema.minLength ?? 0
  const max = schema.maxLength ?? 10_000
  const pattern = schema.pattern === undefined ? undefined : new RegExp(schema.pattern, 'u')
  const fits = (s: string) => s.length >= min && s.length <= max && (pattern === undefined || pattern.test(s))
  const shaped = pattern === undefined
    ? fc.string({ unit: 'grapheme', minLength: min, maxLength: Math.min(max, 40) })
    : fc.stringMatching(pattern).map((s) => s.slice(0, max)).filter((s) => s.length >= min)
  // Prototype names are a third of the text that passes: a plain `{}` keyed by user text is what they break.
  const names = PROTO_NAMES.filter(fits)
  const generic = fc.oneof(
    ...(names.length > 0 ? [{ weight: 3, arbitrary: fc.constantFrom(...names) }] : []),
    { weight: 3, arbitrary: hostileText.filter(fits) },
    { weight: 2, arbitrary: shaped }
  )
  const special = fieldValues(field, known)
  return special === undefined ? generic : fc.oneof({ weight: 2, arbitrary: special }, generic)
}

const WEBHOOK_URLS = ['https://hooks.example.com/keyward', 'https://1.1.1.1/hook', 'http://127.0.0.1/x', 'http://[::1]/x', 'https://[::ffff:7f00:1]/',
  'http://localhost./', 'https://user:pass@example.com/', 'ftp://example.com/', 'https://__proto__.example.com/constructor',
  'https://example.com/?__proto__[units]=1', `https://${'a'.repeat(2000)}.com/`, 'javascript:alert(1)']

/** Values a field's name calls for: the user's own resources and tokens, real-looking emails and URLs. */
function fieldValues (field: string, known: Known): fc.Arbitrary<Json> | undefined {
  switch (field) {
    case 'email': return fc.oneof(fc.emailAddress(), protoName.map((n) => `${n}@example.com`), fc.constantFrom(known.user.email, known.admin.email))
    case 'key': return refTo('secrets')
    case 'ids': return refTo('keyIds', true)
    case 'refreshToken': return refTo('refreshTokens')
    // The real passphrase opens the vault; `currentPassphrase` never gets it, so the vault keeps it.
    case 'passphrase': return fc.constant(VAULT_PASSPHRASE)
    case 'url': return fc.constantFrom(...WEBHOOK_URLS)
    default: return undefined
  }
}

function validObject (schema: JsonSchema, known: Known): fc.Arbitrary<Obj> {
  const required = new Set(schema.required ?? [])
  const fields = Object.entries(schema.properties ?? {}).map(([name, s]) => {
    const entry = validFor(s, name, known).map((v): [string, Json] => [name, v])
    return required.has(name) ? entry : fc.option(entry, { nil: undefined, freq: 2 })
  })
  const extra = typeof schema.additionalProperties === 'object'
    ? fc.array(fc.tuple(parsableKey, smallJson), { maxLength: 6 })
    : fc.constant([])
  return fc.tuple(fc.tuple(...fields), extra).map(([entries, more]) => new Obj([...entries.filter((e) => e !== undefined), ...more]))
}

/** A bad value for a field: inside what the schema accepts (free JSON, an array) where it can, so it passes validation. */
function badFor (schema: JsonSchema, known: Known): fc.Arbitrary<Json> {
  const types = typesOf(schema)
  if (types.includes('object') && typeof schema.additionalProperties === 'object') {
    return fc.oneof({ weight: 4, arbitrary: fc.tuple(parsableKey, bombs).map(([k, b]) => new Obj([[k, b]])) }, { weight: 2, arbitrary: badValue })
  }
  if (types.includes('array')) {
    return fc.oneof({ weight: 2, arbitrary: fc.tuple(fc.array(validFor(schema.items ?? {}, '', known), { maxLength: 2 }), bombs).map(([items, b]) => [...items, b]) }, { weight: 2, arbitrary: badValue })
  }
  return badValue
}

/** A valid object with one field (free JSON most often: metadata; then tags, scopes) replaced by a bad value. */
function brokenObject (schema: JsonSchema, known: Known): fc.Arbitrary<Obj> {
  const props = Object.entries(schema.properties ?? {})
  const weightOf = (s: JsonSchema) => typeof s.additionalProperties === 'object' ? 6 : typesOf(s).some((t) => t === 'object' || t === 'array') ? 2 : 1
  return fc.tuple(
    validObject(schema, known),
    fc.oneof(
      ...props.map(([name, s]) => ({ weight: weightOf(s), arbitrary: badFor(s, known).map((bad): [string, Json] => [name, bad]) })),
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...PROTO_NAMES, 'unknownField'), badValue) }
    )
  ).map(([obj, [field, bad]]) => new Obj([...obj.entries.filter(([k]) => k !== field), [field, bad]]))
}

const JUNK_BODIES = [undefined, new Raw(''), new Raw('{"a":'), new Raw('null'), new Raw('"__proto__"'), new Raw('{"__proto__":{"units":1}}'),
  new Raw('{"constructor":{"prototype":{"units":1}}}'), new Raw('{"a":1,"a":{"__proto__":1}}'), oversize]

function bodyFor (op: Operation, known: Known): fc.Arbitrary<Json | undefined> {
  const junk = fc.constantFrom(...JUNK_BODIES)
  if (op.body === undefined) return fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, freeJson, junk)
  // A body of several shapes (discriminated on `kind`): each shape is generated, whole or broken.
  const shapes = op.body.oneOf ?? [op.body]
  return fc.oneof(
    { weight: 6, arbitrary: fc.oneof(...shapes.map((shape) => validObject(shape, known))) },
    { weight: 3, arbitrary: fc.oneof(...shapes.map((shape) => brokenObject(shape, known))) },
    { weight: 1, arbitrary: freeJson },
    { weight: 1, arbitrary: junk }
  )
}

const QUERY_JUNK = ['-1', '0', '1e400', '1.5', '9'.repeat(40), '0x10', ' 1', '', 'true', '[]', '{}']
const RAW_QUERIES = ['%', '%zz', '%E0%A4%A', '&&', '=', '__proto__[units]=1', 'constructor[prototype][units]=1', 'a=1&a=2', '__proto__=1',
  `a${'[x]'.repeat(1000)}=1`, 'limit=1&limit=2']

function queryValue (p: Parameter, known: Known): fc.Arbitrary<string | Ref> {
  const schema = p.schema
  const values = enumOf(schema)
  const types = typesOf(schema)
  let valid: fc.Arbitrary<string | Ref>
  if (p.name === 'keyId') valid = refTo('keyIds')
  else if (values !== undefined) valid = fc.constantFrom(...values.map(String))
  else if (types.includes('integer')) valid = intIn(schema.minimum ?? 0, schema.maximum ?? 1000).map(String)
  else if (types.includes('boolean')) valid = fc.constantFrom('true', 'false')
  else valid = validString(schema, p.name, known).map((v) => typeof v === 'string' ? v : String(v))
  return fc.oneof({ weight: 3, arbitrary: valid }, hostileText, fc.constantFrom(...QUERY_JUNK))
}

function poolFor (path: string): keyof Pools {
  if (path.startsWith('/api/auth/sessions/')) return 'sessionIds'
  if (path.startsWith('/api/notifications/')) return 'notificationIds'
  return 'keyIds'
}

const RAW_IDS = ['%E0%A4%A', '..%2F..%2Fetc', '%2e%2e', '%00', 'x'.repeat(201), '%', '__proto__%2F..', '%C0%AE', '0'.repeat(24)]

function requestFor (op: Operation, known: Known, badAuth: Raw[]): fc.Arbitrary<Request> {
  const query = op.parameters.filter((p) => p.in === 'query')
  const names = [...PROTO_NAMES, ...query.map((p) => p.name)]
  return fc.record({
    op: fc.constant(`${op.method} ${op.path}`),
    auth: fc.oneof({ weight: 12, arbitrary: fc.constant<Auth>('user') }, { weight: 3, arbitrary: fc.constant<Auth>('admin') },
      { weight: 1, arbitrary: fc.constant<Auth>('none') }, { weight: 2, arbitrary: fc.constantFrom<Auth>(...badAuth) }),
    id: op.path.includes('{id}')
      ? fc.oneof({ weight: 6, arbitrary: refTo(poolFor(op.path), op.method === 'DELETE') }, { weight: 2, arbitrary: hostileText }, fc.constantFrom(...RAW_IDS).map((t) => new Raw(t)))
      : fc.constant(undefined),
    query: fc.tuple(
      fc.tuple(...query.map((p) => fc.option(queryValue(p, known).map((v): [string, string | Ref] => [p.name, v]), { nil: undefined, freq: 2 }))),
      fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, fc.array(fc.tuple(fc.oneof(fc.constantFrom(...names), hostileText), hostileText), { minLength: 1, maxLength: 2 }))
    ).map(([declared, extra]) => [...declared.filter((e) => e !== undefined), ...extra]),
    rawQuery: fc.oneof({ weight: 8, arbitrary: fc.constant(undefined) }, fc.constantFrom(...RAW_QUERIES)),
    idempotencyKey: op.parameters.some((p) => p.in === 'header' && p.name === 'idempotency-key')
      ? fc.option(fc.oneof({ weight: 3, arbitrary: fc.stringMatching(/^[\x21-\x7e]{1,40}$/) }, { weight: 2, arbitrary: protoName }, fc.constant('x'.repeat(201))), { nil: undefined, freq: 2 })
      : fc.constant(undefined),
    body: bodyFor(op, known)
  })
}

function urlFor (op: Operation, req: Request): string {
  let path = op.path
  if (req.id !== undefined) path = path.replace('{id}', req.id instanceof Raw ? req.id.text : encode(req.id instanceof Ref ? resolve(req.id) : req.id))
  const parts = req.query.map(([k, v]) => `${encode(k)}=${encode(v instanceof Ref ? resolve(v) : v)}`)
  if (req.rawQuery !== undefined) parts.push(req.rawQuery)
  return parts.length === 0 ? path : `${path}?${parts.join('&')}`
}

/** Object.prototype's own properties, and the own keys of the functions among them (Object itself, toString...). */
function builtinsSnapshot () {
  return new Map(Reflect.ownKeys(Object.prototype).map((k) => {
    const d = Object.getOwnPropertyDescriptor(Object.prototype, k) as PropertyDescriptor
    return [k, { d, fnKeys: typeof d.value === 'function' ? Reflect.ownKeys(d.value) : [] }]
  }))
}
const BUILTINS = builtinsSnapshot()

/** What changed on Object.prototype (or on its functions) since start-up; undone, so one polluting request fails alone. */
function prototypeDamage (): string[] {
  const damage: string[] = []
  for (const k of Reflect.ownKeys(Object.prototype)) {
    const was = BUILTINS.get(k)
    if (was === undefined) {
      damage.push(`Object.prototype gained ${String(k)}`)
      Reflect.deleteProperty(Object.prototype, k)
      continue
    }
    const d = Object.getOwnPropertyDescriptor(Object.prototype, k) as PropertyDescriptor
    if (d.value !== was.d.value || d.get !== was.d.get || d.set !== was.d.set || d.enumerable !== was.d.enumerable) {
      damage.push(`Object.prototype.${String(k)} changed`)
      Reflect.defineProperty(Object.prototype, k, was.d)
    }
    if (typeof was.d.value === 'function') {
      for (const fk of Reflect.ownKeys(was.d.value)) {
        if (!was.fnKeys.includes(fk)) {
          damage.push(`Object.prototype.${String(k)} gained ${String(fk)}`)
          Reflect.deleteProperty(was.d.value, fk)
        }
      }
    }
  }
  return damage
}

interface Identity { email: string, password: string, accessToken: string, refreshToken: string }

let t: TestApp
let ops: Operation[]
let byLabel: Map<string, Operation>
let user: Identity
let admin: Identity
let requests = 0
let generated = 0
const outcomes = new Map<string, { ok: number, refused: number }>()
/** The first request after which Object.prototype had changed (undone at once, so the run goes on). */
let firstDamage: string | undefined

async function inject (options: InjectOptions) {
  requests++
  return t.app.inject(options)
}

async function login (identity: Identity) {
  const res = await inject({ method: 'POST', url: '/api/auth/login', payload: { email: identity.email, password: identity.password } })
  assert.equal(res.statusCode, 200, `login again as ${identity.email}: ${res.body}`)
  identity.accessToken = res.json().accessToken
  identity.refreshToken = res.json().refreshToken
}

function parseObject (text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {}
  } catch {
    return {}
  }
}

/** Keeps the test user's own ids and tokens current, so later requests reach live resources. */
function harvest (req: Request, status: number, text: string, payload: string | undefined) {
  if (status >= 300) return
  const body = parseObject(text)
  remember(pools.refreshTokens, body.refreshToken)
  if (req.auth !== 'user') return
  const items = Array.isArray(body.items) ? body.items.map((i: { id?: unknown }) => i.id).filter((id): id is string => typeof id === 'string') : []
  switch (req.op) {
    case 'POST /api/keys':
      remember(pools.keyIds, (body.key as { id?: unknown } | undefined)?.id)
      remember(pools.secrets, body.secret)
      break
    case 'POST /api/keys/{id}/rotate': remember(pools.secrets, body.secret); break
    case 'DELETE /api/keys/{id}': if (req.id instanceof Ref) forget(pools.keyIds, resolve(req.id)); break
    case 'POST /api/keys/bulk': {
      const sent = parseObject(payload ?? '')
      if (sent.action === 'revoke' && Array.isArray(sent.ids)) for (const id of sent.ids) forget(pools.keyIds, id)
      break
    }
    case 'GET /api/auth/sessions': pools.sessionIds = items; break
    case 'GET /api/notifications': pools.notificationIds = items; break
  }
}

function abbreviate (text: string | undefined) {
  if (text === undefined) return '(none)'
  return text.length <= 300 ? text : `${text.slice(0, 150)}…(${text.length} chars)…${text.slice(-50)}`
}

const SESSION_ENDING = new Set(['POST /api/auth/logout', 'POST /api/auth/logout-all', 'DELETE /api/auth/sessions/{id}', 'POST /api/auth/refresh'])

async function send (req: Request) {
  generated++
  const op = byLabel.get(req.op) as Operation
  const url = urlFor(op, req)
  const payload = req.body === undefined ? undefined : jsonText(req.body)
  const identity = req.auth === 'user' ? user : req.auth === 'admin' ? admin : undefined
  const headers: Record<string, string> = {}
  if (identity !== undefined) headers.authorization = `Bearer ${identity.accessToken}`
  else if (req.auth instanceof Raw) headers.authorization = req.auth.text
  if (payload !== undefined) headers['content-type'] = 'application/json'
  if (req.idempotencyKey !== undefined) headers['idempotency-key'] = req.idempotencyKey
  const res = await inject({ method: op.method as 'GET', url, headers, ...(payload === undefined ? {} : { payload }) })

  const context = `${op.method} ${abbreviate(url)} auth=${typeof req.auth === 'string' ? req.auth : req.auth.label} body=${abbreviate(payload)} → ${res.statusCode} ${res.body.slice(0, 300)}`
  const damage = prototypeDamage()
  if (damage.length > 0) firstDamage ??= `${damage.join(', ')} after ${context}`
  harvest(req, res.statusCode, res.body, payload)
  // Logout, a revoked session or a reused refresh token (which ends every session of its user, and
  // may be either identity's) end sessions: whoever lost theirs signs in again, so that later
  // requests reach past authentication.
  const lost = SESSION_ENDING.has(req.op) ? [user, admin] : res.statusCode === 401 && identity !== undefined ? [identity] : []
  for (const who of lost) {
    if ((await inject({ method: 'GET', url: '/api/auth/me', headers: { authorization: `Bearer ${who.accessToken}` } })).statusCode === 401) await login(who)
  }
  const tally = outcomes.get(req.op) ?? { ok: 0, refused: 0 }
  outcomes.set(req.op, tally)
  if (res.statusCode < 300) tally.ok++
  else tally.refused++

  assert.deepEqual(damage, [], `prototype pollution after ${context}`)
  assert.ok(res.statusCode < 500, `5xx: ${context}`)
  assert.ok((res.statusCode >= 200 && res.statusCode < 300) || res.statusCode >= 400, `neither 2xx nor 4xx: ${context}`)
  if (res.statusCode >= 400) assertErrorShape(res, context)
}

before(async () => {
  // 5,000 requests from one IP and two users would meet every tier's default within the first
  // minutes and turn the rest into 429s: these limits are raised here (the auth tier already is,
  // by createTestApp), and the defaults are exercised by the rate-limit suites.
  t = await createTestApp({
    GENERAL_RATE_LIMIT_MAX: '100000000',
    HEAVY_RATE_LIMIT_MAX: '1000000',
    KEY_CREATE_RATE_LIMIT_MAX: '1000000',
    VERIFY_FAILURE_LIMIT_MAX: '100000000',
    ADMIN_EMAILS: ADMIN_EMAIL,
    JOBS_EMBEDDED: 'false'
  })
  const registered = await registerUser(t.app)
  const registeredAdmin = await registerUser(t.app, { email: ADMIN_EMAIL })
  assert.equal(registeredAdmin.user.role, 'admin')
  user = { email: registered.email, password: registered.password, accessToken: registered.accessToken, refreshToken: registered.refreshToken }
  admin = { email: registeredAdmin.email, password: registeredAdmin.password, accessToken: registeredAdmin.accessToken, refreshToken: registeredAdmin.refreshToken }
  const headers = { authorization: `Bearer ${user.accessToken}` }
  assert.equal((await inject({ method: 'PUT', url: '/api/vault/passphrase', headers, payload: { passphrase: VAULT_PASSPHRASE } })).statusCode, 200)
  for (const payload of [{ kind: 'issued', name: 'sweep issued' }, { kind: 'issued', name: 'sweep recoverable', recoverable: true, passphrase: VAULT_PASSPHRASE },
    { kind: 'held', name: 'sweep held', secret: 'provider-secret-123', passphrase: VAULT_PASSPHRASE }]) {
    const res = await inject({ method: 'POST', url: '/api/keys', headers, payload })
    assert.equal(res.statusCode, 201, res.body)
    remember(pools.keyIds, res.json().key.id)
    remember(pools.secrets, res.json().secret)
  }
  pools.sessionIds = (await inject({ method: 'GET', url: '/api/auth/sessions', headers })).json().items.map((s: { id: string }) => s.id)
  ops = await openApiOperations(t.app)
  byLabel = new Map(ops.map((op) => [`${op.method} ${op.path}`, op]))
})
after(async () => { await t.close() })

it('every operation answers generated requests with a 2xx or a 4xx in the one error shape, never a 5xx, and leaves Object.prototype alone', async () => {
  assert.ok(ops.length >= 40, `${ops.length} operations in the OpenAPI document`)
  const known: Known = { user, admin }
  const now = Math.floor(Date.now() / 1000)
  const forge = (claims: object, secret = TEST_SECRETS.JWT_SECRET, header?: object) => signHs256({ iat: now, exp: now + 600, jti: 'sweep', ...claims }, secret, header)
  const userId = JSON.parse(Buffer.from(user.accessToken.split('.')[1] as string, 'base64url').toString()).sub as string
  const badAuth = [
    new Raw('Bearer'), new Raw('Bearer '), new Raw('Bearer __proto__'), new Raw('Basic dXNlcjpwYXNz'), new Raw(`Bearer ${'x'.repeat(10_000)}`, 'Bearer x×10000'),
    new Raw(`Bearer ${forge({ sub: '__proto__', sid: 'constructor', role: 'admin', typ: 'access' })}`, 'forged(sub=__proto__, sid=constructor)'),
    new Raw(`Bearer ${forge({ sub: userId, sid: '__proto__', role: 'admin', typ: 'access' })}`, 'forged(user, sid=__proto__)'),
    new Raw(`Bearer ${forge({ sub: userId, sid: 'toString', role: 'user', typ: 'refresh' })}`, 'forged(typ=refresh)'),
    new Raw(`Bearer ${forge({ sub: userId, role: 'admin', typ: 'access' }, 'not the server secret')}`, 'forged(wrong secret)'),
    new Raw(`Bearer ${forge({ sub: userId, role: 'admin', typ: 'access' }, '', { alg: 'none', typ: 'JWT' }).replace(/[^.]+$/, '')}`, 'forged(alg=none)')
  ]
  // Operations with a body have the most to explore: they are drawn twice as often.
  const request = fc.oneof(...ops.map((op) => ({ weight: op.body === undefined ? 1 : 2, arbitrary: requestFor(op, known, badAuth) })))

  const seed = process.env.SWEEP_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.SWEEP_SEED)
  const path = process.env.SWEEP_PATH
  console.log(`property sweep: seed ${seed}${path === undefined ? '' : `, path ${path}`} (replay with SWEEP_SEED=${seed})`)
  try {
    await fc.assert(fc.asyncProperty(request, send), { numRuns: RUNS, seed, includeErrorInReport: true, ...(path === undefined ? {} : { path }) })
  } catch (err) {
    console.error(`property sweep failed after ${generated} generated requests: replay with SWEEP_SEED=${seed} (and SWEEP_PATH from the message below for the shrunk case)`)
    throw err
  }

  const summary = [...outcomes].map(([op, o]) => `${op} ${o.ok}/${o.ok + o.refused}`).join(', ')
  console.log(`property sweep: ${generated} generated requests (${requests} in all) over ${ops.length} operations, no 5xx; 2xx/all per operation: ${summary}`)
  if (path !== undefined) return
  assert.ok(generated >= 5_000, `${generated} generated requests`)
  for (const op of ops) {
    const tally = outcomes.get(`${op.method} ${op.path}`)
    assert.ok(tally !== undefined && tally.ok + tally.refused >= 50, `${op.method} ${op.path} was barely exercised`)
  }
})

it('afterwards Object.prototype was never touched, health is 200 and a fresh user can register, create a key and verify it', async () => {
  assert.equal(firstDamage, undefined)
  assert.deepEqual(Object.keys(Object.prototype), [])
  assert.deepEqual(prototypeDamage(), [])
  assert.equal((await inject({ method: 'GET', url: '/api/health' })).statusCode, 200)
  const fresh = await registerUser(t.app)
  const created = await inject({ method: 'POST', url: '/api/keys', headers: fresh.headers, payload: { kind: 'issued', name: 'after the sweep' } })
  assert.equal(created.statusCode, 201, created.body)
  const verified = await inject({ method: 'POST', url: '/api/keys/verify', headers: fresh.headers, payload: { key: created.json().secret } })
  assert.equal(verified.statusCode, 200, verified.body)
  assert.equal(verified.json().valid, true, verified.body)
  assert.equal((await inject({ method: 'GET', url: '/api/usage/summary', headers: fresh.headers })).statusCode, 200)
})
