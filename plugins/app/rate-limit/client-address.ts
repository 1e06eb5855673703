/**
 * The identity a per-address rate limit counts under. An IPv6 subscriber usually holds at least
 * a /64 and can use any address in it, so IPv6 addresses count by their /64; an IPv4-mapped IPv6
 * address (`::ffff:1.2.3.4`) counts as its IPv4 address. Anything else is returned unchanged.
 */
export function clientAddressKey (address: string): string {
  // IPv4 (the common case) returns without parsing or allocating.
  if (!address.includes(':')) return address
  const g = parseIPv6(address)
  if (g === null) return address
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`
  }
  return `${g[0]!.toString(16)}:${g[1]!.toString(16)}:${g[2]!.toString(16)}:${g[3]!.toString(16)}::/64`
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/
const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

/** Appends the 16-bit groups of `parts` (the last may be dotted IPv4) to `out`; false if one is not a group. */
function pushGroups (parts: string[], out: number[], ipv4Allowed: boolean): boolean {
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (HEX_GROUP.test(part)) {
      out.push(parseInt(part, 16))
      continue
    }
    const dotted = ipv4Allowed && i === parts.length - 1 ? DOTTED.exec(part) : null
    if (dotted === null) return false
    const [a, b, c, d] = [Number(dotted[1]), Number(dotted[2]), Number(dotted[3]), Number(dotted[4])]
    if (a > 255 || b > 255 || c > 255 || d > 255) return false
    out.push((a << 8) | b, (c << 8) | d)
  }
  return true
}

/** The eight groups of an IPv6 address (zone index ignored), or null when the text is not one. */
function parseIPv6 (text: string): number[] | null {
  const zone = text.indexOf('%')
  const address = zone === -1 ? text : text.slice(0, zone)
  const halves = address.split('::')
  if (halves.length > 2) return null
  const head: number[] = []
  const tail: number[] = []
  const compressed = halves.length === 2
  if (halves[0] !== '' && !pushGroups(halves[0]!.split(':'), head, !compressed)) return null
  if (compressed && halves[1] !== '' && !pushGroups(halves[1]!.split(':'), tail, true)) return null
  if (!compressed) return head.length === 8 ? head : null
  if (head.length + tail.length > 7) return null
  while (head.length + tail.length < 8) head.push(0)
  return head.concat(tail)
}
