import { randomBytes } from 'node:crypto'

const ID_PATTERN = /^[0-9a-f]{24}$/
let sequence = randomBytes(2).readUInt16BE(0)

/**
 * A new opaque id: 12 hex digits of milliseconds, 4 of a per-process sequence and 8 random, so
 * ids sort by creation time (ids made in the same millisecond by one process keep their order)
 * and cannot be guessed.
 */
export function newId (now = Date.now()): string {
  sequence = (sequence + 1) & 0xffff
  return now.toString(16).padStart(12, '0').slice(-12) + sequence.toString(16).padStart(4, '0') + randomBytes(4).toString('hex')
}

/** True when the string could be an id; anything else is answered as "not found" without a lookup. */
export function isId (value: string): boolean {
  return ID_PATTERN.test(value)
}
