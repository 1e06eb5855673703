import assert from 'node:assert/strict'
import type { LookupAddress, LookupAllOptions } from 'node:dns'
import { describe, it } from 'node:test'
import { checkWebhookUrl, deliver, guardedLookup, isForbiddenAddress, type Resolver, verifySignature } from '../../plugins/app/notifications/webhooks.ts'
import { createTestApp, registerUser } from '../helpers/app.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { startReceiver } from '../helpers/server.ts'

// No test here opens a connection to anything but 127.0.0.1: public addresses are only checked.

const PUBLIC = ['1.1.1.1', '8.8.8.8', '1.0.0.1', '2606:4700:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001::1']

/** First and last addresses of each refused IPv4 range, and the unspecified and broadcast addresses. */
const FORBIDDEN_V4 = [
  '0.0.0.0', '0.255.255.255', '10.0.0.0', '10.255.255.255', '100.64.0.0', '100.127.255.255', '127.0.0.1', '127.255.255.255',
  '169.254.169.254', '172.16.0.0', '172.31.255.255', '192.0.0.8', '192.0.2.1', '192.88.99.1', '192.168.0.1', '192.168.255.255',
  '198.18.0.0', '198.19.255.255', '198.51.100.7', '203.0.113.7', '224.0.0.1', '239.255.255.250', '240.0.0.1', '255.255.255.255'
]
/** The neighbours just outside those ranges, which are public. */
const PUBLIC_NEIGHBOURS_V4 = ['1.0.0.0', '9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0', '126.255.255.255', '128.0.0.0',
  '172.15.255.255', '172.32.0.0', '192.0.1.0', '192.167.255.255', '192.169.0.0', '198.17.255.255', '198.20.0.0', '223.255.255.255']

const FORBIDDEN_V6 = {
  unspecified: ['::'],
  loopback: ['::1', '0:0:0:0:0:0:0:1'],
  'unique local': ['fc00::1', 'fd12:3456::1'],
  'link-local': ['fe80::1', 'febf::1', 'fe80::1%eth0'],
  'site-local': ['fec0::1', 'feff:ffff::1'],
  multicast: ['ff02::1', 'ff05::1:3', 'ff0e::101'],
  documentation: ['2001:db8::1', '2001:db8:ffff::1', '3fff::1', '3fff:fff:ffff::1'],
  benchmarking: ['2001:2::1', '2001:2:0:ffff::1'],
  Teredo: ['2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2'],
  'deprecated ORCHID': ['2001:10::1'],
  'NAT64 local-use (64:ff9b:1::/48, refused outright: where it embeds the IPv4 is the network\'s choice)': ['64:ff9b:1::1', '64:ff9b:1::101:101', '64:ff9b:1:ffff::808:808'],
  'IPv4-compatible (::/96, deprecated: refused outright, public or not)': ['::127.0.0.1', '::7f00:1', '::10.0.0.1', '::1.1.1.1', '::808:808'],
  'IPv4-translated (::ffff:0:0:0/96)': ['::ffff:0:127.0.0.1', '::ffff:0:1.1.1.1'],
  'outside global unicast 2000::/3': ['100::1', '5f00::1', '4000::1', 'e000::1']
}

/** IPv6 forms whose packets reach an embedded IPv4 address: each is judged by that address. */
const EMBEDDED = {
  'IPv4-mapped ::ffff:0:0/96': {
    private: ['::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:1', '::FFFF:7F00:0001', '::ffff:10.0.0.1', '::ffff:a9fe:a9fe', '::ffff:c0a8:101', '::ffff:ffff:ffff', '::ffff:0:0'],
    public: ['::ffff:1.1.1.1', '::ffff:101:101', '::ffff:808:808']
  },
  'NAT64 64:ff9b::/96': {
    private: ['64:ff9b::127.0.0.1', '64:ff9b::7f00:1', '64:ff9b::a00:1', '64:ff9b::a9fe:a9fe', '64:ff9b::c0a8:1', '64:ff9b::'],
    public: ['64:ff9b::1.1.1.1', '64:ff9b::808:808']
  },
  '6to4 2002::/16': {
    private: ['2002:7f00:1::', '2002:7f00:1::1', '2002:a00:1::1', '2002:a9fe:a9fe::', '2002:c0a8:101:1::1', '2002::1'],
    public: ['2002:101:101::1', '2002:808:808:1::1']
  }
}

