import type { KeyViewType } from '../../../schemas/keys.ts'
import type { KeyRecord } from '../store/types/index.ts'
import { iso } from '../time.ts'

/** The API's view of a key: metadata only, never the hash or any ciphertext. */
export function keyView (key: KeyRecord): KeyViewType {
  return {
    id: key.id,
    kind: key.kind,
    name: key.name,
    service: key.service,
    description: key.description,
    environment: key.environment,
    tags: key.tags,
    scopes: key.scopes,
    metadata: key.metadata,
    prefix: key.prefix,
    start: key.start,
    version: key.version,
    status: key.status,
    recoverable: key.recoverable,
    expiresAt: iso(key.expiresAt),
    rotationIntervalDays: key.rotationIntervalDays,
    rotationDueAt: iso(key.rotationDueAt),
    monthlyLimit: key.monthlyLimit,
    rateLimit: key.rateLimit,
    createdAt: iso(key.createdAt),
    updatedAt: iso(key.updatedAt),
    lastUsedAt: iso(key.lastUsedAt),
    revokedAt: iso(key.revokedAt)
  }
}
