import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { DEFAULT_PREFIX, generateKey, isWellFormed, lookupHash, normalisePrefix } from '../../plugins/app/keys/format.ts'

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
