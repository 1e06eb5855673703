import assert from 'node:assert/strict'
import { it } from 'node:test'
import fc from 'fast-check'
import { checkMetadata, MAX_METADATA_BYTES } from '../../plugins/app/keys/service.ts'

/** The reference the iterative check must agree with: recursion is fine here, inputs are small. */
function depth (value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  return 1 + Math.max(0, ...Object.values(value as object).map(depth))
}

function accepted (metadata: Record<string, unknown>): boolean {
  try {
    checkMetadata(metadata)
    return true
  } catch (err) {
    assert.equal((err as { statusCode?: number }).statusCode, 400)
    return false
  }
}

it('accepts metadata exactly when its JSON fits the byte budget and nests at most 10 levels', () => {
  const metadata = fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.jsonValue({ maxDepth: 12 }), fc.string({ maxLength: 1500 })), { maxKeys: 12 })
  fc.assert(fc.property(metadata, (m) => {
    const fits = Buffer.byteLength(JSON.stringify(m)) <= MAX_METADATA_BYTES && depth(m) <= 10
    assert.equal(accepted(m), fits)
  }), { numRuns: 2000 })
})

it('refuses a depth bomb or a wide body at once, without recursion', () => {
  // Built as text and parsed, as the server receives it: 100,000 levels would overflow a recursive walk.
  const bomb = JSON.parse('{"a":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}')
  assert.throws(() => checkMetadata(bomb), /nest at most 10 levels/)
  const objects = JSON.parse('{"a":' + '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000) + '}')
  assert.throws(() => checkMetadata(objects), /nest at most 10 levels/)
  assert.throws(() => checkMetadata({ a: 'x'.repeat(5000) }), /at most 4096 bytes/)
  assert.throws(() => checkMetadata({ a: Array.from({ length: 300_000 }, () => 0) }), /at most 4096 bytes/)
})
