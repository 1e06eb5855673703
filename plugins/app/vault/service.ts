import { AppError } from '../errors.ts'
import type { ScryptParams } from '../kdf.ts'
import type { AuditInput, VaultRecord, VaultStore } from '../store/types/index.ts'
import { DecryptionError, deriveKek, newDataKey, newKdf, unwrapDataKey, wrapDataKey } from './crypto.ts'
import type { Static } from 'typebox'
import type { PassphraseBody } from '../../../schemas/vault.ts'

export const passphraseNotSet = () =>
  new AppError(409, 'PASSPHRASE_NOT_SET', 'Set a vault passphrase first (PUT /api/vault/passphrase)')
export const wrongPassphrase = () => new AppError(403, 'WRONG_PASSPHRASE', 'The passphrase is wrong')

/**
 * The per-user vault: a random data key, kept only wrapped under a key derived from the
 * passphrase. The server never stores the passphrase and cannot unwrap without it.
 */
export class VaultService {
  constructor (private readonly store: VaultStore, private readonly kdfParams: ScryptParams) {}

  async status (userId: string): Promise<VaultRecord | null> {
    return this.store.getVault(userId)
  }

  /** Sets the first passphrase, or changes it (re-wrapping only the data key). */
  async setPassphrase (userId: string, input: Static<typeof PassphraseBody>, audit: Omit<AuditInput, 'action'>): Promise<'created' | 'changed'> {
    const vault = await this.store.getVault(userId)
    if (vault === null) {
      if (input.currentPassphrase !== undefined) throw passphraseNotSet()
      const kdf = newKdf(this.kdfParams)
      const wrappedKey = wrapDataKey(await deriveKek(input.passphrase, kdf), newDataKey(), userId)
      if (!(await this.store.saveVault(userId, { kdf, wrappedKey }, null, { ...audit, action: 'vault.passphrase_set' }))) {
        throw new AppError(409, 'PASSPHRASE_ALREADY_SET', 'A passphrase was set at the same time; change it with currentPassphrase')
      }
      return 'created'
    }
    if (input.currentPassphrase === undefined) {
      throw new AppError(409, 'PASSPHRASE_ALREADY_SET', 'A passphrase is already set; send currentPassphrase to change it')
    }
    const dataKey = await this.unwrap(vault, userId, input.currentPassphrase)
    const kdf = newKdf(this.kdfParams)
    const wrappedKey = wrapDataKey(await deriveKek(input.passphrase, kdf), dataKey, userId)
    if (!(await this.store.saveVault(userId, { kdf, wrappedKey }, vault.revision, { ...audit, action: 'vault.passphrase_changed' }))) {
      throw new AppError(409, 'CONFLICT', 'The passphrase was changed at the same time; try again')
    }
    return 'changed'
  }

  /** The user's data key, or 409 PASSPHRASE_NOT_SET / 403 WRONG_PASSPHRASE. */
  async unlock (userId: string, passphrase: string): Promise<Buffer> {
    const vault = await this.store.getVault(userId)
    if (vault === null) throw passphraseNotSet()
    return this.unwrap(vault, userId, passphrase)
  }

  private async unwrap (vault: VaultRecord, userId: string, passphrase: string): Promise<Buffer> {
    try {
      return unwrapDataKey(await deriveKek(passphrase, vault.kdf), vault.wrappedKey, userId)
    } catch (err) {
      if (err instanceof DecryptionError) throw wrongPassphrase()
      throw err
    }
  }
}