describe('webhook address check', () => {
  it('allows public unicast addresses of both families', () => {
    for (const address of [...PUBLIC, ...PUBLIC_NEIGHBOURS_V4]) assert.equal(isForbiddenAddress(address), false, address)
  })

  it('refuses every non-public IPv4 range, from its first to its last address', () => {
    for (const address of FORBIDDEN_V4) assert.equal(isForbiddenAddress(address), true, address)
  })

  it('refuses every non-public IPv6 family', () => {
    for (const [family, addresses] of Object.entries(FORBIDDEN_V6)) {
      for (const address of addresses) assert.equal(isForbiddenAddress(address), true, `${family}: ${address}`)
    }
  })

  it('judges mapped, NAT64 and 6to4 addresses by the IPv4 address they embed', () => {
    for (const [family, { private: inside, public: outside }] of Object.entries(EMBEDDED)) {
      for (const address of inside) assert.equal(isForbiddenAddress(address), true, `${family}: ${address}`)
      for (const address of outside) assert.equal(isForbiddenAddress(address), false, `${family}: ${address}`)
    }
  })

  it('refuses text that is not a canonical IP literal', () => {
    for (const text of ['', 'example.com', '0177.0.0.1', '2130706433', '1.1.1.1.', '[::1]', '1.1.1.1/32']) assert.equal(isForbiddenAddress(text), true, text)
  })

  it('checks the host of a URL in every spelling the URL parser accepts', () => {
    for (const url of ['https://1.1.1.1/hook', 'https://1.1.1.1./hook', 'https://[2606:4700:4700::1111]/hook', 'https://[::ffff:1.1.1.1]/', 'https://[64:ff9b::8.8.8.8]/', 'https://[2002:101:101::1]/']) {
      assert.doesNotThrow(() => checkWebhookUrl(url, false), url)
    }
    for (const url of ['https://[::ffff:7f00:1]/', 'https://[0:0:0:0:0:ffff:127.0.0.1]/', 'https://[64:ff9b::127.0.0.1]/', 'https://[2002:a9fe:a9fe::]/',
      'https://[::127.0.0.1]/', 'https://[fec0::1]/', 'https://[2001:db8::1]/', 'https://[2001::1]/', 'https://255.255.255.255/', 'https://0xffffffff/', 'https://203.0.113.1/']) {
      assert.throws(() => checkWebhookUrl(url, false), /not allowed/, url)
    }
  })
})

