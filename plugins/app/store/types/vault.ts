import type { AuditInput } from './audit.ts'

/** A user's vault: the data key wrapped under a key derived from the passphrase. */
export interface VaultRecord {
  userId: string
  /** The key-derivation function and its parameters and salt, self-describing. */
  kdf: string
  wrappedKey: string
  /** Incremented on every change; a change names the version it replaces (compare and set). */
  revision: number
  createdAt: number
  updatedAt: number
}

export interface VaultStore {
  getVault (userId: string): Promise<VaultRecord | null>
  /**
   * Creates (expectedRevision null) or replaces (expectedRevision = the current one) the vault;
   * false when another change got there first.
   */
  saveVault (userId: string, vault: Pick<VaultRecord, 'kdf' | 'wrappedKey'>, expectedRevision: number | null, audit?: AuditInput): Promise<boolean>
}
