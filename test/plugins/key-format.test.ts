import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createHmac } from 'node:crypto'
import { crc32 } from 'node:zlib'
import fc from 'fast-check'
import { crc32Ascii, DEFAULT_PREFIX, generateKey, isWellFormed, lookupHash, normalisePrefix } from '../../plugins/app/keys/format.ts'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** The base62 CRC-32 of a payload, by zlib. */
function checksumByZlib (payload: string): string {
  let n = crc32(payload)
  let sum = ''
  for (let i = 0; i < 6; i++) {
    sum = ALPHABET[n % 62] + sum
    n = Math.floor(n / 62)
  }
  return sum
}

/** The format's definition, written the plain way (a stored prefix of 2 to 17 characters, regular expressions, zlib's CRC-32): the oracle for the one-pass check. */
function wellFormedByDefinition (candidate: string): boolean {
  const match = /^([A-Za-z][A-Za-z0-9_]{1,16})([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/.exec(candidate)
  return match !== null && checksumByZlib(match[1]! + match[2]!) === match[3]
}

describe('issued key format', () => {
  it('generates prefixed keys with a checksum that verifies', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 200; i++) {
      const { secret, start } = generateKey(DEFAULT_PREFIX)
      assert.match(secret, /^kw_[0-9A-Za-z]{49}$/)
      assert.equal(start, secret.slice(0, 7))
      assert.ok(isWellFormed(secret))
      seen.add(secret)
    }
    assert.equal(seen.size, 200)
    const longest = generateKey(normalisePrefix('abcdefghijklmnop'))
    assert.ok(isWellFormed(longest.secret), 'a 16-character prefix (stored with its underscore) verifies')
    const custom = generateKey(normalisePrefix('acme'))
    assert.match(custom.secret, /^acme_[0-9A-Za-z]{49}$/)
    assert.ok(isWellFormed(custom.secret))
  })

  it('refuses every single-character typo and invented keys', () => {
    const { secret } = generateKey(DEFAULT_PREFIX)
    for (let i = 3; i < secret.length; i++) {
      const c = secret[i] === 'a' ? 'b' : 'a'
      assert.equal(isWellFormed(secret.slice(0, i) + c + secret.slice(i + 1)), false, `typo at ${i}`)
    }
    assert.equal(isWellFormed(secret.slice(0, -1)), false)
    assert.equal(isWellFormed(secret + 'x'), false)
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => {
      // An arbitrary string passes only with the right shape and a 1 in 2^32 checksum match.
      if (isWellFormed(s)) assert.match(s, /^[A-Za-z][A-Za-z0-9_]*[0-9A-Za-z]{49}$/)
    }), { numRuns: 2000 })
  })

  it('checks exactly the format\'s definition: generated, mistyped, cut, lengthened and arbitrary candidates', () => {
    assert.equal(crc32Ascii('123456789'), 0xCBF43926, 'the CRC-32 check value')
    const ascii = fc.array(fc.integer({ min: 0, max: 127 }), { maxLength: 80 }).map((codes) => String.fromCharCode(...codes))
    fc.assert(fc.property(ascii, (s) => { assert.equal(crc32Ascii(s), crc32(s)) }), { numRuns: 2000 })
    const prefixes = ['kw_', 'a_', 'acme_', 'sk_live_', normalisePrefix('abcdefghijklmnop'), 'Ab9_x_']
    const candidates = fc.oneof(
      fc.constantFrom(...prefixes).map((prefix) => generateKey(prefix).secret),
      fc.tuple(fc.constantFrom(...prefixes), fc.nat(66), fc.constantFrom('a', 'Z', '0', '_', '-', 'é', ' ', '')).map(([prefix, at, c]) => {
        const secret = generateKey(prefix).secret
        return secret.slice(0, at) + c + secret.slice(at + 1)
      }),
      fc.tuple(fc.constantFrom(...prefixes), fc.nat(66)).map(([prefix, cut]) => generateKey(prefix).secret.slice(cut)),
      fc.tuple(fc.string({ unit: fc.constantFrom(...'aZ9_'.split('')), maxLength: 20 }), fc.constantFrom(...prefixes)).map(([head, prefix]) => head + generateKey(prefix).secret),
      fc.string({ maxLength: 80 }),
      fc.string({ unit: fc.constantFrom(...(ALPHABET + '_').split('')), minLength: 50, maxLength: 67 }),
      // Any payload with its right checksum: only the shape can refuse these.
      fc.string({ unit: fc.constantFrom(...'aZk09_-.é '.split('')), minLength: 40, maxLength: 64 }).map((payload) => payload + checksumByZlib(payload)),
      fc.tuple(
        fc.constantFrom(...prefixes, '', '_', '9', '_kw', 'k-w_', 'abcdefghijklmnopq_'),
        fc.string({ unit: fc.constantFrom(...'aZ9'.split('')), minLength: 42, maxLength: 44 }),
        fc.constantFrom('', '_', '-', 'é'),
        fc.nat(62)
      ).map(([prefix, body, odd, at]) => {
        const clean = prefix + body
        const payload = clean.slice(0, at) + odd + clean.slice(at + odd.length)
        return payload + checksumByZlib(payload)
      })
    )
    let valid = 0
    fc.assert(fc.property(candidates, (candidate) => {
      const expected = wellFormedByDefinition(candidate)
      if (expected) valid++
      assert.equal(isWellFormed(candidate), expected, candidate)
    }), { numRuns: 20_000 })
    assert.ok(valid > 1000, `generated keys were among the candidates (${valid})`)
  })

  it('validates custom prefixes', () => {
    assert.equal(normalisePrefix(undefined), 'kw_')
    assert.equal(normalisePrefix('sk_live_'), 'sk_live_')
    assert.throws(() => normalisePrefix('9lives'))
    assert.throws(() => normalisePrefix('has-dash'))
    assert.throws(() => normalisePrefix('x'.repeat(17)))
  })

  it('hashes with the pepper', () => {
    assert.equal(lookupHash('a', 'p1'), lookupHash('a', 'p1'))
    assert.notEqual(lookupHash('a', 'p1'), lookupHash('a', 'p2'))
    assert.match(lookupHash('a', 'p1'), /^[0-9a-f]{64}$/)
  })

  it('computes exactly HMAC-SHA256 for any secret and pepper (short, block-sized, longer than a block, non-ASCII)', () => {
    const peppers = ['p', 'x'.repeat(64), 'y'.repeat(65), 'é'.repeat(40)]
    fc.assert(fc.property(fc.constantFrom(...peppers), fc.string({ unit: 'binary', maxLength: 500 }), (pepper, secret) => {
      assert.equal(lookupHash(secret, pepper), createHmac('sha256', pepper).update(secret).digest('hex'))
    }))
  })
})