describe('PUT /api/auth/me/webhook with the default config (WEBHOOK_ALLOW_PRIVATE unset)', () => {
  it('accepts public IPv4 and IPv6 literals and refuses IPv6 spellings of private addresses', async (ctx) => {
    // Setting a webhook sends nothing, and no jobs run here: nothing is delivered to these hosts.
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    assert.equal(t.app.config.webhooks.allowPrivate, false)
    const user = await registerUser(t.app)
    for (const url of ['https://1.1.1.1/hook', 'https://[2606:4700:4700::1111]/hook', 'https://[64:ff9b::808:808]/hook']) {
      const res = await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url } })
      assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/auth/me/webhook', headers: user.headers })).json().url, url)
    }
    for (const url of ['https://[::ffff:7f00:1]/', 'https://[64:ff9b::a00:1]/', 'https://[2002:7f00:1::]/', 'https://[::7f00:1]/', 'https://[fec0::1]/', 'https://192.0.2.1/']) {
      const res = await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url } })
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`)
      assert.equal(res.json().code, 'WEBHOOK_URL_FORBIDDEN', url)
    }
  })
})

/** A resolver that answers `addresses` for every name, and records the names it was asked. */
function resolverAnswering (...addresses: string[]) {
  const asked: string[] = []
  const resolve: Resolver = (hostname: string, _options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, answers: LookupAddress[]) => void) => {
    asked.push(hostname)
    queueMicrotask(() => callback(null, addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))))
  }
  return { resolve, asked }
}

/** Runs the lookup the way a socket does, and returns what the socket would connect to (or the error). */
function socketLookup (resolver: Resolver, allowPrivate: boolean, hostname: string, all: boolean) {
  return new Promise<{ err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number }>((resolve) => {
    guardedLookup(resolver, allowPrivate)(hostname, { all, family: 0 }, (err, address, family) => resolve({ err, address, family }))
  })
}

// A name under .invalid never resolves in real DNS (RFC 6761): were the injected resolver ever
// bypassed, the delivery would fail instead of reaching a real host.
const NAME = 'hooks.keyward.invalid'

describe('delivery lookup guard (the resolver is injected; a public answer is checked, never connected to)', () => {
  it('hands the socket a public answer of either family unchanged, with WEBHOOK_ALLOW_PRIVATE off', async () => {
    const { resolve, asked } = resolverAnswering('1.1.1.1', '2606:4700:4700::1111')
    assert.deepEqual(await socketLookup(resolve, false, NAME, true), { err: null, address: [{ address: '1.1.1.1', family: 4 }, { address: '2606:4700:4700::1111', family: 6 }], family: undefined })
    assert.deepEqual(await socketLookup(resolve, false, NAME, false), { err: null, address: '1.1.1.1', family: 4 })
    assert.deepEqual(asked, [NAME, NAME])
  })

  it('refuses a name whose answers include any private address, however it is spelled', async () => {
    for (const answers of [['10.0.0.7'], ['169.254.169.254'], ['::ffff:127.0.0.1'], ['::ffff:a00:7'], ['64:ff9b::a9fe:a9fe'], ['fd00::1'], ['1.1.1.1', '127.0.0.1'], ['2606:4700:4700::1111', '::1']]) {
      const { resolve, asked } = resolverAnswering(...answers)
      for (const all of [true, false]) {
        const { err } = await socketLookup(resolve, false, NAME, all)
        assert.equal(err?.code, 'EFORBIDDEN', `${answers.join(', ')} (all: ${all})`)
        assert.match(err?.message ?? '', /resolves to a forbidden address/)
      }
      assert.deepEqual(asked, [NAME, NAME], 'the refusal came after resolution')
    }
  })

  it('delivers through the injected resolver: the socket connects to the answer that passed the guard', async (ctx) => {
    const receiver = await startReceiver()
    onScopeEnd(ctx, receiver.close)
    const url = `http://${NAME}:${new URL(receiver.url).port}/hook`
    // The receiver is on loopback, so private addresses are allowed for this delivery only.
    const { resolve, asked } = resolverAnswering('127.0.0.1')
    assert.deepEqual(await deliver(url, '{"n":1}', 'whsec_resolver_test', { allowPrivate: true, timeoutMs: 5000, eventId: 'e-resolved', resolve }), { status: 200 })
    assert.deepEqual(asked, [NAME])
    assert.equal(receiver.received.length, 1)
    assert.equal(receiver.received[0]?.body, '{"n":1}')
    assert.ok(verifySignature('whsec_resolver_test', '{"n":1}', receiver.received[0]?.signature ?? '', Math.floor(Date.now() / 1000)))
  })

  it('refuses a name the set-time check allows when it resolves to loopback (DNS rebinding): the lookup guard itself refuses it', async (ctx) => {
    const receiver = await startReceiver()
    onScopeEnd(ctx, receiver.close)
    const url = `http://${NAME}:${new URL(receiver.url).port}/hook`
    assert.doesNotThrow(() => checkWebhookUrl(url, false), 'the name itself is allowed')
    // Only loopback answers here: had the guard let one through, the socket would reach the test's own receiver.
    for (const answer of ['127.0.0.1', '::ffff:127.0.0.1', '::ffff:7f00:1']) {
      const { resolve, asked } = resolverAnswering(answer)
      await assert.rejects(deliver(url, '{}', 'whsec_rebinding_test', { allowPrivate: false, timeoutMs: 5000, eventId: 'e-rebind', resolve }), /resolves to a forbidden address/, answer)
      assert.deepEqual(asked, [NAME], answer)
    }
    assert.deepEqual(receiver.received, [], 'nothing reached the loopback receiver')
  })
})
