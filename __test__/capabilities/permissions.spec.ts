import { mkdtempSync, realpathSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import {
  CapabilityDeniedError,
  ConfigError,
  createPermissions,
  loadManifest,
  permissionsFromManifest,
} from '../../lib/index.js'
import { guestPath } from '../../lib/capabilities/permissions.js'
import { processWarnings, unhandledRejections } from '../helpers.js'
import { capabilitiesDir, denials } from './helpers.js'

// Canonical, as allowsRead expects the paths it is given to be.
const scratch = realpathSync(mkdtempSync(path.join(tmpdir(), 'airssys-permissions-')))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

const allows = (patterns: string[], url: string) =>
  createPermissions({ networkOutbound: patterns }).allowsConnection(new URL(url))

test('nothing is granted by default', async (t) => {
  const permissions = createPermissions()
  t.deepEqual(permissions.filesystemRead, [])
  t.deepEqual(permissions.networkOutbound, [])
  t.false(permissions.timeSleep)
  t.false(permissions.allowsConnection(new URL('http://127.0.0.1/')))
  t.false(permissions.allowsRead('data/a.txt'))
  t.is(permissions.deniedCount, 0)
})

test('a host:port grant matches the parsed URL, with 80 and 443 as the default ports', (t) => {
  t.true(allows(['127.0.0.1:8080'], 'http://127.0.0.1:8080/path?q=1'))
  t.false(allows(['127.0.0.1:8080'], 'http://127.0.0.1:8081/'))
  t.false(allows(['127.0.0.1:8080'], 'http://127.0.0.1/'), 'no port means 80')
  t.true(allows(['127.0.0.1:80'], 'http://127.0.0.1/'))
  t.true(allows(['example.com:443'], 'https://example.com/'))
  t.false(allows(['example.com:443'], 'http://example.com/'), 'http defaults to 80, not 443')
  t.true(allows(['example.com:*'], 'http://example.com:1234/'))
})

test('host names compare as the URL parser writes them: case, IPv4 forms and IPv6 brackets', (t) => {
  t.true(allows(['API.Example.com:443'], 'https://api.EXAMPLE.com/'))
  t.true(allows(['127.0.0.1:80'], 'http://0x7f.1/'), '0x7f.1 is 127.0.0.1')
  t.true(allows(['127.0.0.1:80'], 'http://2130706433/'), 'so is 2130706433')
  t.true(allows(['[::1]:8080'], 'http://[0:0:0:0:0:0:0:1]:8080/'))
  t.false(allows(['127.0.0.1:80'], 'http://localhost/'), 'names are not resolved: localhost is not 127.0.0.1')
  t.false(allows(['example.com:80'], 'http://example.com.evil.test/'))
  t.false(allows(['example.com:80'], 'http://evil.test/?example.com:80'))
  t.false(allows(['example.com:80'], 'http://example.com@evil.test/'), 'userinfo is not the host')
})

test('a grant names the address a request reaches: no unspecified, IPv4-mapped or unusually written IPv6 address', (t) => {
  // 0.0.0.0 and [::] reach this machine's loopback-only services, and [::ffff:7f00:1] is
  // 127.0.0.1, while neither shows loopback to a reader of the grants (probe Z30).
  const refused = (pattern: string) =>
    t.throws(() => createPermissions({ networkOutbound: [pattern] }), { instanceOf: ConfigError })?.message ??
    ''
  t.regex(
    refused('0.0.0.0:80'),
    /"0\.0\.0\.0" stands for this host: name the address itself, as "127\.0\.0\.1"/,
  )
  t.regex(refused('0.1.2.3:80'), /"0\.1\.2\.3" stands for this host/)
  t.regex(refused('[::]:80'), /"\[::\]" stands for this host: name the address itself, as "\[::1\]"/)
  t.regex(refused('[::ffff:7f00:1]:80'), /"\[::ffff:7f00:1\]" is an IPv4 address: write it as "127\.0\.0\.1"/)
  t.regex(refused('[::ffff:127.0.0.1]:80'), /is an IPv4 address: write it as "127\.0\.0\.1"/)
  t.regex(refused('[::7f00:1]:80'), /"\[::7f00:1\]" is an IPv4 address: write it as "127\.0\.0\.1"/)
  t.regex(refused('[0::1]:80'), /"\[0::1\]" is written otherwise than URLs write it: write "\[::1\]"/)
  t.regex(refused('[::0.0.0.1]:80'), /write "\[::1\]"/)
  t.regex(refused('[2001:DB8::1]:443'), /write "\[2001:db8::1\]"/)
  t.true(allows(['[::1]:8080'], 'http://[::1]:8080/'))
  t.true(allows(['[2001:db8::1]:443'], 'https://[2001:db8::1]/'))
  t.true(allows(['1.0.0.1:53'], 'http://1.0.0.1:53/'))
})

test('a grant that spells an address otherwise than the dotted or bracketed form is a ConfigError naming it', (t) => {
  // Each was a name that the URL parser turned into the address, or a TypeError (probe Z23).
  for (const pattern of ['0x7f000001:80', '0x7f.1:80', '0x0:80', '*.0xa9fea9fe:80', '[::1%lo]:80']) {
    const error = t.throws(() => createPermissions({ networkOutbound: ['example.com:80', pattern] }), {
      instanceOf: ConfigError,
    })
    t.is(error?.path, 'networkOutbound[1]', pattern)
  }
  t.true(
    allows(['0x7f.example.com:80'], 'http://0x7f.example.com/'),
    'a hex-looking label before the last is a name',
  )
  // A wildcard over an address matches no URL; a port with a leading zero showed as written and
  // granted another; a Unicode name is refused with its ASCII form (probe H29).
  const refused = (pattern: string) =>
    t.throws(() => createPermissions({ networkOutbound: [pattern] }), { instanceOf: ConfigError })?.message ??
    ''
  t.regex(refused('*.127.0.0.1:80'), /a wildcard goes before a name, not an address/)
  // The grant quoted as every other refusal quotes it: its newline escaped, not a line of its own.
  t.regex(refused('*.a\nb.0x1:80'), /: "\*\.a\\nb\.0x1": a wildcard goes before a name/)
  t.regex(refused('127.0.0.1:080'), /port "080" must be 1..65535/)
  t.regex(
    refused('bücher.example:80'),
    /is not ASCII: write the name as URLs reach the host, "xn--bcher-kva\.example"/,
  )
  t.regex(refused('1.2.3.4.:80'), /not a valid IPv4 address/)
  // An xn-- label that is no punycode passed the check, then failed as Node's TypeError (probe H30).
  for (const pattern of ['xn--zz:80', 'a.xn--zz.com:80', '*.xn--zz.com:80', 'xn--a:80']) {
    t.regex(refused(pattern), /is not a valid host name$/, pattern)
  }
  t.true(allows(['xn--bcher-kva.example:80'], 'http://bücher.example/'))
})

test('a grant names what the URL parser takes as a host: underscores and edge hyphens too, never a megabyte', (t) => {
  // An S3 bucket's name was refused, though a guest can ask for it (probe H31).
  t.true(allows(['my_bucket.s3.amazonaws.com:443'], 'https://my_bucket.s3.amazonaws.com/'))
  t.true(allows(['-a.example.com:80'], 'http://-a.example.com/'))
  // A pattern of a megabyte was repeated whole in the message.
  const long = t.throws(() => createPermissions({ networkOutbound: [`${'a'.repeat(1 << 20)}:80`] }), {
    instanceOf: ConfigError,
  })
  t.is(long?.message, 'networkOutbound[0]: a host:port pattern has at most 300 characters, this one 1048579')
})

test('a fully qualified name with its trailing dot is a grant for URLs that write it so', (t) => {
  t.true(allows(['example.com.:443'], 'https://example.com./'))
  t.true(allows(['*.example.com.:443'], 'https://api.example.com./'))
  t.false(allows(['example.com.:443'], 'https://example.com/'), 'the URL parser keeps the dot: another host')
})

test('*.example.com grants any subdomain, not the domain itself or look-alikes', (t) => {
  const patterns = ['*.example.com:443']
  t.true(allows(patterns, 'https://api.example.com/'))
  t.true(allows(patterns, 'https://a.b.example.com/'))
  t.false(allows(patterns, 'https://example.com/'))
  t.false(allows(patterns, 'https://badexample.com/'))
  t.false(allows(patterns, 'https://api.example.com.evil.test/'))
})

test('only http and https have ports to grant', (t) => {
  t.false(allows(['example.com:*'], 'ftp://example.com/'))
  t.false(allows(['example.com:*'], 'ws://example.com/'))
})

test('bad patterns and options are ConfigErrors naming the option', (t) => {
  const cases: [Parameters<typeof createPermissions>[0], string][] = [
    [{ filesystemRead: ['../up/**'], baseDir: scratch }, 'filesystemRead[0]'],
    [{ filesystemRead: ['./ok/**', '/etc/**'], baseDir: scratch }, 'filesystemRead[1]'],
    [{ filesystemRead: ['data/[z-a].txt'], baseDir: scratch }, 'filesystemRead[0]'],
    [{ filesystemRead: ['./data/**'] }, 'baseDir'],
    [{ networkOutbound: ['example.com'] }, 'networkOutbound[0]'],
    [{ networkOutbound: ['*:443'] }, 'networkOutbound[0]'],
    [{ networkOutbound: 'example.com:443' as unknown as string[] }, 'networkOutbound'],
    [{ timeSleep: 'yes' as unknown as boolean }, 'timeSleep'],
    [{ fileSystemRead: [] } as never, 'fileSystemRead'],
  ]
  for (const [options, at] of cases) {
    const error = t.throws(() => createPermissions(options), { instanceOf: ConfigError })
    t.is(error?.path, at, JSON.stringify(options))
    t.is(error?.code, 'ERR_WASM_CONFIG')
  }
  t.throws(() => createPermissions({}, { onDenied: 'log' as never }), { instanceOf: ConfigError })
})

test('a denial is counted and handed to onDenied as a CapabilityDeniedError', (t) => {
  const seen = denials()
  const permissions = createPermissions({}, { onDenied: seen.onDenied })
  const error = permissions.deny('network.outbound', 'http://10.0.0.1/', '10.0.0.1:80 is not granted')
  t.true(error instanceof CapabilityDeniedError)
  t.is(error.code, 'ERR_WASM_CAPABILITY_DENIED')
  t.is(error.name, 'CapabilityDeniedError')
  t.is(error.capability, 'network.outbound')
  t.is(error.request, 'http://10.0.0.1/')
  t.is(error.message, 'network.outbound denied: 10.0.0.1:80 is not granted')
  t.deepEqual(seen.list, [error])
  t.is(permissions.deniedCount, 1)
  permissions.deny('time.sleep', '5 ms', 'sleeping is not granted')
  t.is(permissions.deniedCount, 2)
})

// Serial: it listens for the process's warnings and unhandled rejections.
test.serial(
  'an onDenied hook that throws or rejects is a process warning: the denial stands and the process lives',
  async (t) => {
    const warnings = processWarnings(t)
    const unhandled = unhandledRejections(t)
    const throwing = createPermissions(
      {},
      {
        onDenied: () => {
          throw new Error('hook bug')
        },
      },
    )
    const error = throwing.deny('time.sleep', '5 ms', 'sleeping is not granted')
    t.true(error instanceof CapabilityDeniedError, 'the denial is what the host function gets')
    const rejecting = createPermissions(
      {},
      { onDenied: async () => Promise.reject(new Error('async hook bug')) },
    )
    rejecting.deny('time.sleep', '5 ms', 'sleeping is not granted')
    // Values that cannot be turned into a string, thrown or rejected, are shown all the same.
    const unprintable = {
      toString() {
        throw new Error('no string')
      },
    }
    createPermissions(
      {},
      {
        onDenied: () => {
          throw unprintable
        },
      },
    ).deny('time.sleep', '5 ms', 'sleeping is not granted')
    createPermissions(
      {},
      {
        onDenied: () =>
          ({
            then: (_: unknown, reject: (reason: unknown) => void) => reject(Object.create(null)),
          }) as never,
      },
    ).deny('time.sleep', '5 ms', 'sleeping is not granted')
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.deepEqual(unhandled, [])
    t.deepEqual(
      warnings.map((warning) => (warning as Error & { code?: string }).code),
      [
        'AIRSSYS_ONDENIED_FAILED',
        'AIRSSYS_ONDENIED_FAILED',
        'AIRSSYS_ONDENIED_FAILED',
        'AIRSSYS_ONDENIED_FAILED',
      ],
    )
    t.regex(warnings[0]?.message ?? '', /hook bug/)
  },
)

test.serial(
  'a failing onDenied warns at most once a second, and the next warning counts the rest',
  async (t) => {
    // A guest makes denials at will: 2,000 of them were 2,000 stack traces in the host's log.
    const warnings = processWarnings(t)
    const permissions = createPermissions(
      {},
      {
        onDenied: () => {
          throw new Error('hook bug')
        },
      },
    )
    for (let index = 0; index < 100; index++)
      permissions.deny('time.sleep', '5 ms', 'sleeping is not granted')
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    permissions.deny('time.sleep', '5 ms', 'sleeping is not granted')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const ours = warnings.filter(
      (warning) => (warning as { code?: string }).code === 'AIRSSYS_ONDENIED_FAILED',
    )
    t.is(ours.length, 2)
    t.regex(ours[1]?.message ?? '', /\(and 99 more failures since the last warning\)$/)
    t.is(permissions.deniedCount, 101, 'every denial is still counted')
  },
)

test("globs match the guest's path: **, *, ?, [..] and {a,b}, dotfiles included", async (t) => {
  const base = mkdtempSync(path.join(scratch, 'globs-'))
  const check = async (globs: string[], relative: string) =>
    createPermissions({ filesystemRead: globs, baseDir: base }).allowsRead(relative)
  t.true(await check(['./data/**'], 'data/a.txt'))
  t.true(await check(['./data/**'], 'data/deep/er/.hidden'))
  t.false(await check(['./data/**'], 'database/a.txt'))
  t.false(await check(['./data/**'], 'other/a.txt'))
  t.true(await check(['data/*.txt'], 'data/a.txt'))
  t.false(await check(['data/*.txt'], 'data/deep/a.txt'), '* stays within one segment')
  t.false(await check(['data/*.txt'], 'data/a.txt.bak'))
  t.true(await check(['**/*.json'], 'x/y/z.json'))
  t.true(await check(['**/*.json'], 'top.json'), '** may be no segment at all')
  t.true(await check(['data/?.txt'], 'data/b.txt'))
  t.false(await check(['data/?.txt'], 'data/bb.txt'))
  t.true(await check(['data/[ab].txt'], 'data/a.txt'))
  t.false(await check(['data/[ab].txt'], 'data/c.txt'))
  t.true(await check(['data/[!ab].txt'], 'data/c.txt'))
  t.true(await check(['{logs,data}/*.{txt,md}'], 'logs/x.md'))
  t.false(await check(['{logs,data}/*.{txt,md}'], 'logs/x.rs'))
  t.true(await check(['config.toml'], 'config.toml'), 'a glob without wildcards names one file')
  t.false(await check(['config.toml'], 'config.toml.bak'))
  t.false(await check(['data.+(x)/**'], 'data.x/a'), 'regular expression syntax in names is literal')
  t.true(await check(['data.+(x)/**'], 'data.+(x)/a'))
})

test('a path whose match would cost more than MAX_GLOB_STEPS is refused unmatched; real grants match paths of PATH_MAX', (t) => {
  // Probe Z47: a manifest's 509-character glob (`*a` 254 times, then `b`) against a 4,095-character
  // path took 100-145 ms a read on the JS thread, and a guest reading in a loop held the event
  // loop most of its call.
  const base = mkdtempSync(path.join(scratch, 'costly-'))
  const costly = createPermissions({ filesystemRead: [`${'*a'.repeat(254)}b`], baseDir: base })
  const long = 'a'.repeat(4095)
  t.false(costly.allowsRead(long))
  t.regex(
    costly.readProblem(long) ?? '',
    /^is too long to check against the granted globs \(4095 characters: more than 131072 steps\)$/,
  )
  t.is(costly.readProblem('a'.repeat(100)), 'is not inside a granted path', 'a short path is still matched')
  // A class is tested range by range: each range counts (probe H46: 8 classes of 58 CJK
  // characters, 491 characters of glob, took 9-15 ms a read counted as states alone).
  const cjk = Array.from({ length: 58 }, (_, index) => String.fromCodePoint(0x4e00 + index)).join('')
  const classes = createPermissions({ filesystemRead: [`./${`*[${cjk}]`.repeat(8)}x`], baseDir: base })
  t.regex(classes.readProblem(String.fromCodePoint(0x4e00 + 57).repeat(4095)) ?? '', /^is too long to check/)
  const real = createPermissions({ filesystemRead: ['./data/**', '**/*.json'], baseDir: base })
  const deep = `data/${'d/'.repeat(2040)}x.bin`
  t.true(deep.length > 4000)
  t.true(real.allowsRead(deep))
  t.is(real.readProblem('other/x.bin'), 'is not inside a granted path')
  // The work done counts, not every grant's states: sixteen ordinary grants (348 characters)
  // refused a 375-character path when their states were summed (probe H47).
  const many = createPermissions({
    filesystemRead: [
      ...Array.from({ length: 15 }, (_, index) => `./area${index}/**/*.{toml,json,png}`),
      './data/users/**/*.json',
    ],
    baseDir: base,
  })
  const users = `data/users/${'abcdefghi/'.repeat(400)}profile.json`
  t.true(users.length > 4000)
  t.true(many.allowsRead(users))
  // Grants of one literal start each walk the path: three of them still fit PATH_MAX (probe H48).
  const sameStart = createPermissions({
    filesystemRead: ['./data/**/*.csv', './data/**/*.txt', './data/**/*.json'],
    baseDir: base,
  })
  const json = `data/${'abcdefghi/'.repeat(398)}x.json`
  t.true(json.length > 3980)
  t.true(sameStart.allowsRead(json))
})

test('allowsRead judges the text alone: absolute, drive, UNC and escaping paths grant nothing', (t) => {
  const base = mkdtempSync(path.join(scratch, 'lexical-'))
  const permissions = createPermissions({ filesystemRead: ['./data/**', '**/*.txt'], baseDir: base })
  t.true(permissions.allowsRead('data/a.bin'))
  t.true(permissions.allowsRead('./data/./deep/../a.bin'), '. and .. are resolved in the text')
  t.true(permissions.allowsRead('missing/dir/b.txt'), 'nothing is looked up on disk')
  for (const request of [
    path.join(base, 'data', 'a.bin'),
    '/etc/passwd.txt',
    '//server/share/a.txt',
    '\\\\server\\share\\a.txt',
    'C:\\a.txt',
    'C:a.txt',
    '../a.txt',
    'data/../../a.txt',
    'data\\a.bin',
    'a.txt\0',
  ]) {
    t.false(permissions.allowsRead(request), request)
  }
})

test('guestPath says why a path is refused, and resolves the rest to names below the base', (t) => {
  t.deepEqual(guestPath('./data/x/../a.txt'), { relative: 'data/a.txt' })
  t.deepEqual(guestPath(''), { relative: '' })
  t.deepEqual(guestPath('data/..'), { relative: '' })
  t.regex(guestPath('/etc/passwd').problem ?? '', /is absolute/)
  t.regex(guestPath('//server/share').problem ?? '', /is absolute/)
  t.regex(guestPath('\\\\server\\share').problem ?? '', /use "\/" as the separator/)
  t.regex(guestPath('C:a').problem ?? '', /names a drive/)
  t.regex(guestPath('a/../../b').problem ?? '', /leads out of/)
  t.regex(guestPath('a\0b').problem ?? '', /NUL/)
  t.deepEqual(guestPath('%2e%2e/a'), { relative: '%2e%2e/a' }, 'nothing is decoded')
})

test('permissions come from a manifest, relative to its directory', async (t) => {
  const dir = capabilitiesDir(scratch, {
    permissions: [
      'filesystem.read = ["./data/**"]',
      'network.outbound = ["127.0.0.1:8080", "*.example.com:443"]',
      'time.sleep = true',
    ],
  })
  const permissions = permissionsFromManifest(loadManifest(dir))
  t.is(permissions.baseDir, dir)
  t.deepEqual(permissions.filesystemRead, ['./data/**'])
  t.true(permissions.timeSleep)
  t.true(permissions.allowsConnection(new URL('http://127.0.0.1:8080/')))
  t.true(permissions.allowsConnection(new URL('https://cdn.example.com/')))
  t.true(permissions.allowsRead('data/x.txt'))
  t.false(permissions.allowsRead('Component.toml'))
})
