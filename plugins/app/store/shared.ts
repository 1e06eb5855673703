import { createHash } from 'node:crypto'
import type { KeyListQuery, KeyRecord, KeySortField, KeysStore, Page, UsersStore } from './types/index.ts'

/** The lower-cased text that `q` searches: name, service, description and tags. */
export function searchText (key: Pick<KeyRecord, 'name' | 'service' | 'description' | 'tags'>): string {
  return [key.name, key.service ?? '', key.description ?? '', ...key.tags].join('\n').toLowerCase()
}

/** The value a key sorts by, as both adapters compare it (a missing time sorts lowest). */
function sortValue (key: KeyRecord, field: KeySortField): string | number | null {
  return key[field]
}

/** A page from the up to limit + 1 keys read: the extra one only says that another page follows. */
export function keyPage (read: KeyRecord[], query: Pick<KeyListQuery, 'limit' | 'sort'>): Page<KeyRecord> {
  const items = read.slice(0, query.limit)
  const last = items[items.length - 1]
  return {
    items,
    next: read.length > query.limit && last !== undefined ? { value: sortValue(last, query.sort), id: last.id } : null
  }
}

/** JSON with object keys sorted, so equal values always hash alike. */
export function canonicalJson (value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.keys(value as object).sort()
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
  return `{${entries.join(',')}}`
}

export const GENESIS_HASH = '0'.repeat(64)

const ANONYMOUS_PREFIX = 'deleted:'

/** The email a deleted account keeps until purged: unique per account, never a valid address, so the real one is free again. */
export function tombstoneEmail (userId: string): string {
  return `deleted:${userId}`
}

/** Rows one purge batch removes: each batch is a short transaction, whatever the account's size. */
export const PURGE_BATCH = 500

/** Purges a marked account batch by batch to the end; the total removed. */
export async function purgeAccount (users: Pick<UsersStore, 'purgeDeletedUser'>, userId: string, batch: number): Promise<number> {
  let total = 0
  for (let n = await users.purgeDeletedUser(userId, batch); n > 0; n = await users.purgeDeletedUser(userId, batch)) total += n
  return total
}

/** An anonymised owner id for a deleted account's events (a one-way tag, not the id itself). */
export function anonymousOwner (userId: string): string {
  return ANONYMOUS_PREFIX + createHash('sha256').update(userId).digest('hex').slice(0, 24)
}

/** Whether an owner id is a deleted account's tag (live ids are 24 hex digits, never this form). */
export function isAnonymousOwner (ownerId: string): boolean {
  return ownerId.startsWith(ANONYMOUS_PREFIX)
}

/** Start of the UTC month containing `ms`. */
export function monthStart (ms: number): number {
  const d = new Date(ms)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}

/** Start of the next UTC month after the one containing `ms`. */
export function nextMonthStart (ms: number): number {
  const d = new Date(ms)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

export const HOUR_MS = 3_600_000

export function hourStart (ms: number): number {
  return ms - (ms % HOUR_MS)
}

/** Every key of an owner, read page by page (exports, summaries, account deletion). */
export async function listAllKeys (store: Pick<KeysStore, 'listKeys'>, ownerId: string): Promise<KeyRecord[]> {
  const keys: KeyRecord[] = []
  let after
  for (;;) {
    const page = await store.listKeys(ownerId, { sort: 'createdAt', descending: false, limit: 100, after })
    keys.push(...page.items)
    if (page.next === null) return keys
    after = page.next
  }
}
