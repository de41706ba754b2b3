/**
 * Which IP addresses lead into the host's own network rather than to the public internet:
 * loopback, private, link-local, CGNAT, unspecified, multicast, reserved (tunnels and translation
 * forms included), and the cloud metadata endpoints that hand out credentials. `http.fetch` refuses a granted name that resolves to one of
 * these (a name's owner can point it anywhere), unless a grant names the address itself.
 */
import { isIPv4, isIPv6 } from 'node:net'

/** Why an address is internal, in the words the denial uses. */
export type InternalAddressKind =
  | 'cloud metadata'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared (CGNAT)'
  | 'unspecified'
  | 'multicast'
  | 'reserved'

/** The 4 or 16 bytes of an address `net.isIP` accepts (an IPv6 zone id is ignored). */
function addressBytes(address: string): number[] {
  if (isIPv4(address)) return address.split('.').map(Number)
  const [head = '', tail] = address.replace(/%.*$/, '').split('::')
  const groups = (part: string) =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [Number.parseInt(group, 16)]
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number)
          return [(a << 8) | b, (c << 8) | d]
        })
  const front = groups(head)
  const back = tail === undefined ? [] : groups(tail)
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
  return all.flatMap((group) => [group >> 8, group & 0xff])
}

/** A CIDR block as its bytes and prefix length. */
function block(cidr: string): { bytes: number[]; bits: number } {
  const [address = '', bits = ''] = cidr.split('/')
  return { bytes: addressBytes(address), bits: Number(bits) }
}

function inBlock(
  bytes: readonly number[],
  { bytes: prefix, bits }: { bytes: number[]; bits: number },
): boolean {
  if (bytes.length !== prefix.length) return false
  for (let bit = 0; bit < bits; bit += 8) {
    const mask = bits - bit >= 8 ? 0xff : (0xff << (8 - (bits - bit))) & 0xff
    if (((bytes[bit / 8] ?? 0) & mask) !== ((prefix[bit / 8] ?? 0) & mask)) return false
  }
  return true
}

/** First match wins: the metadata endpoints before the ranges that contain them. */
const BLOCKS: [ReturnType<typeof block>, InternalAddressKind][] = (
  [
    ['169.254.169.254/32', 'cloud metadata'], // AWS, GCP, Azure, OpenStack, Oracle, ...
    ['169.254.170.2/32', 'cloud metadata'], // AWS ECS task credentials
    ['100.100.100.200/32', 'cloud metadata'], // Alibaba Cloud
    ['fd00:ec2::254/128', 'cloud metadata'], // AWS over IPv6
    ['0.0.0.0/8', 'unspecified'],
    ['10.0.0.0/8', 'private'],
    ['100.64.0.0/10', 'shared (CGNAT)'],
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link-local'],
    ['172.16.0.0/12', 'private'],
    ['192.0.0.0/24', 'reserved'],
    ['192.0.2.0/24', 'reserved'],
    ['192.168.0.0/16', 'private'],
    ['198.18.0.0/15', 'reserved'],
    ['198.51.100.0/24', 'reserved'],
    ['203.0.113.0/24', 'reserved'],
    ['224.0.0.0/4', 'multicast'],
    ['240.0.0.0/4', 'reserved'], // and the broadcast address
    ['::/128', 'unspecified'],
    ['::1/128', 'loopback'],
    ['::/96', 'reserved'], // IPv4-compatible addresses, deprecated
    // Forms that reach an IPv4 host a relay or translator picks: Teredo (its client's address
    // obfuscated in the last 32 bits, 2001::5601:5601 is 169.254.169.254) and SIIT's
    // IPv4-translated addresses. Refused whole rather than decoded: a service never needs them.
    ['2001::/32', 'reserved'],
    ['::ffff:0:0:0/96', 'reserved'],
    ['100::/64', 'reserved'],
    ['2001:db8::/32', 'reserved'],
    ['64:ff9b:1::/48', 'private'], // local-use NAT64
    ['fc00::/7', 'private'],
    ['fec0::/10', 'private'], // site-local, deprecated
    ['fe80::/10', 'link-local'],
    ['ff00::/8', 'multicast'],
  ] as const
).map(([cidr, kind]) => [block(cidr), kind])

/** IPv6 forms that carry an IPv4 address the packet really goes to: where its bytes sit. */
const EMBEDDING: [ReturnType<typeof block>, number][] = [
  [block('::ffff:0:0/96'), 12], // IPv4-mapped
  [block('64:ff9b::/96'), 12], // NAT64
  [block('2002::/16'), 2], // 6to4
]

/** Why `address` (an IPv4 or IPv6 address) is internal, or undefined when it is public. */
export function internalAddressKind(address: string): InternalAddressKind | undefined {
  if (!isIPv4(address) && !isIPv6(address)) return 'reserved'
  const bytes = addressBytes(address)
  for (const [prefix, offset] of EMBEDDING) {
    if (inBlock(bytes, prefix)) return internalAddressKind(bytes.slice(offset, offset + 4).join('.'))
  }
  return BLOCKS.find(([prefix]) => inBlock(bytes, prefix))?.[1]
}
