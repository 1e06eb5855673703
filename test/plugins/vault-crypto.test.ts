import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DecryptionError, deriveKek, newDataKey, newKdf, open, seal, unwrapDataKey, wrapDataKey } from '../../plugins/app/vault/crypto.ts'

const PARAMS = { ln: 10, r: 8, p: 1 }

describe('envelope encryption', () => {
  it('wraps the data key under the passphrase and seals secrets under the data key', async () => {
    const kdf = newKdf(PARAMS)
    const kek = await deriveKek('a long passphrase', kdf)
    const dataKey = newDataKey()
    const wrapped = wrapDataKey(kek, dataKey, 'user-1')
    assert.doesNotMatch(wrapped, new RegExp(dataKey.toString('base64url')))
    const unwrapped = unwrapDataKey(await deriveKek('a long passphrase', kdf), wrapped, 'user-1')
    assert.ok(unwrapped.equals(dataKey))

    const ctx = { ownerId: 'user-1', keyId: 'key-1', version: 1 }
    const sealed = seal(dataKey, 'sk_live_secret', ctx)
    assert.equal(open(dataKey, sealed, ctx), 'sk_live_secret')
    assert.notEqual(seal(dataKey, 'sk_live_secret', ctx), sealed, 'a fresh nonce each time')
  })

  it('a wrong passphrase, another user, key or version fails to open', async () => {
    const kdf = newKdf(PARAMS)
    const dataKey = newDataKey()
    const wrapped = wrapDataKey(await deriveKek('right passphrase', kdf), dataKey, 'u1')
    assert.throws(() => unwrapDataKey(Buffer.alloc(32), wrapped, 'u1'), DecryptionError)
    await assert.rejects(async () => unwrapDataKey(await deriveKek('wrong passphrase', kdf), wrapped, 'u1'), DecryptionError)
    assert.throws(() => unwrapDataKey(Buffer.alloc(32), wrapped, 'u2'), DecryptionError)

    const sealed = seal(dataKey, 'secret', { ownerId: 'u1', keyId: 'k1', version: 1 })
    for (const ctx of [{ ownerId: 'u2', keyId: 'k1', version: 1 }, { ownerId: 'u1', keyId: 'k2', version: 1 }, { ownerId: 'u1', keyId: 'k1', version: 2 }]) {
      assert.throws(() => open(dataKey, sealed, ctx), DecryptionError)
    }
    assert.throws(() => open(newDataKey(), sealed, { ownerId: 'u1', keyId: 'k1', version: 1 }), DecryptionError)
    const [v, n, body, tag] = sealed.split('.')
    const flipped = body!.slice(0, -2) + (body!.endsWith('A') ? 'BB' : 'AA')
    assert.throws(() => open(dataKey, [v, n, flipped, tag].join('.'), { ownerId: 'u1', keyId: 'k1', version: 1 }), DecryptionError)
    assert.throws(() => open(dataKey, 'garbage', { ownerId: 'u1', keyId: 'k1', version: 1 }), DecryptionError)
  })
})
