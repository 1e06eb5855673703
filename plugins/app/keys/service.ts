import { AppError, notFound } from '../errors.ts'
import type { TwoLayerCache } from '../cache/cache.ts'
import type { Clock } from '../clock.ts'
import { isId, newId } from '../store/ids.ts'
import type { AuditStore, KeyPatch, KeyRecord, KeysStore, KeySortField, KeyStats, KeyStatus, KeyVersionRecord } from '../store/types/index.ts'
import { DecryptionError, open, seal } from '../vault/crypto.ts'
import type { VaultService } from '../vault/service.ts'
import { decodeCursor, encodeCursor } from './cursor.ts'
import { generateKey, lookupHash, normalisePrefix } from './format.ts'
import { keyView } from './view.ts'
import type { Static } from 'typebox'
import type { BulkBody, CreateKeyBody, KeyListQuery, KeyViewType, RotateBody, UpdateKeyBody } from '../../../schemas/keys.ts'

export interface Actor { userId: string, ip: string | null, sessionId?: string }

export type CreateKeyInput = Static<typeof CreateKeyBody>
export type UpdateKeyInput = Static<typeof UpdateKeyBody>
export type ListInput = Static<typeof KeyListQuery>
export type RotateInput = Static<typeof RotateBody>
export type BulkInput = Static<typeof BulkBody>
export type BulkAction = BulkInput['action']

export interface BulkResult { id: string, ok: boolean, status?: KeyStatus, error?: string }

export const MAX_METADATA_BYTES = 4096
export const MAX_PREVIOUS_VERSIONS = 10
export const MAX_TAGS = 20
export const MAX_GRACE_SECONDS = 30 * 86_400
const DAY_MS = 86_400_000
const LIST_TTL_MS = 60_000

const keyRevoked = () => new AppError(409, 'KEY_REVOKED', 'The key is revoked; revoked keys cannot change')
const notRecoverable = () => new AppError(409, 'NOT_RECOVERABLE', 'This issued key was created without a recoverable copy')

function parseTime (value: string | null | undefined, field: string): number | null | undefined {
  if (value === undefined || value === null) return value
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new AppError(400, 'VALIDATION_FAILED', `body/${field} must be an ISO 8601 date-time`)
  return ms
}

const MAX_METADATA_DEPTH = 10

/**
 * The size of `metadata` as JSON (exactly what JSON.stringify would write) and its nesting, walked
 * with an explicit stack that stops at the first budget exceeded: a body nested thousands deep or
 * a megabyte wide costs at most the budget, never a recursion (issue 14, finding 4).
 */
export function checkMetadata (metadata: Record<string, unknown> | undefined) {
  if (metadata === undefined) return
  const stack: Array<[unknown, number]> = [[metadata, 1]]
  let bytes = 0
  while (stack.length > 0) {
    const [value, level] = stack.pop() as [unknown, number]
    if (value === null || typeof value !== 'object') {
      bytes += typeof value === 'string' ? Buffer.byteLength(JSON.stringify(value)) : String(value).length
    } else {
      if (level > MAX_METADATA_DEPTH) {
        throw new AppError(400, 'VALIDATION_FAILED', `body/metadata must nest at most ${MAX_METADATA_DEPTH} levels`)
      }
      if (Array.isArray(value)) {
        bytes += 1 + Math.max(1, value.length)
        for (const child of value) stack.push([child, level + 1])
      } else {
        const entries = Object.entries(value)
        bytes += 1 + Math.max(1, entries.length)
        for (const [name, child] of entries) {
          bytes += Buffer.byteLength(JSON.stringify(name)) + 1
          stack.push([child, level + 1])
        }
      }
    }
    if (bytes > MAX_METADATA_BYTES) {
      throw new AppError(400, 'VALIDATION_FAILED', `body/metadata must be at most ${MAX_METADATA_BYTES} bytes as JSON`)
    }
  }
}

/** The display start of a held secret: enough to recognise it, never enough to matter (at most 4 characters, 1/8 of it). */
function heldStart (secret: string): string {
  return secret.slice(0, Math.min(4, Math.floor(secret.length / 8)))
}

function dedupe (values: string[] | undefined): string[] | undefined {
  return values === undefined ? undefined : [...new Set(values)]
}

const SORTS: Record<string, { field: KeySortField, descending: boolean }> = {
  createdAt: { field: 'createdAt', descending: false },
  '-createdAt': { field: 'createdAt', descending: true },
  name: { field: 'name', descending: false },
  '-name': { field: 'name', descending: true },
  lastUsedAt: { field: 'lastUsedAt', descending: false },
  '-lastUsedAt': { field: 'lastUsedAt', descending: true },
  expiresAt: { field: 'expiresAt', descending: false },
  '-expiresAt': { field: 'expiresAt', descending: true }
}
export const SORT_VALUES = Object.keys(SORTS)

