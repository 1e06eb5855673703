import type { AuditInput, VaultRecord, VaultStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import type { SqliteConnection } from './connection.ts'
import { toVault } from './mappers.ts'

export class SqliteVault implements VaultStore {
  constructor (private readonly db: SqliteConnection, private readonly appendAudit: AppendAudit) {}

  async getVault (userId: string): Promise<VaultRecord | null> {
    const row = this.db.get('SELECT * FROM vaults WHERE user_id = ?', userId)
    return row === undefined ? null : toVault(row)
  }

  async saveVault (userId: string, vault: Pick<VaultRecord, 'kdf' | 'wrappedKey'>, expectedRevision: number | null, audit?: AuditInput): Promise<boolean> {
    const now = Date.now()
    return this.db.write(() => {
      let saved: boolean
      if (expectedRevision === null) {
        saved = this.db.run(`INSERT INTO vaults (user_id, kdf, wrapped_key, revision, created_at, updated_at)
          VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (user_id) DO NOTHING`, userId, vault.kdf, vault.wrappedKey, now, now) > 0
      } else {
        saved = this.db.run('UPDATE vaults SET kdf = ?, wrapped_key = ?, revision = revision + 1, updated_at = ? WHERE user_id = ? AND revision = ?',
          vault.kdf, vault.wrappedKey, now, userId, expectedRevision) > 0
      }
      if (saved && audit !== undefined) this.appendAudit(userId, audit)
      return saved
    })
  }
}
