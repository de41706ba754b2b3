import { execFileSync } from 'node:child_process'
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import { ConfigError, DEFAULT_POLICY, loadManifest, type PolicyOptions } from '../../lib/index.js'
import { readComponentWasm } from '../../lib/sandbox/paths.js'
import { MiB, root } from '../helpers.js'

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-config-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

let directories = 0

/** A fresh directory holding `files` (a Component.toml among them, usually). */
function directory(files: Record<string, string>): string {
  const dir = path.join(scratch, String(directories++))
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true })
    writeFileSync(path.join(dir, name), content)
  }
  return dir
}

interface Sections {
  component?: string | null
  memory?: string | null
  cpu?: string | null
  extra?: string
}

/** A valid manifest for `demo`, with any section's body replaced (or, with null, left out). */
function toml(sections: Sections = {}): string {
  const { component = 'name = "demo"\nversion = "0.1.0"', memory = 'max_bytes = 1048576' } = sections
  const { cpu = 'max_fuel = 1000000\ntimeout_seconds = 5', extra = '' } = sections
  return [
    component === null ? '' : `[component]\n${component}`,
    memory === null ? '' : `[resources.memory]\n${memory}`,
    cpu === null ? '' : `[resources.cpu]\n${cpu}`,
    extra,
  ].join('\n\n')
}

/** A component directory with `demo.wasm` (loadManifest only checks that the file is there). */
function component(sections: Sections = {}, files: Record<string, string> = {}): string {
  return directory({ 'Component.toml': toml(sections), 'demo.wasm': '', ...files })
}