export interface KeyServiceDependencies {
  store: KeysStore & AuditStore
  cache: TwoLayerCache
  clock: Clock
  vault: VaultService
  hashSecret: string
}

/** Held and issued keys: creation, listing, changes, reveal, rotation, bulk actions and stats. */
export class KeyService {
  private readonly listeners: Array<(ownerId: string, keys: KeyRecord[]) => Promise<void>> = []

  constructor (private readonly deps: KeyServiceDependencies) {}

  /** Runs after keys change (the verification cache forgets them). */
  onChange (listener: (ownerId: string, keys: KeyRecord[]) => Promise<void>) {
    this.listeners.push(listener)
  }

  private scope (ownerId: string) {
    return `keys:${ownerId}`
  }

  /** Drops the owner's cached lists and stats in every process, then tells the listeners. */
  private async changed (ownerId: string, keys: KeyRecord[]) {
    await this.deps.cache.bumpGeneration(this.scope(ownerId))
    for (const listener of this.listeners) await listener(ownerId, keys)
  }

  async get (ownerId: string, id: string): Promise<KeyRecord> {
    const key = isId(id) ? await this.deps.store.getKey(ownerId, id) : null
    if (key === null) throw notFound('Key')
    return key
  }

  async create (actor: Actor, input: CreateKeyInput): Promise<{ key: KeyRecord, secret?: string }> {
    const now = this.deps.clock.now()
    checkMetadata(input.metadata)
    const expiresAt = parseTime(input.expiresAt, 'expiresAt') ?? null
    if (expiresAt !== null && expiresAt <= now) throw new AppError(400, 'VALIDATION_FAILED', 'body/expiresAt must be in the future')
    const id = newId(now)
    const common = {
      id,
      name: input.name,
      service: input.service ?? null,
      description: input.description ?? null,
      environment: input.environment ?? 'development',
      tags: dedupe(input.tags) ?? [],
      scopes: dedupe(input.scopes) ?? [],
      metadata: input.metadata ?? {},
      version: 1,
      status: 'active' as const,
      expiresAt,
      rotationIntervalDays: input.rotationIntervalDays ?? null,
      rotationDueAt: input.rotationIntervalDays == null ? null : now + input.rotationIntervalDays * DAY_MS,
      monthlyLimit: input.monthlyLimit ?? null,
      rateLimit: input.rateLimit ?? null,
      createdAt: now
    }
    const audit = { action: 'key.created', ip: actor.ip, sessionId: actor.sessionId, detail: { kind: input.kind, name: input.name } }

    if (input.kind === 'held') {
      const dataKey = await this.deps.vault.unlock(actor.userId, input.passphrase)
      const start = heldStart(input.secret)
      const ciphertext = seal(dataKey, input.secret, { ownerId: actor.userId, keyId: id, version: 1 })
      const key = await this.deps.store.createKey(actor.userId, { ...common, kind: 'held', prefix: '', start, hash: null, recoverable: true },
        { hash: null, start, ciphertext }, audit)
      await this.changed(actor.userId, [key])
      return { key }
    }

    const prefix = normalisePrefix(input.prefix)
    const recoverable = input.recoverable === true
    // The schema requires the passphrase with recoverable: true.
    const dataKey = recoverable ? await this.deps.vault.unlock(actor.userId, input.passphrase as string) : null
    const { secret, start } = generateKey(prefix)
    const hash = lookupHash(secret, this.deps.hashSecret)
    const ciphertext = dataKey === null ? null : seal(dataKey, secret, { ownerId: actor.userId, keyId: id, version: 1 })
    const key = await this.deps.store.createKey(actor.userId, { ...common, kind: 'issued', prefix, start, hash, recoverable },
      { hash, start, ciphertext }, audit)
    await this.changed(actor.userId, [key])
    return { key, secret }
  }

  async list (ownerId: string, input: ListInput): Promise<{ items: KeyViewType[], nextCursor: string | null }> {
    const order = input.sort ?? '-createdAt'
    const sort = SORTS[order]
    if (sort === undefined) throw new AppError(400, 'VALIDATION_FAILED', `querystring/sort must be one of ${SORT_VALUES.join(', ')}`)
    const after = input.cursor === undefined ? undefined : decodeCursor(order, input.cursor)
    const query = {
      status: input.status,
      kind: input.kind,
      service: input.service,
      environment: input.environment,
      tag: input.tag,
      q: input.q,
      sort: sort.field,
      descending: sort.descending,
      limit: input.limit ?? 20,
      after
    }
    const gen = await this.deps.cache.generation(this.scope(ownerId))
    // The query is built above in one fixed field order (the cursor's too), so plain JSON is already canonical.
    return this.deps.cache.get(`keys:list:${ownerId}:${gen}:${JSON.stringify(query)}`, async () => {
      const page = await this.deps.store.listKeys(ownerId, query)
      return { items: page.items.map(keyView), nextCursor: page.next === null ? null : encodeCursor(order, page.next) }
    }, { ttlMs: LIST_TTL_MS })
  }

