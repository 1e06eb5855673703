import { createHmac, timingSafeEqual } from 'node:crypto'
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'

// Plain prefix arithmetic, one table per family: net.BlockList matches an IPv4 address against
// IPv6 rules through its mapped form, so a rule for ::ffff:0:0/96 refused every IPv4 address.
type Subnet = readonly [net: bigint, prefix: number]

function ipv4Value (address: string): bigint {
  return address.split('.').reduce((n, octet) => (n << 8n) | BigInt(Number(octet)), 0n)
}

/** The 128-bit value of an address `isIP` calls IPv6. */
function ipv6Value (address: string): bigint {
  // A dotted IPv4 tail (::ffff:127.0.0.1) spells the last two words.
  const tail = /\d+\.\d+\.\d+\.\d+$/.exec(address)?.[0]
  const four = tail === undefined ? 0n : ipv4Value(tail)
  const text = tail === undefined ? address : `${address.slice(0, -tail.length)}${(four >> 16n).toString(16)}:${(four & 0xffffn).toString(16)}`
  const words = (part: string) => part === '' ? [] : part.split(':').map((w) => BigInt(parseInt(w, 16)))
  const [head = '', rest] = text.split('::')
  const before = words(head)
  const after = rest === undefined ? [] : words(rest)
  return [...before, ...Array<bigint>(8 - before.length - after.length).fill(0n), ...after].reduce((n, w) => (n << 16n) | w, 0n)
}

function inSubnet (value: bigint, width: number, [net, prefix]: Subnet): boolean {
  const shift = BigInt(width - prefix)
  return value >> shift === net >> shift
}

const v4 = (net: string, prefix: number): Subnet => [ipv4Value(net), prefix]
const v6 = (net: string, prefix: number): Subnet => [ipv6Value(net), prefix]

/** IPv4 a webhook may not reach: IANA's not-globally-reachable ranges, multicast, reserved and broadcast. */
const FORBIDDEN_V4 = [
  v4('0.0.0.0', 8), v4('10.0.0.0', 8), v4('100.64.0.0', 10), v4('127.0.0.0', 8), v4('169.254.0.0', 16), v4('172.16.0.0', 12),
  v4('192.0.0.0', 24), v4('192.0.2.0', 24), v4('192.88.99.0', 24), v4('192.168.0.0', 16), v4('198.18.0.0', 15),
  v4('198.51.100.0', 24), v4('203.0.113.0', 24), v4('224.0.0.0', 4), v4('240.0.0.0', 4)
]

/**
 * IPv6 must be global unicast (2000::/3). That leaves out ::/8 (unspecified, loopback, the deprecated
 * IPv4-compatible ::/96), NAT64 local-use 64:ff9b:1::/48 (where it embeds IPv4 is each network's
 * choice), discard 100::/64, SRv6 5f00::/16, unique local, site-local, link-local and multicast.
 */
const GLOBAL_UNICAST_V6 = v6('2000::', 3)
/** Inside it: Teredo, benchmarking, deprecated ORCHID and the documentation ranges. */
const FORBIDDEN_V6 = [v6('2001::', 32), v6('2001:2::', 48), v6('2001:10::', 28), v6('2001:db8::', 32), v6('3fff::', 20)]
/** Forms whose packets go to an embedded IPv4 address, judged by that address: IPv4-mapped, NAT64 (RFC 6052, how IPv6-only hosts reach public IPv4) and 6to4. */
const MAPPED_V6 = v6('::ffff:0:0', 96)
const NAT64_V6 = v6('64:ff9b::', 96)
const SIX_TO_FOUR_V6 = v6('2002::', 16)

function isForbiddenV4 (value: bigint): boolean {
  return FORBIDDEN_V4.some((s) => inSubnet(value, 32, s))
}

