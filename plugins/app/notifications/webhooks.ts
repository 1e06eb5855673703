import { createHmac, timingSafeEqual } from 'node:crypto'
import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { BlockList, isIP } from 'node:net'

/** Addresses a webhook may never reach: loopback, link-local, private, unspecified, multicast. */
const forbidden = new BlockList()
for (const [net, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) forbidden.addSubnet(net, prefix, 'ipv4')
for (const [net, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['::ffff:0:0', 96]] as const) forbidden.addSubnet(net, prefix, 'ipv6')

export function isForbiddenAddress (address: string): boolean {
  const family = isIP(address)
  if (family === 0) return true
  return forbidden.check(address, family === 4 ? 'ipv4' : 'ipv6')
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
    throw new ForbiddenWebhookError('webhooks to loopback, link-local or private addresses are not allowed')
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

/**
 * POSTs a signed JSON body. The address is checked after DNS resolution, in the lookup the
 * socket itself uses, so a name that resolves to a private address (DNS rebinding) is refused.
 */
export function deliver (url: string, body: string, secret: string, options: { allowPrivate: boolean, timeoutMs: number, eventId: string }): Promise<{ status: number }> {
  const target = checkWebhookUrl(url, options.allowPrivate)
  const lookup = (hostname: string, opts: object, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(hostname, { ...opts, all: true }, (err, addresses) => {
      if (err !== null) return cb(err, '', 0)
      const list = addresses as LookupAddress[]
      if (!options.allowPrivate && list.some((a) => isForbiddenAddress(a.address))) {
        return cb(Object.assign(new ForbiddenWebhookError(`${hostname} resolves to a forbidden address`), { code: 'EFORBIDDEN' }), '', 0)
      }
      const wantsAll = (opts as { all?: boolean }).all === true
      if (wantsAll) return cb(null, list)
      const first = list[0] as LookupAddress
      cb(null, first.address, first.family)
    })
  }
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
