import { createHmac, createSecretKey, hash, randomBytes, type KeyObject } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { KEY_BODY_LENGTH as BODY_LENGTH, KEY_CHECKSUM_LENGTH as CHECKSUM_LENGTH, MAX_KEY_LENGTH, PREFIX_PATTERN } from '../../../schemas/keys.ts'

/**
 * Issued keys: `<prefix><43 base62 chars of 32 random bytes><6 base62 chars of CRC-32>`.
 * The checksum lets a mistyped or invented key be refused before any lookup.
 */

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const DEFAULT_PREFIX = 'kw_'
const PREFIX_RE = new RegExp(PREFIX_PATTERN)
/** A stored prefix: the pattern plus the underscore normalisePrefix may add. */
const STORED_PREFIX_RE = /^[A-Za-z][A-Za-z0-9_]{0,16}$/
const BASE62_TAIL = /^[0-9A-Za-z]+$/
/** Characters of the body shown in `start`, after the prefix. */
const START_CHARS = 4

function base62 (value: bigint, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) {
    out = ALPHABET[Number(value % 62n)] + out
    value /= 62n
  }
  return out
}

function checksum (payload: string): string {
  let n = crc32(payload)
  let out = ''
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[n % 62] + out
    n = Math.floor(n / 62)
  }
  return out
}

/** The prefix as stored: a custom one gets a trailing underscore so the key reads `acme_...`. */
export function normalisePrefix (prefix: string | undefined): string {
  if (prefix === undefined) return DEFAULT_PREFIX
  if (!PREFIX_RE.test(prefix)) throw new Error('invalid prefix')
  return prefix.endsWith('_') ? prefix : `${prefix}_`
}

export function generateKey (prefix: string): { secret: string, start: string } {
  const body = base62(BigInt('0x' + randomBytes(32).toString('hex')), BODY_LENGTH)
  const payload = prefix + body
  return { secret: payload + checksum(payload), start: prefix + body.slice(0, START_CHARS) }
}

/** True when the candidate has the shape and checksum of an issued key (no lookup involved). */
export function isWellFormed (candidate: string): boolean {
  const length = candidate.length
  if (length < BODY_LENGTH + CHECKSUM_LENGTH + 2 || length > MAX_KEY_LENGTH) return false
  const payload = candidate.slice(0, length - CHECKSUM_LENGTH)
  const prefix = payload.slice(0, payload.length - BODY_LENGTH)
  if (!STORED_PREFIX_RE.test(prefix) || !BASE62_TAIL.test(candidate.slice(prefix.length))) return false
  return checksum(payload) === candidate.slice(length - CHECKSUM_LENGTH)
}

/** SHA-256's block size: HMAC pads its key to it. */
const BLOCK = 64
/** The longest secret hashed through the scratch buffer; longer ones (never a well-formed key) take createHmac. */
const SCRATCH_SECRET_BYTES = 1024

interface Pepper { key: KeyObject, inner: Buffer, outer: Buffer }
const peppers = new Map<string, Pepper>()

/** The pepper's HMAC pads, computed once: RFC 2104 with SHA-256, the key hashed first when longer than a block. */
function pepperFor (pepper: string): Pepper {
  let found = peppers.get(pepper)
  if (found === undefined) {
    const raw = Buffer.from(pepper, 'utf8')
    const key = Buffer.alloc(BLOCK)
    ;(raw.length > BLOCK ? hash('sha256', raw, 'buffer') : raw).copy(key)
    const inner = Buffer.alloc(BLOCK + SCRATCH_SECRET_BYTES)
    for (let i = 0; i < BLOCK; i++) inner[i] = (key[i] as number) ^ 0x36
    const outer = Buffer.alloc(BLOCK + 32)
    for (let i = 0; i < BLOCK; i++) outer[i] = (key[i] as number) ^ 0x5c
    found = { key: createSecretKey(raw), inner, outer }
    peppers.set(pepper, found)
  }
  return found
}

/**
 * The lookup hash: HMAC-SHA256 under the server's pepper, so a leaked table cannot be brute-forced
 * offline. It runs on every verification, so it is two one-shot hashes over buffers prepared once
 * (a third of createHmac's CPU; same digest). Synchronous, so the scratch buffers are never shared.
 */
export function lookupHash (secret: string, pepper: string): string {
  const p = pepperFor(pepper)
  if (secret.length > SCRATCH_SECRET_BYTES / 3) return createHmac('sha256', p.key).update(secret).digest('hex')
  const length = p.inner.write(secret, BLOCK, 'utf8')
  p.outer.write(hash('sha256', p.inner.subarray(0, BLOCK + length), 'binary'), BLOCK, 'binary')
  return hash('sha256', p.outer, 'hex')
}