function rejects(dir: string, policy?: PolicyOptions): ConfigError {
  try {
    loadManifest(dir, { policy })
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error(`${dir} was accepted`)
}

interface BrokenCase {
  title: string
  sections?: Sections
  /** The whole Component.toml, when `sections` cannot express it. */
  text?: string
  path: string
  value?: unknown
  allowed?: string
  message?: RegExp
  snippet?: string
}

const broken: BrokenCase[] = [
  // Each required field or section missing.
  {
    title: 'a missing [component] section',
    sections: { component: null },
    path: 'component',
    snippet: '[component]\nname = "my-component"\nversion = "0.1.0"',
  },
  { title: 'a missing name', sections: { component: 'version = "0.1.0"' }, path: 'component.name' },
  { title: 'a missing version', sections: { component: 'name = "demo"' }, path: 'component.version' },
  {
    title: 'a missing [resources] table',
    sections: { memory: null, cpu: null },
    path: 'resources',
    snippet:
      '[resources.memory]\nmax_bytes = 1048576\n\n[resources.cpu]\nmax_fuel = 10000000\ntimeout_seconds = 5',
  },
  {
    title: 'a missing [resources.memory] section',
    sections: { memory: null },
    path: 'resources.memory',
    snippet: '[resources.memory]\nmax_bytes = 1048576',
  },
  {
    title: 'a missing max_bytes',
    sections: { memory: 'max_table_elements = 100' },
    path: 'resources.memory.max_bytes',
    allowed: '524288..4194304 (512 KiB..4 MiB)',
    snippet: 'max_bytes = 1048576',
    message:
      /max_bytes: missing \(allowed: 524288\.\.4194304 \(512 KiB\.\.4 MiB\)\); add `max_bytes = 1048576`/,
  },
  {
    title: 'a missing [resources.cpu] section',
    sections: { cpu: null },
    path: 'resources.cpu',
    snippet: '[resources.cpu]\nmax_fuel = 10000000\ntimeout_seconds = 5',
  },
  {
    title: 'a missing max_fuel',
    sections: { cpu: 'timeout_seconds = 5' },
    path: 'resources.cpu.max_fuel',
    allowed: '1000..100000000',
    snippet: 'max_fuel = 10000000',
  },
  {
    title: 'a missing timeout',
    sections: { cpu: 'max_fuel = 1000000' },
    path: 'resources.cpu.timeout_seconds',
    snippet: 'timeout_seconds = 5',
    allowed: 'timeout_seconds 1..300 or timeout_ms 1..300000',
    message: /a timeout is required/,
  },
  // Each range, at both ends.
  ...(
    [
      ['memory', 'max_bytes', 524287, 4194305, '524288..4194304'],
      ['memory', 'max_table_elements', 0, 100001, '1..100000'],
      ['cpu', 'max_fuel', 999, 100000001, '1000..100000000'],
      ['cpu', 'timeout_seconds', 0, 301, '1..300'],
      ['cpu', 'timeout_ms', 0, 300001, '1..300000'],
    ] as const
  ).flatMap(([section, key, below, above, allowed]) =>
    [below, above].map((value): BrokenCase => {
      const body =
        section === 'memory'
          ? key === 'max_bytes'
            ? `max_bytes = ${value}`
            : `max_bytes = 1048576\n${key} = ${value}`
          : key === 'max_fuel'
            ? `max_fuel = ${value}\ntimeout_seconds = 5`
            : `max_fuel = 1000000\n${key} = ${value}`
      return {
        title: `${key} = ${value}, ${value === below ? 'below' : 'above'} ${allowed}`,
        sections: { [section]: body },
        path: `resources.${section}.${key}`,
        value,
        allowed,
        message: new RegExp(`${value} is ${value === below ? 'below' : 'above'} the allowed range`),
      }
    }),
  ),
  // Wrong types.
  {
    title: 'a string memory limit',
    sections: { memory: 'max_bytes = "1MiB"' },
    path: 'resources.memory.max_bytes',
    value: '1MiB',
    message: /expected an integer, got string "1MiB"/,
  },
  {
    title: 'a float memory limit, even a whole one',
    sections: { memory: 'max_bytes = 1048576.0' },
    path: 'resources.memory.max_bytes',
    value: 1048576,
    message: /expected an integer, got float 1048576/,
  },
  {
    title: 'a boolean fuel budget',
    sections: { cpu: 'max_fuel = true\ntimeout_seconds = 5' },
    path: 'resources.cpu.max_fuel',
    value: true,
  },
  {
    title: 'a fractional timeout_seconds',
    sections: { cpu: 'max_fuel = 1000000\ntimeout_seconds = 1.5' },
    path: 'resources.cpu.timeout_seconds',
    value: 1.5,
  },
  {
    title: 'a numeric name',
    sections: { component: 'name = 42\nversion = "0.1.0"' },
    path: 'component.name',
    value: 42,
  },
  {
    title: '[component] given as a string',
    text: `component = "demo"\n${toml({ component: null })}`,
    path: 'component',
    value: 'demo',
  },
  {
    title: 'a boolean permission given as a string',
    sections: { extra: '[permissions]\ntime.sleep = "yes"' },
    path: 'permissions.time.sleep',
    value: 'yes',
    allowed: 'true or false',
  },
  {
    title: 'filesystem.read given as a string',
    sections: { extra: '[permissions]\nfilesystem.read = "./data"' },
    path: 'permissions.filesystem.read',
    value: './data',
  },
  // Names and versions.
  {
    title: 'a name outside [a-z0-9-]+',
    sections: { component: 'name = "Hello_World"\nversion = "0.1.0"\nwasm = "demo.wasm"' },
    path: 'component.name',
    value: 'Hello_World',
  },
  {
    title: 'a version that is not semver',
    sections: { component: 'name = "demo"\nversion = "1.0"' },
    path: 'component.version',
    value: '1.0',
  },
  {
    title: 'a semver with a leading zero',
    sections: { component: 'name = "demo"\nversion = "01.0.0"' },
    path: 'component.version',
    value: '01.0.0',
  },
  // Unknown keys: a typo must not drop a limit silently.
  {
    title: 'a misspelt key',
    sections: { memory: 'max_bytes = 1048576\nmax_byte = 5' },
    path: 'resources.memory.max_byte',
    message: /unknown key \(did you mean "max_bytes"\?\)/,
  },
  { title: 'an unknown top-level table', sections: { extra: '[extra]\nx = 1' }, path: 'extra' },
  // Probe Z35: a quoted key with dots was reported under the path of the valid field it spells.
  {
    title: 'an unknown key holding dots, quoted as TOML quotes it',
    sections: { extra: '[resources]\n"cpu.max_fuel" = 5' },
    path: 'resources."cpu.max_fuel"',
    message: /: resources\."cpu\.max_fuel": unknown key/,
  },
  {
    title: 'an unknown key holding an invisible character, escaped',
    sections: { memory: 'max_bytes = 1048576\n"max_bytes\u200b" = 5' },
    path: 'resources.memory."max_bytes\\u200b"',
    message: /unknown key \(did you mean "max_bytes"\?\)/,
  },
  {
    title: 'an unknown key holding a character beyond U+FFFF, escaped as TOML escapes it',
    sections: { memory: 'max_bytes = 1048576\n"a\\U0001F600b" = 5' },
    path: 'resources.memory."a\\U0001f600b"',
  },
  {
    title: 'an unknown [component] key',
    sections: { component: 'name = "demo"\nversion = "0.1.0"\nauthor = "me"' },
    path: 'component.author',
  },
  {
    title: 'an unknown permission',
    sections: { extra: '[permissions]\nfilesystem.execute = ["./out"]' },
    path: 'permissions.filesystem.execute',
  },
  {
    title: 'a bad timeout_seconds beside a good timeout_ms',
    sections: { cpu: 'max_fuel = 1000000\ntimeout_seconds = 0\ntimeout_ms = 500' },
    path: 'resources.cpu.timeout_seconds',
  },
  // The wasm path must stay inside the manifest's directory.
  {
    title: 'a wasm path escaping with ..',
    sections: { component: 'name = "demo"\nversion = "0.1.0"\nwasm = "../demo.wasm"' },
    path: 'component.wasm',
    value: '../demo.wasm',
    message: /leaves the manifest's directory/,
  },
  {
    title: 'an absolute wasm path',
    sections: { component: 'name = "demo"\nversion = "0.1.0"\nwasm = "/etc/passwd"' },
    path: 'component.wasm',
    value: '/etc/passwd',
    message: /must be relative/,
  },
  {
    title: 'a wasm file that does not exist',
    sections: { component: 'name = "demo"\nversion = "0.1.0"\nwasm = "missing.wasm"' },
    path: 'component.wasm',
    value: 'missing.wasm',
    message: /does not exist/,
  },
  // Permission patterns.
  ...(
    [
      ['../secret/**', /"\.\." is not allowed in a glob/],
      // One that stays inside is refused too, and the message must not say it leaves (probe Z12).
      ['./ok/../ok/**', /: "\.\." is not allowed in a glob: write the path without it$/],
      ['/etc/**', /must be relative/],
      ['data/[abc', /unclosed "\["/],
      ['data/{a,b', /unclosed "\{"/],
      ['data/**.txt', /"\*\*" must be a whole path segment/],
      ['data\\\\file', /use "\/" as the separator/],
      ['', /cannot be empty/],
    ] as const
  ).map(([glob, message]): BrokenCase => ({
    title: `the glob "${glob}"`,
    sections: { extra: `[permissions]\nfilesystem.read = ["./ok/**", "${glob}"]` },
    path: 'permissions.filesystem.read[1]',
    value: glob.replaceAll('\\\\', '\\'),
    message,
  })),
  {
    title: 'filesystem.write given as a string',
    sections: { extra: '[permissions]\nfilesystem.write = "./scratch"' },
    path: 'permissions.filesystem.write',
    value: './scratch',
  },
  // Write grants: existing directories inside the manifest's directory, never the whole of it.
  ...(
    [
      ['../scratch', /"\.\.\/scratch" leaves the manifest's directory/],
      ['./ok/../../scratch', /leaves the manifest's directory/],
      ['/tmp', /must be relative/],
      ['C:/scratch', /must be relative/],
      ['./scratch/**', /is a pattern; filesystem\.write takes directories/],
      ['./missing', /"\.\/missing" does not exist/],
      ['./demo.wasm', /"\.\/demo\.wasm" is not a directory/],
      ['./demo.wasm/x', /does not exist/],
      ['.', /is the manifest's own directory \(with Component\.toml\)/],
      ['./ok/..', /is the manifest's own directory/],
      ['', /cannot be empty/],
      ['ok\\\\sub', /use "\/" as the separator/],
    ] as const
  ).map(([written, message]): BrokenCase => ({
    title: `the write grant "${written}"`,
    sections: { extra: `[permissions]\nfilesystem.write = ["./ok", "${written}"]` },
    path: 'permissions.filesystem.write[1]',
    value: written.replaceAll('\\\\', '\\'),
    allowed:
      'relative paths of existing directories inside the manifest\'s directory, through no symlink, such as "./scratch"',
    message,
  })),
  ...(
    [
      ['example.com', /has no port/],
      ['example.com:0', /port "0" must be 1..65535/],
      ['example.com:65536', /port "65536" must be 1..65535/],
      ['*:443', /the host must be named/],
      ['exa*mple.com:443', /wildcard may only be the first label/],
      ['::1:80', /must be in brackets/],
      ['[::1]', /"\[::1\]" has no port: write host:port, as in "\[::1\]:8080"/],
      ['300.1.1.1:80', /not a valid IPv4 address/],
      ['[nope]:80', /not a valid IPv6 address/],
      // Other spellings of an address would grant it unseen: 0x7f000001 is 127.0.0.1 (probe Z23).
      ['0x7f000001:80', /"0x7f000001" is not a valid IPv4 address: write it as four decimal numbers/],
      ['0xA9.254.169.254:80', /not a valid IPv4 address/],
      ['metadata.0x0:80', /not a valid IPv4 address/],
      ['2130706433:80', /not a valid IPv4 address/],
      ['[fe80::1%eth0]:443', /not a valid IPv6 address \(a zone id is not allowed\)/],
      ['bad!name.com:80', /not a valid host name/],
      [
        'http://example.com',
        /"http:\/\/example\.com" is a URL, not a host:port pattern: write "example\.com:80"/,
      ],
      ['https://api.example.com/v1', /is a URL, not a host:port pattern: write "api\.example\.com:443"/],
    ] as const
  ).map(([pattern, message]): BrokenCase => ({
    title: `the host pattern "${pattern}"`,
    sections: { extra: `[permissions]\nnetwork.outbound = ["${pattern}"]` },
    path: 'permissions.network.outbound[0]',
    value: pattern,
    message,
  })),
]

for (const entry of broken) {
  test(`rejects ${entry.title} at ${entry.path}`, (t) => {
    const dir = directory({
      'Component.toml': entry.text ?? toml(entry.sections),
      'demo.wasm': '',
      'ok/keep': '',
    })
    const error = rejects(dir)
    t.is(error.code, 'ERR_WASM_CONFIG')
    t.is(error.path, entry.path)
    t.is(error.problems.length, 1, error.message)
    if ('value' in entry) t.deepEqual(error.value, entry.value)
    if (entry.allowed !== undefined) t.is(error.allowed, entry.allowed)
    t.not(error.allowed, undefined, 'every problem says what would be accepted')
    if (entry.snippet !== undefined) t.is(error.snippet, entry.snippet)
    if (entry.message !== undefined) t.regex(error.message, entry.message)
    t.true(error.message.startsWith(`${path.join(dir, 'Component.toml')}: ${entry.path}: `), error.message)
  })
}

test('loads the examples as typed manifests', (t) => {
  const hello = loadManifest(path.join(root, 'examples/hello'))
  t.deepEqual(hello, {
    file: path.join(root, 'examples/hello/Component.toml'),
    dir: path.join(root, 'examples/hello'),
    wasmPath: path.join(root, 'examples/hello/hello.wasm'),
    component: { name: 'hello', version: '0.1.0', wasm: 'hello.wasm' },
    resources: {
      memory: { maxBytes: 2 * MiB, maxTableElements: 10_000 },
      cpu: { maxFuel: 10_000_000, timeoutMs: 1_000 },
    },
    permissions: {
      filesystem: { read: [], write: [] },
      network: { outbound: [] },
      time: { sleep: false },
    },
  })
  const runaway = loadManifest(path.join(root, 'examples/runaway/Component.toml'))
  t.is(runaway.component.wasm, 'runaway.wasm', 'the wasm path defaults to <name>.wasm')
  t.deepEqual(runaway.resources.cpu, { maxFuel: 100_000_000, timeoutMs: 50 })
  t.is(loadManifest(path.join(root, 'examples/memory-hog')).resources.memory.maxBytes, MiB)
})

test('the manifest is frozen all the way down', (t) => {
  const manifest = loadManifest(
    component({
      extra: '[permissions]\nfilesystem.read = ["./data/**"]\nnetwork.outbound = ["example.com:443"]',
    }),
  )
  t.true(Object.isFrozen(manifest))
  t.true(Object.isFrozen(manifest.resources.memory))
  t.true(Object.isFrozen(manifest.permissions.filesystem.read))
  t.throws(
    () => {
      ;(manifest.resources.memory as { maxBytes: number }).maxBytes = 1 << 30
    },
    { instanceOf: TypeError },
  )
  t.throws(() => (manifest.permissions.filesystem.read as string[]).push('../**'), { instanceOf: TypeError })
})

test('accepts every documented form of permission, and the edge values of each range', (t) => {
  const dir = component(
    {
      memory: 'max_bytes = 524288\nmax_table_elements = 100000',
      cpu: 'max_fuel = 100000000\ntimeout_ms = 1',
      extra: [
        '[permissions]',
        'filesystem.read = ["./data/**", "assets/*.{png,jpg}", "logs/[0-9]*.txt"]',
        'filesystem.write = ["./data", "out/tmp/"]',
        'network.outbound = ["127.0.0.1:8080", "*.example.com:443", "[::1]:80", "api.example.com:*"]',
        'time.sleep = true',
      ].join('\n'),
    },
    { 'data/a.txt': 'a', 'out/tmp/keep': '' },
  )
  const manifest = loadManifest(dir)
  t.deepEqual(manifest.resources, {
    memory: { maxBytes: 512 * 1024, maxTableElements: 100_000 },
    cpu: { maxFuel: 100_000_000, timeoutMs: 1 },
  })
  t.deepEqual(manifest.permissions, {
    filesystem: {
      read: ['./data/**', 'assets/*.{png,jpg}', 'logs/[0-9]*.txt'],
      write: ['./data', 'out/tmp/'],
    },
    network: { outbound: ['127.0.0.1:8080', '*.example.com:443', '[::1]:80', 'api.example.com:*'] },
    time: { sleep: true },
  })
  t.is(
    loadManifest(component({ cpu: 'max_fuel = 1000\ntimeout_seconds = 300' })).resources.cpu.timeoutMs,
    300_000,
  )
})

test('reports several problems together, each with its path', (t) => {
  const dir = component({
    component: 'name = "Bad Name"\nversion = "x"',
    memory: 'max_bytes = 1',
    cpu: 'max_fuel = 1000000\ntimeout_seconds = 5\ntimeout_secs = 5',
  })
  const error = rejects(dir)
  t.deepEqual(
    error.problems.map((problem) => problem.path),
    ['component.name', 'component.version', 'resources.memory.max_bytes', 'resources.cpu.timeout_secs'],
  )
  t.is(error.path, 'component.name', 'the error itself describes the first problem')
  t.regex(error.message, /has 4 problems:\n {2}- component\.name: .*\n {2}- component\.version: /)
  t.is(error.problems[2]?.value, 1)
  t.is(error.problems[2]?.allowed, '524288..4194304')
  t.regex(error.problems[3]?.message ?? '', /did you mean "timeout_seconds"\?/)
})

test('a TOML syntax error gives its line and column', (t) => {
  const dir = directory({ 'Component.toml': '[component]\nname = "demo\nversion = "0.1.0"\n' })
  const error = rejects(dir)
  t.is(error.code, 'ERR_WASM_CONFIG')
  t.is(error.line, 2)
  t.is(error.column, 13)
  t.is(error.path, undefined)
  t.regex(error.message, /Component\.toml:2:13: TOML syntax error: /)
})

test('a wasm path through a symlink is rejected, whether it leads out or stays inside', (t) => {
  const outside = directory({ 'secret.wasm': '' })
  const dir = component({ component: 'name = "demo"\nversion = "0.1.0"\nwasm = "link.wasm"' })
  symlinkSync(path.join(outside, 'secret.wasm'), path.join(dir, 'link.wasm'))
  const error = rejects(dir)
  t.is(error.path, 'component.wasm')
  t.regex(error.message, /through a symlink/)

  const inside = component({ component: 'name = "demo"\nversion = "0.1.0"\nwasm = "inner.wasm"' })
  symlinkSync(path.join(inside, 'demo.wasm'), path.join(inside, 'inner.wasm'))
  // The wasm is opened following no symlink, so even one that stays inside is refused up front.
  const inner = rejects(inside)
  t.is(inner.path, 'component.wasm')
  t.regex(inner.message, /"inner\.wasm" passes through a symlink \("inner\.wasm"\), which is not followed/)
})

test('a glob whose directory is a symlink out of the manifest directory is rejected', (t) => {
  const outside = directory({ 'etc/passwd': 'x' })
  const dir = component({ extra: '[permissions]\nfilesystem.read = ["./data/**"]' })
  symlinkSync(path.join(outside, 'etc'), path.join(dir, 'data'))
  const error = rejects(dir)
  t.is(error.path, 'permissions.filesystem.read[0]')
  t.regex(
    error.message,
    /"\.\/data" leaves the manifest's directory through a symlink \("data", to ".*etc"\)/,
  )
})

test('a glob through a symlink that stays inside is rejected as a symlink, not as leaving', (t) => {
  const dir = component(
    { extra: '[permissions]\nfilesystem.read = ["lin/**", "lfile", "data/**"]' },
    { 'data/hello.txt': 'hi' },
  )
  // Relative links, as `ln -s data lin` makes them: they resolve inside the directory.
  symlinkSync('data', path.join(dir, 'lin'))
  symlinkSync('data/hello.txt', path.join(dir, 'lfile'))
  const error = rejects(dir)
  t.deepEqual(
    error.problems.map((problem) => [problem.path, problem.message]),
    [
      ['permissions.filesystem.read[0]', '"lin" passes through a symlink ("lin"), which is not followed'],
      ['permissions.filesystem.read[1]', '"lfile" passes through a symlink ("lfile"), which is not followed'],
    ],
  )
})

test('a write grant through a symlink is rejected, whether it leads out or stays inside', (t) => {
  const outside = directory({ 'etc/passwd': 'x' })
  const out = component({ extra: '[permissions]\nfilesystem.write = ["./scratch"]' })
  symlinkSync(path.join(outside, 'etc'), path.join(out, 'scratch'))
  const leaves = rejects(out)
  t.is(leaves.path, 'permissions.filesystem.write[0]')
  t.is(leaves.value, './scratch')
  t.regex(
    leaves.message,
    /"\.\/scratch" leaves the manifest's directory through a symlink \("scratch", to ".*etc"\)/,
  )

  const inside = component(
    { extra: '[permissions]\nfilesystem.write = ["./link/sub"]' },
    { 'real/sub/keep': '' },
  )
  symlinkSync(path.join(inside, 'real'), path.join(inside, 'link'))
  const stays = rejects(inside)
  t.is(stays.path, 'permissions.filesystem.write[0]')
  t.regex(stays.message, /passes through a symlink \("link"\)/)
})

test("a write grant may not hold the component's own wasm file", (t) => {
  const dir = component(
    {
      component: 'name = "demo"\nversion = "0.1.0"\nwasm = "bin/demo.wasm"',
      extra: '[permissions]\nfilesystem.write = ["./bin"]',
    },
    { 'bin/demo.wasm': '' },
  )
  const error = rejects(dir)
  t.is(error.path, 'permissions.filesystem.write[0]')
  t.regex(error.message, /"\.\/bin" holds the component's wasm file, which the guest could then replace/)
})

test('a write grant is refused while a file in the writable directory has a second name outside it', (t) => {
  // A plugin archive can ship scratch/notes.txt as a second name of a file its guest must not
  // change (its data, or another plugin's; its own manifest and wasm are refused for any second
  // name, see below).
  const secondName =
    /"scratch\/notes\.txt" in a writable directory has a second name outside the writable directories \(a hard link\)/
  const dir = component(
    { extra: '[permissions]\nfilesystem.write = ["./scratch"]' },
    { 'scratch/keep': '', 'data.json': '{}' },
  )
  linkSync(path.join(dir, 'data.json'), path.join(dir, 'scratch', 'notes.txt'))
  const error = rejects(dir)
  t.is(error.path, 'permissions.filesystem.write')
  t.regex(error.message, secondName)
  // Without a write grant the guest cannot write through the link: the manifest loads.
  const readOnly = component({}, { 'scratch/keep': '', 'data.json': '{}' })
  linkSync(path.join(readOnly, 'data.json'), path.join(readOnly, 'scratch', 'notes.txt'))
  t.notThrows(() => loadManifest(readOnly))
  // Another plugin unpacked beside it: a link in the writable directory to its Component.toml.
  const other = component({})
  const plugin = component(
    { extra: '[permissions]\nfilesystem.write = ["./scratch"]' },
    { 'scratch/keep': '' },
  )
  linkSync(path.join(other, 'Component.toml'), path.join(plugin, 'scratch', 'notes.txt'))
  const linked = rejects(plugin)
  t.is(linked.path, 'permissions.filesystem.write')
  t.regex(linked.message, secondName)
  // The same directory granted twice, or inside another grant, is walked once: its one name there
  // must not count twice and pass for the link's other name.
  for (const write of [
    '"./scratch", "./scratch"',
    '"./scratch", "scratch/"',
    '"./scratch", "./scratch/sub"',
  ]) {
    const twice = component(
      { extra: `[permissions]\nfilesystem.write = [${write}]` },
      { 'scratch/sub/keep': '' },
    )
    writeFileSync(path.join(twice, 'data.json'), '{}')
    linkSync(path.join(twice, 'data.json'), path.join(twice, 'scratch', 'sub', 'ct'))
    t.regex(
      rejects(twice).message,
      /"scratch\/sub\/ct" in a writable directory has a second name outside/,
      write,
    )
  }
})

test('a manifest or wasm file with a second name is refused: another plugin may write through it', (t) => {
  // Probe H44: plugin A (write grant ./data) loaded clean; a second archive then unpacked plugin B
  // whose b.wasm was a hard link to A/data/x.wasm. B validated and loaded; A's guest rewrote
  // x.wasm in place, and B's next load ran A's code with B's grants. Its Component.toml alike.
  const a = component({ extra: '[permissions]\nfilesystem.write = ["./data"]' }, { 'data/x.wasm': '' })
  t.notThrows(() => loadManifest(a))
  const b = directory({
    'Component.toml': toml({ component: 'name = "b"\nversion = "0.1.0"\nwasm = "b.wasm"' }),
  })
  linkSync(path.join(a, 'data', 'x.wasm'), path.join(b, 'b.wasm'))
  const wasm = rejects(b)
  t.is(wasm.path, 'component.wasm')
  t.regex(
    wasm.message,
    /"b\.wasm" has 2 names \(hard links\): a plugin whose write grant holds another of them could rewrite it/,
  )
  const manifest = component({})
  linkSync(path.join(manifest, 'Component.toml'), path.join(a, 'data', 'b.toml'))
  t.regex(rejects(manifest).message, /Component\.toml has 2 names \(hard links\)/)
  // Read after it was checked (a link made between loading the manifest and reading the wasm).
  const late = component({})
  const loaded = loadManifest(late)
  linkSync(path.join(late, 'demo.wasm'), path.join(a, 'data', 'late.wasm'))
  return readComponentWasm(loaded, MiB).then(
    () => t.fail('read a linked wasm'),
    (error: unknown) => t.regex((error as ConfigError).message, /"demo\.wasm" has 2 names \(hard links\)/),
  )
})

test("a write grant is refused while the writable directory holds a plugin's manifest", (t) => {
  // Probe Z42: plugin A granted ./data, which held a whole harmless plugin B, and the archive
  // shipped plugins/B as a symlink to A/data. A's guest rewrote B's Component.toml and wasm, and
  // B then loaded with grants and code nobody had reviewed.
  const a = component(
    { extra: '[permissions]\nfilesystem.write = ["./data"]' },
    {
      'data/Component.toml': '[component]\nname = "b"\nversion = "0.1.0"\nwasm = "b.wasm"',
      'data/b.wasm': '',
    },
  )
  symlinkSync(path.join(a, 'data'), `${a}-B`)
  const error = rejects(a)
  t.is(error.path, 'permissions.filesystem.write')
  t.regex(error.message, /"data\/Component\.toml" in a writable directory is a plugin's manifest/)
  // Deeper down too; and without the manifest, the same grant loads.
  const deep = component(
    { extra: '[permissions]\nfilesystem.write = ["./data"]' },
    { 'data/plugins/b/Component.toml': '' },
  )
  t.regex(rejects(deep).message, /"data\/plugins\/b\/Component\.toml" in a writable directory/)
  const plain = component({ extra: '[permissions]\nfilesystem.write = ["./data"]' }, { 'data/b.wasm': '' })
  t.notThrows(() => loadManifest(plain))
})

test("a plugin nested in another's directory reaches neither's wasm through a write grant", (t) => {
  // Probe Z44: B's wasm was B/A/data/b.wasm, and the plugin A nested in B (found by a recursive
  // scan, or through a symlink plugins/A) was granted ./data: A's guest replaced B's code, which
  // then ran with B's reviewed network grant. The other way round, a plugin's write grant inside a
  // plugin nested in it reaches that plugin's wasm.
  const writes = (grant: string) => toml({ extra: `[permissions]\nfilesystem.write = ["${grant}"]` })
  const outer = directory({
    'Component.toml': toml({ component: 'name = "b"\nversion = "0.1.0"\nwasm = "A/data/b.wasm"' }),
    'A/Component.toml': writes('./data'),
    'A/demo.wasm': '',
    'A/data/b.wasm': '',
  })
  const nested = rejects(outer)
  t.is(nested.path, 'component.wasm')
  t.regex(
    nested.message,
    /"A\/data\/b\.wasm" lies inside another plugin's directory \("A\/Component\.toml"\), whose guest, or this one, could then rewrite the wasm file/,
  )
  t.notThrows(() => loadManifest(path.join(outer, 'A')), "A's grant holds no manifest")
  const granting = directory({
    'Component.toml': writes('./B/data'),
    'demo.wasm': '',
    'B/Component.toml': toml({ component: 'name = "b"\nversion = "0.1.0"\nwasm = "data/b.wasm"' }),
    'B/data/b.wasm': '',
  })
  const inside = rejects(granting)
  t.is(inside.path, 'permissions.filesystem.write[0]')
  t.regex(inside.message, /"\.\/B\/data" lies inside another plugin's directory \("B\/Component\.toml"\)/)
  t.notThrows(() => loadManifest(path.join(granting, 'B')))
  // Without the nested manifest both layouts load.
  const plain = directory({
    'Component.toml': toml({ component: 'name = "b"\nversion = "0.1.0"\nwasm = "A/data/b.wasm"' }),
    'A/data/b.wasm': '',
  })
  t.notThrows(() => loadManifest(plain))
})

/**
 * Makes `levels` nested directories of 250 characters under `dir`, with a hard link of `manifest`
 * (if given) and `files` empty files at the bottom, or removes them again. A child Node goes down
 * by relative paths: a path past PATH_MAX cannot be named whole, so neither mkdirSync nor rmSync
 * could do it from here.
 */
function deepTree(dir: string, levels: number, action: 'make' | 'remove', manifest = '', files = 0): void {
  const script = `
    const fs = require('node:fs')
    const level = 'd'.repeat(250)
    process.chdir(${JSON.stringify(dir)})
    if (${JSON.stringify(action)} === 'make') {
      for (let i = 0; i < ${levels}; i++) { fs.mkdirSync(level); process.chdir(level) }
      if (${JSON.stringify(manifest)} !== '') fs.linkSync(${JSON.stringify(manifest)}, 'deep')
      for (let i = 0; i < ${files}; i++) fs.writeFileSync('f' + i, '')
    } else {
      let depth = 0
      while (fs.existsSync(level)) { process.chdir(level); depth++ }
      for (const name of fs.readdirSync('.')) fs.rmSync(name)
      for (; depth > 0; depth--) { process.chdir('..'); fs.rmdirSync(level) }
    }`
  execFileSync(process.execPath, ['-e', script])
}

test('a name the guest made is quoted in the refusal with what would forge a log line escaped', (t) => {
  // A guest names its files: U+2028 and U+202E came through JSON's quoting raw (probe Z22).
  const dir = component(
    { extra: '[permissions]\nfilesystem.write = ["./scratch"]' },
    { 'scratch/keep': '', 'notes.txt': '' },
  )
  linkSync(path.join(dir, 'notes.txt'), path.join(dir, 'scratch', 'A\u2028FAKE LINE\u202eB'))
  const error = rejects(dir)
  t.true(error.message.includes('"scratch/A\\u2028FAKE LINE\\u202eB" in a writable directory'), error.message)
  t.false(/[\u2028\u202e]/.test(error.message))
})

test("a manifest's own text reaches no ConfigError with what would forge a log line: names, keys, paths, a syntax error's line", (t) => {
  // Quoted raw in the messages, paths and problems of most manifest errors (probe H29).
  const forged = 'a\u2028\u202e\u0085\u007f\ufeff\u2066b'
  const manifests = [
    { component: `name = "${forged}"\nversion = "0.1.0"` },
    { extra: `[permissions]\nnetwork.outbound = ["${forged}.example:80"]` },
    { extra: `[permissions]\nfilesystem.write = ["./${forged}"]` },
    { extra: `[permissions]\n"${forged}" = 1` },
  ]
  const errors = manifests.map((sections) => rejects(component(sections)))
  errors.push(rejects(directory({ 'Component.toml': `${toml()}\n${forged} = = 1\n`, 'demo.wasm': '' })))
  for (const error of errors) {
    const texts = [
      error.message,
      error.path ?? '',
      ...error.problems.flatMap((each) => [each.message, each.path ?? '']),
    ]
    t.false(
      texts.some((text) => /[\u2028\u202e\u0085\u007f\ufeff\u2066]/.test(text)),
      error.message,
    )
    t.true(error.message.includes('a\\u2028\\u202e\\u0085\\u007f\\ufeff\\u2066b'), error.message)
  }
})

test('a writable directory too deep to walk by path refuses the write grant rather than go unchecked', (t) => {
  // Past PATH_MAX (4096 bytes) a path cannot be read: a link down there went unseen.
  const dir = component(
    { extra: '[permissions]\nfilesystem.write = ["./scratch"]' },
    { 'scratch/keep': '', 'notes.txt': '' },
  )
  const scratchDir = path.join(dir, 'scratch')
  deepTree(scratchDir, 20, 'make', path.join(dir, 'notes.txt'))
  t.teardown(() => deepTree(scratchDir, 20, 'remove'))
  const error = rejects(dir)
  t.is(error.path, 'permissions.filesystem.write')
  t.regex(error.message, /in a writable directory cannot be checked for hard links \(ENAMETOOLONG\)/)
})

test('a writable directory nested deep enough to make the walk slow refuses the write grant', (t) => {
  // Every lstat walks its whole path on the JS thread: 15 levels of 250 characters and 9,000
  // files kept a load busy for seconds. The walk stops at 32 MiB of paths.
  const dir = component({ extra: '[permissions]\nfilesystem.write = ["./scratch"]' }, { 'scratch/keep': '' })
  const scratchDir = path.join(dir, 'scratch')
  deepTree(scratchDir, 15, 'make', '', 9_000)
  t.teardown(() => deepTree(scratchDir, 15, 'remove'))
  const error = rejects(dir)
  t.is(error.path, 'permissions.filesystem.write')
  t.regex(error.message, /nested too deep to check for hard links/)
})

test('a writable tree of many short levels is bounded by the names its lookups resolve', (t) => {
  // 1,500 one-character levels and 1,500 files: short paths (rmSync can still remove them), but
  // each lstat resolves 1,500 names.
  const dir = component({ extra: '[permissions]\nfilesystem.write = ["./scratch"]' }, { 'scratch/keep': '' })
  const script = `
    const fs = require('node:fs')
    process.chdir(${JSON.stringify(path.join(dir, 'scratch'))})
    for (let i = 0; i < 1500; i++) { fs.mkdirSync('d'); process.chdir('d') }
    for (let i = 0; i < 1500; i++) fs.writeFileSync('f' + i, '')`
  execFileSync(process.execPath, ['-e', script])
  t.regex(rejects(dir).message, /nested too deep to check for hard links/)
})

test('many directories in a writable grant refuse it: each costs the walk an open', (t) => {
  // 100,000 empty directories, under every other bound, kept each load busy for 4 s.
  const dir = component({ extra: '[permissions]\nfilesystem.write = ["./scratch"]' }, { 'scratch/keep': '' })
  for (let index = 0; index < 10_001; index++) mkdirSync(path.join(dir, 'scratch', String(index)))
  t.regex(rejects(dir).message, /hold more than 10000 directories, too many to check for hard links/)
})

test('hard links whose every name is in the writable directories are no reason to refuse a write grant', (t) => {
  // A guest may link its own files (WASI's link): the next load must not fail for it.
  const dir = component(
    { extra: '[permissions]\nfilesystem.write = ["./scratch", "./cache"]' },
    { 'scratch/a.txt': 'a', 'scratch/sub/keep': '', 'cache/keep': '' },
  )
  linkSync(path.join(dir, 'scratch', 'a.txt'), path.join(dir, 'scratch', 'b.txt'))
  linkSync(path.join(dir, 'scratch', 'a.txt'), path.join(dir, 'scratch', 'sub', 'c.txt'))
  linkSync(path.join(dir, 'scratch', 'a.txt'), path.join(dir, 'cache', 'd.txt'))
  t.deepEqual(loadManifest(dir).permissions.filesystem.write, ['./scratch', './cache'])
  // A file's second name in a directory the guest cannot write grants it nothing.
  const copied = component(
    { extra: '[permissions]\nfilesystem.write = ["./scratch"]' },
    { 'scratch/keep': '', 'backup/keep': '', 'data.json': '{}' },
  )
  linkSync(path.join(copied, 'data.json'), path.join(copied, 'backup', 'data.json'))
  t.notThrows(() => loadManifest(copied))
})

test('filesystem.read globs are bounded in all: each read matches the path against every one', (t) => {
  // Matching costs path x glob on the JS thread: 40 globs of 4,000 characters took 20 s a read.
  const globs = Array.from({ length: 3 }, (_, index) => `"data/${'*a'.repeat(100)}b${index}"`)
  const error = rejects(component({ extra: `[permissions]\nfilesystem.read = [${globs.join(', ')}]` }))
  t.is(error.path, 'permissions.filesystem.read')
  t.regex(error.message, /the globs hold 621 characters, more than 512 in all/)
  t.notThrows(() =>
    loadManifest(component({ extra: '[permissions]\nfilesystem.read = ["./data/**", "*.json"]' })),
  )
})

test('a directory without a Component.toml is a ConfigError', (t) => {
  const dir = directory({ 'demo.wasm': '' })
  const error = rejects(dir)
  t.is(error.message, `no Component.toml in ${dir}`)
  t.is(rejects(path.join(dir, 'nope')).code, 'ERR_WASM_CONFIG')
  // The wasm given in place of its directory: said so, not a TOML error quoting its bytes.
  writeFileSync(path.join(dir, 'demo.wasm'), Buffer.from('\0asm\x01\0\0\0\x01\x04\x01`\0\0', 'latin1'))
  t.is(
    rejects(path.join(dir, 'demo.wasm')).message,
    `${path.join(dir, 'demo.wasm')} is a wasm file, not a Component.toml: give the directory holding its manifest`,
  )
})

test('a Component.toml that is a symlink is refused without reading what it leads to', (t) => {
  // It was followed: an outside file's lines and values came back in the error's message and
  // problems (a "manifest" linked to an .env file showed its secrets as unknown keys).
  const secret = path.join(scratch, 'secret.env')
  writeFileSync(secret, 'API_KEY = "sk-live-123"\n')
  const outside = directory({ 'demo.wasm': '' })
  symlinkSync(secret, path.join(outside, 'Component.toml'))
  const inside = component()
  symlinkSync(path.join(inside, 'Component.toml'), path.join(inside, 'Linked.toml'))
  for (const file of [outside, path.join(outside, 'Component.toml'), path.join(inside, 'Linked.toml')]) {
    const error = rejects(file)
    t.regex(error.message, /is a symlink, which is not followed/)
    t.false(JSON.stringify({ ...error, message: error.message }).includes('sk-live'))
  }
})

test('a Component.toml that is not a regular file, or is huge, is refused at once', (t) => {
  // A FIFO blocked the event loop for good (the open waited for a writer), /dev/zero grew the
  // process to 16 GB, and a 130 MB line crashed the CLI's output.
  const fifo = directory({ 'demo.wasm': '' })
  execFileSync('mkfifo', [path.join(fifo, 'Component.toml')])
  t.regex(rejects(fifo).message, /Component\.toml is not a file$/)
  const device = directory({ 'demo.wasm': '' })
  symlinkSync('/dev/zero', path.join(device, 'Component.toml'))
  t.regex(rejects(device).message, /is a symlink/)
  t.regex(rejects('/dev/zero').message, /\/dev\/zero is not a file$/)
  const huge = directory({ 'Component.toml': `${toml()}\n#${'x'.repeat(MiB)}\n` })
  t.regex(rejects(huge).message, /Component\.toml is larger than 1 MiB, more than a manifest may be$/)
  // Just under the cap, one broken line of almost 1 MiB: the error shows 200 characters of it.
  const long = directory({ 'Component.toml': `${toml()}\nkey = ${'\u0000'.repeat(MiB - 400)}\n` })
  const error = rejects(long)
  t.regex(error.message, /TOML syntax error/)
  t.true(error.message.length < 2_000, `${error.message.length} characters`)
})

test('a policy widens a range: the host may allow more than the default', (t) => {
  const dir = component({ memory: `max_bytes = ${8 * MiB}` })
  t.is(rejects(dir).path, 'resources.memory.max_bytes')
  const manifest = loadManifest(dir, { policy: { memoryBytes: { max: 16 * MiB } } })
  t.is(manifest.resources.memory.maxBytes, 8 * MiB)
})

test('a policy narrows a range: the manifest cannot keep a limit the host does not allow', (t) => {
  const dir = component({ memory: `max_bytes = ${2 * MiB}` })
  t.is(loadManifest(dir).resources.memory.maxBytes, 2 * MiB)
  const error = rejects(dir, { memoryBytes: { max: MiB } })
  t.is(error.path, 'resources.memory.max_bytes')
  t.is(error.value, 2 * MiB)
  t.is(error.allowed, '524288..1048576')

  const seconds = rejects(component({ cpu: 'max_fuel = 1000000\ntimeout_seconds = 11' }), {
    timeoutMs: { max: 10_000 },
  })
  t.is(seconds.path, 'resources.cpu.timeout_seconds')
  t.is(seconds.allowed, '1..10', 'timeout_seconds follows the policy on milliseconds')

  const fuel = rejects(component({ cpu: 'max_fuel = 5000\ntimeout_seconds = 1' }), { fuel: { min: 10_000 } })
  t.is(fuel.allowed, '10000..100000000')
})

test('timeout_seconds and timeout_ms together, as the README allows: the shorter applies', (t) => {
  // The README's Component.toml names timeout_ms as the finer alternative to timeout_seconds.
  const design = component({ cpu: 'max_fuel = 10000000\ntimeout_seconds = 5\ntimeout_ms = 250' })
  t.is(loadManifest(design).resources.cpu.timeoutMs, 250)
  // Neither lengthens the other.
  const longer = component({ cpu: 'max_fuel = 10000000\ntimeout_seconds = 1\ntimeout_ms = 300000' })
  t.is(loadManifest(longer).resources.cpu.timeoutMs, 1000)
})

test('timeout_seconds under a policy that no whole second fits asks for timeout_ms instead', (t) => {
  const error = rejects(component({ cpu: 'max_fuel = 1000000\ntimeout_seconds = 1' }), {
    timeoutMs: { max: 500 },
  })
  t.is(error.path, 'resources.cpu.timeout_seconds')
  t.is(error.value, 1)
  t.is(error.allowed, 'no whole number of seconds; timeout_ms 1..500')
  t.regex(
    error.message,
    /timeout_seconds: no whole number of seconds fits the policy's timeout of 1\.\.500 ms; use timeout_ms \(1\.\.500\) instead$/,
  )
  const ms = loadManifest(component({ cpu: 'max_fuel = 1000000\ntimeout_ms = 500' }), {
    policy: { timeoutMs: { max: 500 } },
  })
  t.is(ms.resources.cpu.timeoutMs, 500)
})

test('the snippet for a missing section fits the policy in force', (t) => {
  const error = rejects(component({ memory: null, cpu: null }), {
    memoryBytes: { min: 2 * MiB, max: 8 * MiB },
    timeoutMs: { max: 500 },
  })
  t.is(
    error.snippet,
    `[resources.memory]\nmax_bytes = ${2 * MiB}\n\n[resources.cpu]\nmax_fuel = 10000000\ntimeout_ms = 500`,
  )
})

test('a bad policy is a ConfigError naming the policy field', (t) => {
  const dir = component()
  t.is(rejects(dir, { memoryBytes: { min: 10, max: 5 } }).path, 'policy.memoryBytes')
  t.is(rejects(dir, { fuel: { max: -1 } }).path, 'policy.fuel.max')
  t.is(rejects(dir, { cpu: {} } as PolicyOptions).path, 'policy.cpu')
  t.is(rejects(dir, { toString: {} } as PolicyOptions).path, 'policy.toString')
  t.is(rejects(dir, { memoryBytes: 5 } as PolicyOptions).path, 'policy.memoryBytes')
  t.is(rejects(dir, { fuel: { maximum: 5 } } as PolicyOptions).path, 'policy.fuel')
  // Values JSON cannot show still make a ConfigError, never a TypeError from the message; a
  // value is shown by its kind, never through its own toJSON or toString (probe H31).
  const bigint = rejects(dir, { fuel: { min: 1n, foo: 1 } } as unknown as PolicyOptions)
  t.is(bigint.path, 'policy.fuel')
  t.regex(bigint.message, /expected \{ min\?, max\? \}, got an object$/)
  const secret = { toJSON: () => 'SECRET', toString: () => 'SECRET' }
  t.false(rejects(dir, { fuel: secret } as unknown as PolicyOptions).message.includes('SECRET'))
  t.false(rejects(dir, { fuel: { max: secret } } as unknown as PolicyOptions).message.includes('SECRET'))
  const cyclic: Record<string, unknown> = { foo: 1 }
  cyclic.self = cyclic
  t.is(rejects(dir, { fuel: cyclic } as PolicyOptions).path, 'policy.fuel')
  t.deepEqual(DEFAULT_POLICY.memoryBytes, { min: 512 * 1024, max: 4 * MiB })
  t.true(Object.isFrozen(DEFAULT_POLICY.memoryBytes))
})

test('a policy may not allow a limit the runtime refuses: the ConfigError names the policy bound', (t) => {
  const dir = component()
  for (const [key, bound, value, allowed] of [
    ['fuel', 'min', 0, `1..${Number.MAX_SAFE_INTEGER}`],
    ['timeoutMs', 'min', 0, `1..${2 ** 31 - 1}`],
    ['memoryBytes', 'min', 0, `1..${2 ** 48}`],
    ['timeoutMs', 'max', 2 ** 31, `1..${2 ** 31 - 1}`],
    ['memoryBytes', 'max', 2 ** 48 + 1, `1..${2 ** 48}`],
  ] as const) {
    const error = rejects(dir, { [key]: { [bound]: value } })
    t.is(error.code, 'ERR_WASM_CONFIG')
    t.is(error.path, `policy.${key}.${bound}`)
    t.is(error.value, value)
    t.is(error.allowed, allowed)
    t.regex(error.message, new RegExp(`^policy\\.${key}\\.${bound}: ${value} is outside ${allowed}, `))
  }
  // A table may be empty: 0 elements is a limit the runtime takes.
  const table = loadManifest(component({ memory: 'max_bytes = 1048576\nmax_table_elements = 0' }), {
    policy: { tableElements: { min: 0 } },
  })
  t.is(table.resources.memory.maxTableElements, 0)
})

test("a manifest's ConfigError stays bounded whatever the manifest holds: many problems, long keys, deep values, a long wasm path", (t) => {
  // Probe Z30: a 1 MB manifest of short unknown keys made a 13 MB message and a 1.3 s stall, a
  // 900,000-character key was repeated whole, a deep array under a key made validate --json
  // overflow V8's string length, and a key's newline forged a line of the host's log.
  const keys = Array.from({ length: 3000 }, (_, index) => `k${index} = 1`).join('\n')
  const many = rejects(component({ memory: `max_bytes = 1048576\n${keys}` }))
  t.is(many.problems.length, 100)
  t.regex(many.message, /has 3000 problems:\n/)
  t.regex(many.message, /\n {2}- … and 2980 more$/)
  t.true(many.message.length < 4000, `${many.message.length} characters`)
  const long = rejects(component({ memory: `max_bytes = 1048576\n"${'x'.repeat(5000)}" = 1` }))
  t.is(long.path, 'resources.memory.(a string of 5000 UTF-16 units)')
  const forged = rejects(component({ memory: 'max_bytes = 1048576\n"a\\nINFO: all good" = 1' }))
  t.is(forged.path, 'resources.memory."a\\nINFO: all good"')
  t.false(forged.message.includes('\nINFO'), forged.message)
  const deep = rejects(component({ memory: `max_bytes = 1048576\nd = ${'['.repeat(400)}${']'.repeat(400)}` }))
  t.is(deep.value, 'an array')
  t.true(JSON.stringify(deep.problems, null, 2).length < 1000)
  const far = rejects(
    component({ component: `name = "demo"\nversion = "0.1.0"\nwasm = "${'w/'.repeat(5000)}x.wasm"` }),
  )
  t.is(far.path, 'component.wasm')
  t.true(far.message.length < 1500, `${far.message.length} characters`)
  t.true(String(far.value).length < 1000)
})

test("a manifest's own texts reach no message with a newline or whole: names, versions, globs, grants, paths", (t) => {
  // Probe H33: these were quoted raw, a newline making a line that read as another problem, and
  // an 800 KB name or version was repeated whole.
  const problems = rejects(
    component(
      { component: `name = "a\\n  - resources.cpu.max_fuel: fine"\nversion = "${'1'.repeat(300_000)}"` },
      { 'w/keep': '' },
    ),
  )
  t.false(problems.message.includes('\n  - resources.cpu.max_fuel: fine'), problems.message)
  t.regex(problems.message, /"a\\n {2}- resources\.cpu\.max_fuel: fine" must match/)
  t.true(problems.message.length < 2000, `${problems.message.length} characters`)
  const grants = rejects(
    component(
      {
        extra: `[permissions]
filesystem.read = ["[\\nFORGED_READ"]
filesystem.write = ["./w/nope\\nFORGED_WRITE"]
network.outbound = ["b\\nFORGED_NET:80"]`,
      },
      { 'w/keep': '' },
    ),
  )
  t.is(grants.problems.length, 3)
  for (const forged of ['FORGED_READ', 'FORGED_WRITE', 'FORGED_NET']) {
    t.false(new RegExp(`\\n\\s*${forged}`).test(grants.message), grants.message)
    t.regex(grants.message, new RegExp(`\\\\n${forged}`))
  }
})

test('filesystem.write grants at most 64 directories, each once', (t) => {
  const dirs = Object.fromEntries(Array.from({ length: 65 }, (_, index) => [`d${index}/keep`, '']))
  const list = (count: number) => Array.from({ length: count }, (_, index) => `"./d${index}"`).join(', ')
  t.notThrows(() =>
    loadManifest(component({ extra: `[permissions]\nfilesystem.write = [${list(64)}]` }, dirs)),
  )
  const many = rejects(component({ extra: `[permissions]\nfilesystem.write = [${list(65)}]` }, dirs))
  t.is(many.path, 'permissions.filesystem.write')
  t.regex(many.message, /at most 64 entries, got 65/)
  const twice = rejects(component({ extra: '[permissions]\nfilesystem.write = ["./d1", "d1/"]' }, dirs))
  t.regex(twice.message, /"d1\/" is granted twice/)
})
