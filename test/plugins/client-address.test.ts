import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { clientAddressKey } from '../../plugins/app/rate-limit/client-address.ts'

describe('clientAddressKey', () => {
  it('keys IPv6 by its /64, whatever the spelling', () => {
    const key = '2001:db8:0:1::/64'
    for (const address of ['2001:db8:0:1::1', '2001:db8:0:1:ffff:ffff:ffff:ffff', '2001:0DB8:0000:0001:0:0:0:2', '2001:db8:0:1:1:2:3:4%eth0', '2001:db8::1:1:2:3:4']) {
      assert.equal(clientAddressKey(address), key, address)
    }
    assert.equal(clientAddressKey('2001:db8:0:2::1'), '2001:db8:0:2::/64')
    assert.equal(clientAddressKey('::1'), '0:0:0:0::/64')
    assert.equal(clientAddressKey('fe80::1%lo0'), 'fe80:0:0:0::/64')
  })

  it('keys IPv4-mapped IPv6 as the IPv4 address, in dotted or hex form', () => {
    for (const address of ['::ffff:198.51.100.7', '::FFFF:c633:6407', '0:0:0:0:0:ffff:198.51.100.7']) {
      assert.equal(clientAddressKey(address), '198.51.100.7', address)
    }
  })

  it('leaves IPv4 and text that is no address unchanged', () => {
    for (const text of ['198.51.100.7', 'unknown', '1:2:3', '1::2::3', '::ffff:300.1.1.1', '1:2:3:4:5:6:7:8:9', 'g::1', ':1:2:3:4:5:6:7']) {
      assert.equal(clientAddressKey(text), text, text)
    }
  })
})
