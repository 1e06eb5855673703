import { randomBytes, timingSafeEqual } from 'node:crypto'
import { scrypt, type ScryptParams } from '../kdf.ts'

const SALT_LENGTH = 16

function encode (params: ScryptParams, salt: Buffer, hash: Buffer): string {
  return `scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`
}

function decode (stored: string): { params: ScryptParams, salt: Buffer, hash: Buffer } | null {
  const match = /^scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored)
  if (match === null) return null
  return {
    params: { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) },
    salt: Buffer.from(match[4] as string, 'base64url'),
    hash: Buffer.from(match[5] as string, 'base64url')
  }
}

/** A self-describing hash: the parameters travel with it so they can be raised later. */
export async function hashPassword (password: string, params: ScryptParams): Promise<string> {
  const salt = randomBytes(SALT_LENGTH)
  return encode(params, salt, await scrypt(password, salt, params))
}

export async function verifyPassword (password: string, stored: string): Promise<boolean> {
  const decoded = decode(stored)
  if (decoded === null) return false
  const candidate = await scrypt(password, decoded.salt, decoded.params)
  return candidate.length === decoded.hash.length && timingSafeEqual(candidate, decoded.hash)
}

/** True when the stored hash was made with other parameters than the current ones. */
export function needsRehash (stored: string, params: ScryptParams): boolean {
  const decoded = decode(stored)
  return decoded === null || decoded.params.ln !== params.ln || decoded.params.r !== params.r || decoded.params.p !== params.p
}