function isForbiddenV6 (value: bigint): boolean {
  if (inSubnet(value, 128, MAPPED_V6) || inSubnet(value, 128, NAT64_V6)) return isForbiddenV4(value & 0xffffffffn)
  if (inSubnet(value, 128, SIX_TO_FOUR_V6)) return isForbiddenV4((value >> 80n) & 0xffffffffn)
  return !inSubnet(value, 128, GLOBAL_UNICAST_V6) || FORBIDDEN_V6.some((s) => inSubnet(value, 128, s))
}

/** True unless the address is a public unicast IP literal (a scoped IPv6 address, `fe80::1%eth0`, is never one). */
export function isForbiddenAddress (address: string): boolean {
  const family = isIP(address)
  if (family === 4) return isForbiddenV4(ipv4Value(address))
  return family !== 6 || address.includes('%') || isForbiddenV6(ipv6Value(address))
}

export class ForbiddenWebhookError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ForbiddenWebhookError'
  }
}

/** Checks a webhook URL when it is set: https or http, no credentials, and no literal private address. */
export function checkWebhookUrl (raw: string, allowPrivate: boolean): URL {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ForbiddenWebhookError('the webhook URL is not a URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ForbiddenWebhookError('the webhook URL must be http or https')
  if (url.username !== '' || url.password !== '') throw new ForbiddenWebhookError('the webhook URL must not carry credentials')
  // A trailing dot names the same host ("localhost." is localhost).
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '')
  if (!allowPrivate && (host === 'localhost' || host.endsWith('.localhost') || (isIP(host) !== 0 && isForbiddenAddress(host)))) {
    throw new ForbiddenWebhookError('webhooks to loopback, link-local, private or reserved addresses are not allowed')
  }
  return url
}

/** `Keyward-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`. */
export function signature (secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},v1=${mac}`
}

/** What a receiver does: recompute and compare in constant time, within a tolerance. */
export function verifySignature (secret: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header)
  if (match === null) return false
  const t = Number(match[1])
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false
  const expected = Buffer.from(signature(secret, body, t).slice(-64), 'hex')
  return timingSafeEqual(expected, Buffer.from(match[2] as string, 'hex'))
}

/** How a delivery resolves names: `dns.lookup` with `all: true`, or a stand-in (tests). */
export type Resolver = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void

type SocketLookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/**
 * The lookup a delivery's socket uses: every answer is checked, and the socket connects only to
 * answers that passed, so a name that resolves to a private address (DNS rebinding) is refused.
 */
export function guardedLookup (resolve: Resolver, allowPrivate: boolean) {
  return (hostname: string, opts: LookupOptions, cb: SocketLookupCallback) => {
    resolve(hostname, { ...opts, all: true }, (err, addresses) => {
      if (err !== null) return cb(err, '', 0)
      const first = addresses[0]
      if (first === undefined) return cb(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0)
      if (!allowPrivate && addresses.some((a) => isForbiddenAddress(a.address))) {
        return cb(Object.assign(new ForbiddenWebhookError(`${hostname} resolves to a forbidden address`), { code: 'EFORBIDDEN' }), '', 0)
      }
      if (opts.all === true) return cb(null, addresses)
      cb(null, first.address, first.family)
    })
  }
}

/**
 * POSTs a signed JSON body. A literal address is checked here (the socket does not look it up);
 * a name is checked after DNS resolution, in the lookup the socket itself uses.
 */
export function deliver (url: string, body: string, secret: string, options: { allowPrivate: boolean, timeoutMs: number, eventId: string, resolve?: Resolver }): Promise<{ status: number }> {
  const target = checkWebhookUrl(url, options.allowPrivate)
  const lookup = guardedLookup(options.resolve ?? dnsLookup, options.allowPrivate)
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest
  const t = Math.floor(Date.now() / 1000)
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: 'POST',
      lookup: lookup as never,
      timeout: options.timeoutMs,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'Keyward-Webhooks/1',
        'keyward-signature': signature(secret, body, t),
        'keyward-event-id': options.eventId,
        'content-length': Buffer.byteLength(body)
      }
    }, (res) => {
      res.resume()
      res.on('end', () => {
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300) resolve({ status })
        else reject(new Error(`HTTP ${status}`))
      })
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(body)
  })
}
