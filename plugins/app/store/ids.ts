import { randomBytes } from 'node:crypto'

const ID_PATTERN = /^[0-9a-f]{24}$/

/**
 * A new opaque id: 12 hex digits of milliseconds then 12 random hex digits, so ids sort by
 * creation time (stable pagination tie-breaks) and cannot be guessed.
 */
export function newId (now = Date.now()): string {
  return now.toString(16).padStart(12, '0').slice(-12) + randomBytes(6).toString('hex')
}

/** True when the string could be an id; anything else is answered as "not found" without a lookup. */
export function isId (value: string): boolean {
  return ID_PATTERN.test(value)
}
