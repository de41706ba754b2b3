// A real Rust WASI program (fixtures/wasi-fs), built for preview 1 (a core module) and preview 2 (a
// component), runs the filesystem, stdin, args/env, isatty and exit code operations real programs
// rely on. The guest checks each result itself; these tests assert its exit status, its exact
// output and what the host sees on disk afterwards.
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import { wasiFsComponentWasm, wasiFsModuleWasm } from '../../fixtures/index.js'
import { Engine, WasiExitError, type Instance, type WasiOptions } from '../../lib/index.js'
import { MiB } from '../helpers.js'

type Kind = 'component' | 'module'

interface Outcome {
  exitCode: number
  stdout: string
  stderr: string
}

const engine = new Engine()
const compiled = {
  component: engine.compileComponent(wasiFsComponentWasm),
  module: engine.compileModule(wasiFsModuleWasm),
}

/** An instance of the command with `args` after argv[0], and the export that runs it. */
async function start(
  kind: Kind,
  args: string[],
  wasi: WasiOptions,
): Promise<{ instance: Instance; entry: string }> {
  const options = {
    limits: { memoryBytes: 64 * MiB },
    timeoutMs: 30_000,
    wasi: { stdout: 'pipe', stderr: 'pipe', ...wasi, args: ['wasi-fs', ...args] } as WasiOptions,
  }
  if (kind === 'module')
    return { instance: await (await compiled.module).instantiate(options), entry: '_start' }
  const component = await compiled.component
  const exported = component.exports.find((item) => item.name.startsWith('wasi:cli/run@'))
  if (!exported) throw new Error('the component exports no wasi:cli/run')
  return { instance: await component.instantiate(options), entry: `${exported.name}#run` }
}

/** Runs the command to its end; a WasiExitError becomes its exit code. */
async function run(kind: Kind, args: string[], wasi: WasiOptions = {}): Promise<Outcome> {
  const { instance, entry } = await start(kind, args, wasi)
  let exitCode = 0
  try {
    await instance.call(entry)
  } catch (error) {
    if (!(error instanceof WasiExitError)) throw error
    exitCode = error.exitCode
  }
  return { exitCode, ...instance.takeOutput() }
}

/** Every check `fs` prints, in order: a check that is skipped or renamed fails the test. */
function fsChecks(kind: Kind): string[] {
  return [
    'create-new',
    'create-truncates',
    'open-truncate',
    'open-append',
    'open-read-only-refuses-writes',
    'open-missing',
    'write-read',
    'seek-tell',
    'set-len-truncate',
    'set-len-extend',
    'rename-file',
    'rename-file-overwrites',
    'rename-dir',
    'rename-dir-over-empty-dir',
    'rename-dir-over-non-empty-dir-fails',
    'hard-link',
    // A preview 1 module may make no links at all (the host cannot check their targets).
    ...(kind === 'module'
      ? ['symlink-refused']
      : ['symlink-file', 'symlink-dir', 'symlink-dangling', 'symlink-remove']),
    'escape-dotdot',
    'escape-symlink-relative',
    'escape-symlink-absolute',
    'escape-planted-links',
    'escape-write-through-link',
    'escape-rename-link-mkdir',
    'readdir',
    'readdir-types',
    'timestamps',
    'dir-timestamps',
    'unlink',
    'rmdir-empty',
    'rmdir-non-empty-fails',
    'remove-dir-all',
    'trailing-slash',
    'create-dir-all',
    'copy',
    // fd_renumber is a preview 1 call; preview 2 has no descriptor numbers to move.
    ...(kind === 'module' ? ['fd-renumber'] : []),
    'leave-files',
  ]
}

const SECRET = 'SECRET beside the preopen'

/**
 * One `fs` run per kind, shared by the tests that look at it: base/data is the writable preopen
 * `/data`, base/secret.txt sits beside it, and two links planted in data point at the secret.
 */
const fsRuns = new Map<Kind, Promise<{ base: string; dir: string; outcome: Outcome }>>()
function fsRun(kind: Kind) {
  let pending = fsRuns.get(kind)
  if (!pending) {
    const base = mkdtempSync(path.join(tmpdir(), `airssys-wasi-fs-${kind}-`))
    const dir = path.join(base, 'data')
    mkdirSync(dir)
    const secret = path.join(base, 'secret.txt')
    writeFileSync(secret, SECRET)
    symlinkSync(secret, path.join(dir, 'planted-abs'))
    symlinkSync('../secret.txt', path.join(dir, 'planted-rel'))
    pending = run(kind, ['fs', '/data', secret], {
      preopens: { '/data': { host: dir, write: true } },
    }).then((outcome) => ({ base, dir, outcome }))
    fsRuns.set(kind, pending)
  }
  return pending
}

test.after.always(async () => {
  for (const pending of fsRuns.values()) {
    const { base } = await pending.catch(() => ({ base: undefined }))
    if (base) rmSync(base, { recursive: true, force: true })
  }
})

