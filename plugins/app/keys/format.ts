import { createHmac, createSecretKey, hash, randomBytes, type KeyObject } from 'node:crypto'
import { KEY_BODY_LENGTH as BODY_LENGTH, KEY_CHECKSUM_LENGTH as CHECKSUM_LENGTH, MAX_KEY_LENGTH, PREFIX_PATTERN } from '../../../schemas/keys.ts'

/**
 * Issued keys: `<prefix><43 base62 chars of 32 random bytes><6 base62 chars of CRC-32>`.
 * The checksum lets a mistyped or invented key be refused before any lookup.
 */

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const DEFAULT_PREFIX = 'kw_'
const PREFIX_RE = new RegExp(PREFIX_PATTERN)
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

/** CRC-32 (IEEE 802.3, zlib's) table: the checksum runs in JS, so a verification makes no native call for it. */
const CRC_TABLE = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

/** zlib's crc32 of the first `end` characters of an ASCII text (its UTF-8 bytes are its char codes). */
export function crc32Ascii (text: string, end = text.length): number {
  let c = -1
  for (let i = 0; i < end; i++) c = (CRC_TABLE[(c ^ text.charCodeAt(i)) & 0xff] as number) ^ (c >>> 8)
  return (c ^ -1) >>> 0
}

function checksum (payload: string): string {
  let n = crc32Ascii(payload)
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

const LETTER = 1
const DIGIT = 2
const UNDERSCORE = 4
/** The class of each ASCII character a key may hold (0: none). */
const CHAR_CLASS = (() => {
  const classes = new Uint8Array(128)
  for (const c of ALPHABET) classes[c.charCodeAt(0)] = /\d/.test(c) ? DIGIT : LETTER
  classes['_'.charCodeAt(0)] = UNDERSCORE
  return classes
})()
const ALPHABET_CODES = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0))

/**
 * True when the candidate has the shape and checksum of an issued key (no lookup involved): a
 * stored prefix (a letter, then up to 16 letters, digits or underscores), a base62 body, and the
 * base62 CRC-32 of both. A loop over the characters, with no regular expression, slice or
 * native call: it runs on every verification, and each of those cost microseconds there.
 */
export function isWellFormed (candidate: string): boolean {
  const length = candidate.length
  if (length < BODY_LENGTH + CHECKSUM_LENGTH + 2 || length > MAX_KEY_LENGTH) return false
  const payloadEnd = length - CHECKSUM_LENGTH
  const prefixEnd = payloadEnd - BODY_LENGTH
  for (let i = 0; i < payloadEnd; i++) {
    const code = candidate.charCodeAt(i)
    const kind = code < 128 ? CHAR_CLASS[code] as number : 0
    if (i === 0 ? kind !== LETTER : i < prefixEnd ? kind === 0 : (kind & (LETTER | DIGIT)) === 0) return false
  }
  // Every character checked is ASCII, so its char codes are the payload's bytes.
  let n = crc32Ascii(candidate, payloadEnd)
  for (let i = length - 1; i >= payloadEnd; i--) {
    if (candidate.charCodeAt(i) !== ALPHABET_CODES[n % 62]) return false
    n = Math.floor(n / 62)
  }
  return true
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