  async stats (ownerId: string): Promise<KeyStats & { generatedAt: string }> {
    const gen = await this.deps.cache.generation(this.scope(ownerId))
    return this.deps.cache.get(`keys:stats:${ownerId}:${gen}`, async () => {
      const now = this.deps.clock.now()
      return { ...(await this.deps.store.keyStats(ownerId, now)), generatedAt: new Date(now).toISOString() }
    }, { ttlMs: LIST_TTL_MS })
  }

  async update (actor: Actor, id: string, input: UpdateKeyInput): Promise<KeyRecord> {
    const key = await this.get(actor.userId, id)
    if (key.status === 'revoked') throw keyRevoked()
    checkMetadata(input.metadata)
    const now = this.deps.clock.now()
    const patch: KeyPatch = {
      name: input.name,
      service: input.service,
      description: input.description,
      environment: input.environment,
      tags: dedupe(input.tags),
      scopes: dedupe(input.scopes),
      metadata: input.metadata,
      monthlyLimit: input.monthlyLimit,
      rateLimit: input.rateLimit,
      status: input.status
    }
    const expiresAt = parseTime(input.expiresAt, 'expiresAt')
    if (expiresAt !== undefined) {
      if (expiresAt !== null && expiresAt <= now) throw new AppError(400, 'VALIDATION_FAILED', 'body/expiresAt must be in the future')
      patch.expiresAt = expiresAt
      // Moving the expiry into the future revives a key the expiration job had marked expired.
      if (key.status === 'expired' && input.status === undefined) patch.status = 'active'
    }
    if (input.status === 'active' && key.status === 'expired' && expiresAt === undefined) {
      throw new AppError(409, 'KEY_EXPIRED', 'The key has expired; set a new expiresAt to use it again')
    }
    if (input.rotationIntervalDays !== undefined) {
      patch.rotationIntervalDays = input.rotationIntervalDays
      patch.rotationDueAt = input.rotationIntervalDays === null ? null : now + input.rotationIntervalDays * DAY_MS
    }
    const fields = Object.entries(input).filter(([, v]) => v !== undefined).map(([k]) => k)
    const updated = await this.deps.store.updateKey(actor.userId, key.id, patch, { action: 'key.updated', ip: actor.ip, sessionId: actor.sessionId, detail: { fields } })
    if (updated === null) throw notFound('Key')
    await this.changed(actor.userId, [updated])
    return updated
  }

  /** Revokes at once (idempotent); the cleanup job purges the record later. */
  async revoke (actor: Actor, id: string): Promise<KeyRecord> {
    const key = await this.get(actor.userId, id)
    if (key.status === 'revoked') return key
    const now = this.deps.clock.now()
    const updated = await this.deps.store.updateKey(actor.userId, key.id, { status: 'revoked', revokedAt: now }, { action: 'key.revoked', ip: actor.ip, sessionId: actor.sessionId })
    if (updated === null) throw notFound('Key')
    await this.changed(actor.userId, [updated])
    return updated
  }

  async versions (ownerId: string, id: string): Promise<{ key: KeyRecord, versions: KeyVersionRecord[] }> {
    const key = await this.get(ownerId, id)
    return { key, versions: await this.deps.store.listKeyVersions(ownerId, key.id) }
  }

  async reveal (actor: Actor, id: string, passphrase: string, version?: number): Promise<{ id: string, version: number, secret: string }> {
    const key = await this.get(actor.userId, id)
    if (!key.recoverable && version === undefined) throw notRecoverable()
    const wanted = version ?? key.version
    const row = await this.deps.store.getKeyVersion(actor.userId, key.id, wanted)
    if (row === null) throw notFound('Version')
    if (row.ciphertext === null) throw notRecoverable()
    const dataKey = await this.deps.vault.unlock(actor.userId, passphrase)
    let secret: string
    try {
      secret = open(dataKey, row.ciphertext, { ownerId: actor.userId, keyId: key.id, version: wanted })
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err
      // The passphrase was right, so the stored ciphertext does not belong here: refuse, never guess.
      throw new AppError(409, 'SECRET_UNREADABLE', 'The stored secret does not open for this key; it may have been tampered with')
    }
    await this.deps.store.appendAudit(actor.userId, { action: 'key.revealed', keyId: key.id, ip: actor.ip, sessionId: actor.sessionId, detail: { version: wanted } })
    return { id: key.id, version: wanted, secret }
  }