for (const kind of ['module', 'component'] as const) {
  test(`a Rust WASI ${kind} passes every filesystem check on a writable preopen`, async (t) => {
    const { outcome } = await fsRun(kind)
    t.is(outcome.stderr, '', 'no check failed')
    t.is(outcome.exitCode, 0)
    t.deepEqual(
      outcome.stdout.split('\n').filter(Boolean),
      fsChecks(kind).map((name) => `ok ${name}`),
    )
  })

  test(`the host sees the files a Rust WASI ${kind} left in its writable preopen`, async (t) => {
    const { dir } = await fsRun(kind)
    const left = path.join(dir, 'left')
    t.is(readFileSync(path.join(left, 'hello.txt'), 'utf8'), 'written by the guest\n')
    t.is(readFileSync(path.join(left, 'sub', 'deep.txt'), 'utf8'), 'deep')
    if (kind === 'component') {
      t.true(lstatSync(path.join(left, 'link')).isSymbolicLink())
      t.is(readlinkSync(path.join(left, 'link')), 'hello.txt')
    } else {
      t.false(readdirSync(left).includes('link'))
    }
    t.is(statSync(path.join(left, 'hard.txt')).ino, statSync(path.join(left, 'hello.txt')).ino)
    t.is(readdirSync(path.join(dir, 'many')).length, 300)
    t.deepEqual(readFileSync(path.join(dir, 'seek.txt')), Buffer.from('0123456789\0\0X'))
    t.is(readFileSync(path.join(dir, 'append.txt'), 'utf8'), 'abc')
    t.is(statSync(path.join(dir, 'set-len.txt')).size, 8)
    t.true(statSync(path.join(dir, 'dir-to')).isDirectory())
    t.false(readdirSync(dir).includes('tree'), 'remove_dir_all removed the tree')
  })

  test(`a Rust WASI ${kind} never reads or writes the file beside its writable preopen`, async (t) => {
    const { base, dir, outcome } = await fsRun(kind)
    t.is(outcome.exitCode, 0)
    t.false(outcome.stdout.includes('SECRET'))
    t.false(outcome.stderr.includes('SECRET'))
    // Nothing was made, moved or linked beside the preopen, and the secret is untouched.
    t.deepEqual(readdirSync(base).sort(), ['data', 'secret.txt'])
    t.is(readFileSync(path.join(base, 'secret.txt'), 'utf8'), SECRET)
    // The control: a link the host planted does reach the secret, so the guest's failure to
    // follow it is the sandbox's doing.
    t.is(readFileSync(path.join(dir, 'planted-abs'), 'utf8'), SECRET)
    // Links with escaping targets were refused when made: the host finds none of them.
    for (const name of ['escape-rel', 'escape-parent', 'escape-abs', 'escape-root', 'escape-own']) {
      t.false(readdirSync(dir).includes(name), name)
    }
    t.deepEqual(readdirSync(path.join(dir, 'escape-nest')), [])
  })

  test(`every link a Rust WASI ${kind} left in its writable preopen resolves inside it on the host`, async (t) => {
    const { dir } = await fsRun(kind)
    const links: string[] = []
    const walk = (at: string) => {
      for (const entry of readdirSync(at, { withFileTypes: true })) {
        const full = path.join(at, entry.name)
        if (entry.isSymbolicLink()) links.push(full)
        else if (entry.isDirectory()) walk(full)
      }
    }
    walk(dir)
    const guestMade = links.filter((link) => !path.basename(link).startsWith('planted-'))
    if (kind === 'module') t.deepEqual(guestMade, [], 'a preview 1 module makes no links')
    else t.true(guestMade.length > 0, 'the guest made links')
    for (const link of guestMade) {
      // Followed lexically, as a host program reading the directory would.
      const target = path.resolve(path.dirname(link), readlinkSync(link))
      t.true(target.startsWith(dir + path.sep), `${path.relative(dir, link)} -> ${readlinkSync(link)}`)
    }
  })

  test(`a Rust WASI ${kind} reads the stdin it is given, as text or bytes`, async (t) => {
    const text = 'hello ✓\nline two'
    const fromText = await run(kind, ['stdin'], { stdin: text })
    t.is(fromText.stdout, `stdin: ${Buffer.byteLength(text)} bytes\n${text}`)
    t.is(fromText.exitCode, 0)
    const bytes = new Uint8Array([0x62, 0x79, 0x74, 0x65, 0x73, 0x00, 0x0a])
    const fromBytes = await run(kind, ['stdin'], { stdin: bytes })
    t.is(fromBytes.stdout, 'stdin: 7 bytes\nbytes\0\n')
    // More than one read's worth: the guest loops until end of file.
    const large = 'x'.repeat(100_000)
    t.is((await run(kind, ['stdin'], { stdin: large })).stdout, `stdin: 100000 bytes\n${large}`)
    t.is((await run(kind, ['stdin'])).stdout, 'stdin: 0 bytes\n', 'no stdin: end of file at once')
  })

  test(`a Rust WASI ${kind} sees its args and env`, async (t) => {
    const outcome = await run(kind, ['env', 'two words', 'ü'], {
      env: { B: '2', A: '1 = one', EMPTY: '' },
    })
    t.is(outcome.exitCode, 0)
    t.is(
      outcome.stdout,
      [
        'arg: wasi-fs',
        'arg: env',
        'arg: two words',
        'arg: ü',
        'env: A=1 = one',
        'env: B=2',
        'env: EMPTY=',
        '',
      ].join('\n'),
    )
  })

  test(`piped stdio of a Rust WASI ${kind} is not a terminal`, async (t) => {
    const expected = 'stdin: false\nstdout: false\nstderr: false\n'
    t.is((await run(kind, ['isatty'], { stdin: 'x' })).stdout, expected)
    t.is((await run(kind, ['isatty'])).stdout, expected)
  })

  test(`exit(3) from a Rust WASI ${kind} is a WasiExitError; exit(0) is success`, async (t) => {
    const { instance, entry } = await start(kind, ['exit', '3'], {})
    const error = await t.throwsAsync(instance.call(entry), { instanceOf: WasiExitError })
    t.is(error?.code, 'ERR_WASM_EXIT')
    // Rust's std on wasip2 reports any non-zero status as 1 (wasi:cli/exit takes a result).
    t.is(error?.exitCode, kind === 'module' ? 3 : 1)
    t.is((await run(kind, ['exit', '0'])).exitCode, 0)
  })
}
