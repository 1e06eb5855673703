import type { Document, Filter } from 'mongodb'
import type { KeyListQuery, KeyPatch, KeySortField, KeyStats } from '../types/index.ts'
import type { KeyDoc } from './documents.ts'
import { jsonValue, toDate } from './mappers.ts'

// The keys aggregate's queries that need no connection: list filters, patches, the stats pipeline.

export const KEY_PATCH_FIELDS = [
  'name', 'service', 'description', 'environment', 'tags', 'scopes', 'metadata', 'expiresAt', 'rotationIntervalDays',
  'rotationDueAt', 'monthlyLimit', 'rateLimit', 'status', 'hash', 'start', 'prefix', 'version', 'lastUsedAt',
  'recoverable', 'revokedAt'
] as const satisfies ReadonlyArray<keyof KeyPatch>

export const SEARCH_FIELDS = ['name', 'service', 'description', 'tags'] as const satisfies ReadonlyArray<keyof KeyPatch>
const TIME_FIELDS = new Set<string>(['expiresAt', 'rotationDueAt', 'lastUsedAt', 'createdAt', 'revokedAt'])
const NULLABLE_SORT_FIELDS = new Set<KeySortField>(['lastUsedAt', 'expiresAt'])
const EXPIRING_SOON_MS = 7 * 86_400_000

// Records never carry the search text, so reads leave it on the server.
export const KEY_READ = { projection: { search: 0 } }

export function storedKeyValue (field: keyof KeyPatch, value: unknown): unknown {
  if (value === null) return null
  if (TIME_FIELDS.has(field)) return toDate(value as number)
  if (field === 'tags' || field === 'scopes' || field === 'metadata' || field === 'rateLimit') return jsonValue(value)
  return value
}

function escapeRegex (text: string): string {
  // A NUL byte is refused inside a $regex string, so it is spelled as an escape.
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\0/g, '\\x00')
}

function cursorValue (field: KeySortField, value: string | number | null): string | Date | null {
  if (value === null) return null
  if (field === 'name') return String(value)
  return typeof value === 'number' ? toDate(value) : null
}

// Comparisons never cross types ($gt: null matches no Date), so the cases around null are spelled out.
function keysetFilter (field: KeySortField, after: { value: string | number | null, id: string }, descending: boolean): Filter<KeyDoc> {
  const value = cursorValue(field, after.value)
  const idOp = descending ? '$lt' : '$gt'
  if (value === null) {
    return descending
      ? { [field]: null, _id: { $lt: after.id } }
      : { $or: [{ [field]: null, _id: { $gt: after.id } }, { [field]: { $ne: null } }] }
  }
  const clauses: Array<Filter<KeyDoc>> = [
    { [field]: { [idOp]: value } },
    { [field]: value, _id: { [idOp]: after.id } }
  ]
  if (descending && NULLABLE_SORT_FIELDS.has(field)) clauses.push({ [field]: null })
  return { $or: clauses }
}

/** The filter for one page of an owner's keys. */
export function listFilter (ownerId: string, query: KeyListQuery): Filter<KeyDoc> {
  const and: Array<Filter<KeyDoc>> = [{ ownerId }]
  if (query.status !== undefined) and.push({ status: query.status })
  if (query.kind !== undefined) and.push({ kind: query.kind })
  if (query.service !== undefined) and.push({ service: query.service })
  if (query.environment !== undefined) and.push({ environment: query.environment })
  if (query.tag !== undefined) and.push({ tags: query.tag })
  if (query.q !== undefined && query.q !== '') and.push({ search: { $regex: escapeRegex(query.q.toLowerCase()) } })
  if (query.after !== undefined) and.push(keysetFilter(query.sort, query.after, query.descending))
  return and.length === 1 ? and[0] as Filter<KeyDoc> : { $and: and }
}

interface GroupCount {
  _id: string | null
  n: number
}

export interface StatsFacets {
  byStatus: GroupCount[]
  byKind: GroupCount[]
  byService: GroupCount[]
  byEnvironment: GroupCount[]
  counts: Array<{ total: number, expiringSoon: number, rotationDue: number }>
}

/** An aggregation expression: true when `field` holds a date (null and missing compare below every date). */
function isDate (field: string) {
  return { $eq: [{ $type: field }, 'date'] }
}

/** One pass over the owner's keys: counts per status, kind, service and environment, and the due ones. */
export function keyStatsPipeline (ownerId: string, now: number): Document[] {
  const nowDate = toDate(now)
  const soon = toDate(now + EXPIRING_SOON_MS)
  const active = { $eq: ['$status', 'active'] }
  const group = (field: string) => [{ $group: { _id: `$${field}`, n: { $sum: 1 } } }]
  return [
    { $match: { ownerId } },
    {
      $facet: {
        byStatus: group('status'),
        byKind: group('kind'),
        byService: group('service'),
        byEnvironment: group('environment'),
        counts: [{
          $group: {
            _id: null,
            total: { $sum: 1 },
            expiringSoon: {
              $sum: {
                $cond: [{ $and: [active, isDate('$expiresAt'), { $gt: ['$expiresAt', nowDate] }, { $lte: ['$expiresAt', soon] }] }, 1, 0]
              }
            },
            rotationDue: {
              $sum: { $cond: [{ $and: [active, isDate('$rotationDueAt'), { $lte: ['$rotationDueAt', nowDate] }] }, 1, 0] }
            }
          }
        }]
      }
    }
  ]
}

/** Counts per value of a field; a missing or null value counts under 'none', as in SQLite. */
function countsBy (groups: GroupCount[]): Record<string, number> {
  return Object.fromEntries(groups.map((g) => [g._id == null ? 'none' : String(g._id), g.n]))
}

export function toKeyStats (facets: StatsFacets | undefined): KeyStats {
  const counts = facets?.counts[0]
  return {
    total: counts?.total ?? 0,
    byStatus: countsBy(facets?.byStatus ?? []),
    byKind: countsBy(facets?.byKind ?? []),
    byService: countsBy(facets?.byService ?? []),
    byEnvironment: countsBy(facets?.byEnvironment ?? []),
    expiringSoon: counts?.expiringSoon ?? 0,
    rotationDue: counts?.rotationDue ?? 0
  }
}