  async rotate (actor: Actor, id: string, input: RotateInput): Promise<{ key: KeyRecord, secret?: string }> {
    const key = await this.get(actor.userId, id)
    if (key.status === 'revoked') throw keyRevoked()
    const now = this.deps.clock.now()
    const version = key.version + 1
    let secret: string
    let start: string
    let hash: string | null = null
    if (key.kind === 'held') {
      if (input.secret === undefined) throw new AppError(400, 'VALIDATION_FAILED', 'body is missing the required field \'secret\' for a held key')
      if (input.gracePeriodSeconds !== undefined) throw new AppError(400, 'VALIDATION_FAILED', 'body/gracePeriodSeconds applies to issued keys only')
      secret = input.secret
      start = heldStart(secret)
    } else {
      if (input.secret !== undefined) throw new AppError(400, 'VALIDATION_FAILED', 'body/secret applies to held keys only; issued keys are generated')
      ;({ secret, start } = generateKey(key.prefix))
      hash = lookupHash(secret, this.deps.hashSecret)
    }
    let ciphertext: string | null = null
    if (key.recoverable) {
      if (input.passphrase === undefined) throw new AppError(400, 'VALIDATION_FAILED', 'body is missing the required field \'passphrase\' for this key')
      const dataKey = await this.deps.vault.unlock(actor.userId, input.passphrase)
      ciphertext = seal(dataKey, secret, { ownerId: actor.userId, keyId: key.id, version })
    }
    const grace = input.gracePeriodSeconds ?? 0
    const rotated = await this.deps.store.rotateKey(actor.userId, key.id, {
      patch: {
        version,
        start,
        hash,
        rotationDueAt: key.rotationIntervalDays === null ? null : now + key.rotationIntervalDays * DAY_MS
      },
      next: { hash, start, ciphertext },
      graceEndsAt: key.kind === 'issued' ? now + grace * 1000 : null,
      keepPrevious: MAX_PREVIOUS_VERSIONS,
      now
    }, { action: 'key.rotated', ip: actor.ip, sessionId: actor.sessionId, detail: { version, gracePeriodSeconds: key.kind === 'issued' ? grace : null } })
    if (rotated === null) throw notFound('Key')
    await this.changed(actor.userId, [key, rotated])
    return key.kind === 'issued' ? { key: rotated, secret } : { key: rotated }
  }

  async bulk (actor: Actor, input: BulkInput): Promise<BulkResult[]> {
    if ((input.action === 'addTags' || input.action === 'removeTags') && (input.tags === undefined || input.tags.length === 0)) {
      throw new AppError(400, 'VALIDATION_FAILED', `body/tags is required for ${input.action}`)
    }
    const results: BulkResult[] = []
    const changed: KeyRecord[] = []
    for (const id of [...new Set(input.ids)]) {
      const key = isId(id) ? await this.deps.store.getKey(actor.userId, id) : null
      if (key === null) {
        results.push({ id, ok: false, error: 'NOT_FOUND' })
        continue
      }
      if (key.status === 'revoked') {
        results.push({ id, ok: input.action === 'revoke', status: key.status, ...(input.action === 'revoke' ? {} : { error: 'KEY_REVOKED' }) })
        continue
      }
      const planned = this.bulkPatch(input.action, key, input.tags ?? [])
      if ('error' in planned) {
        results.push({ id, ok: false, status: key.status, error: planned.error })
        continue
      }
      const patch = planned.patch
      const updated = await this.deps.store.updateKey(actor.userId, key.id, patch, { action: `key.bulk_${input.action}`, ip: actor.ip, sessionId: actor.sessionId })
      if (updated === null) {
        results.push({ id, ok: false, error: 'NOT_FOUND' })
        continue
      }
      changed.push(updated)
      results.push({ id, ok: true, status: updated.status })
    }
    if (changed.length > 0) await this.changed(actor.userId, changed)
    return results
  }

  private bulkPatch (action: BulkAction, key: KeyRecord, tags: string[]): { patch: KeyPatch } | { error: string } {
    switch (action) {
      case 'revoke': return { patch: { status: 'revoked', revokedAt: this.deps.clock.now() } }
      case 'disable': return { patch: { status: 'disabled' } }
      case 'enable': return key.status === 'expired' ? { error: 'KEY_EXPIRED' } : { patch: { status: 'active' } }
      case 'addTags': {
        const merged = [...new Set([...key.tags, ...tags])]
        return merged.length > MAX_TAGS ? { error: 'TOO_MANY_TAGS' } : { patch: { tags: merged } }
      }
      case 'removeTags': return { patch: { tags: key.tags.filter((t) => !tags.includes(t)) } }
    }
  }
}
