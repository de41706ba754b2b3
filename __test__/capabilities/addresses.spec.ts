import test from 'ava'

import { internalAddressKind, type InternalAddressKind } from '../../lib/capabilities/addresses.js'

test('addresses into the host network are classified, metadata endpoints first', (t) => {
  const cases: [string, InternalAddressKind][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.255.255', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.0', 'private'],
    ['172.16.0.0', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.255.255', 'private'],
    ['fc00::', 'private'],
    ['fdff:ffff::1', 'private'],
    ['169.254.0.1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['100.64.0.0', 'shared (CGNAT)'],
    ['100.127.255.255', 'shared (CGNAT)'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff05::2', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['169.254.169.254', 'cloud metadata'],
    ['fd00:ec2::254', 'cloud metadata'],
    ['100.100.100.200', 'cloud metadata'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:c0a8:101::', 'private'],
    ['::127.0.0.1', 'reserved'],
    // Teredo tunnels to an obfuscated IPv4 client (here 169.254.169.254); SIIT translates to
    // the IPv4 address in its last 32 bits: both are refused whole, a service never needs them.
    ['2001::5601:5601', 'reserved'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
    ['::ffff:0:169.254.169.254', 'reserved'],
    ['::ffff:0:a9fe:a9fe', 'reserved'],
    ['::ffff:0:8.8.8.8', 'reserved'],
    ['not an address', 'reserved'],
  ]
  for (const [address, kind] of cases) t.is(internalAddressKind(address), kind, address)
})

test('public addresses and the neighbours of each internal range are not internal', (t) => {
  for (const address of [
    '8.8.8.8',
    '1.1.1.1',
    '9.255.255.255',
    '11.0.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '126.255.255.255',
    '128.0.0.0',
    '169.253.255.255',
    '169.255.0.0',
    '172.15.255.255',
    '172.32.0.0',
    '192.167.255.255',
    '192.169.0.0',
    '223.255.255.255',
    '2606:4700:4700::1111',
    '2001:4860:4860::8888',
    '2001:1::1',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
    '2002:808:808::',
    'fbff:ffff::1',
    'fe00::1',
  ]) {
    t.is(internalAddressKind(address), undefined, address)
  }
})
