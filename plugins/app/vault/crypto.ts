import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { scrypt, type ScryptParams } from '../kdf.ts'

/**
 * Envelope encryption. Each user has a random 256-bit data key; it is stored only wrapped
 * (AES-256-GCM) under a key derived from the user's passphrase with scrypt. Secrets are sealed
 * with AES-256-GCM under the data key, with associated data binding each ciphertext to its
 * owner, key and version, so a ciphertext moved elsewhere fails to open.
 */

const FORMAT = 'v1'
const NONCE_BYTES = 12
const TAG_BYTES = 16

export class DecryptionError extends Error {
  constructor () {
    super('decryption failed')
    this.name = 'DecryptionError'
  }
}

function encrypt (key: Buffer, plaintext: Buffer, aad: string): string {
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return [FORMAT, nonce.toString('base64url'), body.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.')
}

function decrypt (key: Buffer, sealed: string, aad: string): Buffer {
  const parts = sealed.split('.')
  if (parts.length !== 4 || parts[0] !== FORMAT) throw new DecryptionError()
  const nonce = Buffer.from(parts[1] as string, 'base64url')
  const tag = Buffer.from(parts[3] as string, 'base64url')
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) throw new DecryptionError()
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(aad, 'utf8'))
    decipher.setAuthTag(tag)
    return Buffer.concat([decipher.update(Buffer.from(parts[2] as string, 'base64url')), decipher.final()])
  } catch {
    throw new DecryptionError()
  }
}

/** A new KDF description: parameters and a fresh per-user salt. */
export function newKdf (params: ScryptParams): string {
  return `scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${randomBytes(16).toString('base64url')}`
}

/** Derives the key-encryption key from a passphrase and the stored KDF description. */
export async function deriveKek (passphrase: string, kdf: string): Promise<Buffer> {
  const match = /^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)$/.exec(kdf)
  if (match === null) throw new DecryptionError()
  return scrypt(passphrase, Buffer.from(match[4] as string, 'base64url'), { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) })
}

export function newDataKey (): Buffer {
  return randomBytes(32)
}

export function wrapDataKey (kek: Buffer, dataKey: Buffer, userId: string): string {
  return encrypt(kek, dataKey, `keyward:data-key:${userId}`)
}

/** Opens the wrapped data key; a wrong passphrase fails here (GCM authentication). */
export function unwrapDataKey (kek: Buffer, wrapped: string, userId: string): Buffer {
  return decrypt(kek, wrapped, `keyward:data-key:${userId}`)
}

export interface SealContext { ownerId: string, keyId: string, version: number }

const sealAad = (c: SealContext) => `keyward:secret:${c.ownerId}:${c.keyId}:${c.version}`

export function seal (dataKey: Buffer, plaintext: string, context: SealContext): string {
  return encrypt(dataKey, Buffer.from(plaintext, 'utf8'), sealAad(context))
}

export function open (dataKey: Buffer, sealed: string, context: SealContext): string {
  return decrypt(dataKey, sealed, sealAad(context)).toString('utf8')
}
