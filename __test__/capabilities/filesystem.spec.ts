import { execFileSync } from 'node:child_process'
import fs, {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import fsPromises, { type FileHandle } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import { openBeneath } from '../../lib/capabilities/filesystem.js'
import {
  CapabilityDeniedError,
  createFilesystem,
  createPermissions,
  loadComponent,
  type PermissionOptions,
} from '../../lib/index.js'
import { assertDenied, capabilitiesGuest, capabilitiesDir, denials, guestErr } from './helpers.js'

const scratch = realpathSync(mkdtempSync(path.join(tmpdir(), 'airssys-filesystem-')))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

const SECRET = 'the secret that must not leak'

/**
 * base/                       the component's directory; `./data/**` is granted
 *   secret.txt                inside base, outside the grant
 *   data/allowed.txt
 *   data/deep/nested.txt
 *   data/big.bin              over the 1 KiB cap used below
 *   data/inside-link.txt  ->  data/allowed.txt  (a symlink is never followed, even this one)
 *   data/escape.txt       ->  ../secret.txt
 *   data/outside-dir      ->  <scratch>/outside
 * outside/secret.txt          a sibling of base
 */
function tree(): { base: string; outside: string } {
  const root = mkdtempSync(path.join(scratch, 'tree-'))
  const base = path.join(root, 'base')
  const outside = path.join(root, 'outside')
  mkdirSync(path.join(base, 'data', 'deep'), { recursive: true })
  mkdirSync(outside)
  writeFileSync(path.join(base, 'secret.txt'), SECRET)
  writeFileSync(path.join(outside, 'secret.txt'), SECRET)
  writeFileSync(path.join(base, 'data', 'allowed.txt'), 'allowed content ✓')
  writeFileSync(path.join(base, 'data', 'deep', 'nested.txt'), 'nested content')
  writeFileSync(path.join(base, 'data', 'big.bin'), new Uint8Array(4096))
  symlinkSync(path.join(base, 'data', 'allowed.txt'), path.join(base, 'data', 'inside-link.txt'))
  symlinkSync('../secret.txt', path.join(base, 'data', 'escape.txt'))
  symlinkSync(outside, path.join(base, 'data', 'outside-dir'))
  return { base, outside }
}

function guestFor(
  base: string,
  grants: Omit<PermissionOptions, 'baseDir'> = { filesystemRead: ['./data/**'] },
) {
  const seen = denials()
  const permissions = createPermissions({ ...grants, baseDir: base }, { onDenied: seen.onDenied })
  return { guest: capabilitiesGuest(permissions, { maxFileBytes: 1024 }), permissions, denied: seen.list }
}

test('an allowed file is read for real and reaches the guest', async (t) => {
  const { base } = tree()
  const { guest, permissions } = guestFor(base)
  t.is(await guest.call('read-file', ['data/allowed.txt']), 'allowed content ✓')
  t.is(await guest.call('read-file', ['./data/deep/nested.txt']), 'nested content')
  t.is(await guest.call('read-file', ['data/deep/../allowed.txt']), 'allowed content ✓', '.. staying inside')
  t.is(permissions.deniedCount, 0)
})

test('the host function returns the bytes as a Uint8Array', async (t) => {
  const { base } = tree()
  const filesystem = createFilesystem(createPermissions({ filesystemRead: ['data/*.txt'], baseDir: base }))
  const bytes = await filesystem.read('data/allowed.txt')
  t.true(bytes instanceof Uint8Array)
  t.is(Buffer.from(bytes).toString(), 'allowed content ✓')
})

const traversals: [string, (tree: { base: string; outside: string }) => string][] = [
  ['../ out of the grant', () => 'data/../secret.txt'],
  ['../ out of the base directory', () => '../outside/secret.txt'],
  ['../ from inside the grant to outside the base', () => 'data/deep/../../../outside/secret.txt'],
  ['an absolute path outside', ({ outside }) => path.join(outside, 'secret.txt')],
  ['an absolute system path', () => '/etc/passwd'],
  ['a symlink inside the grant pointing outside it', () => 'data/escape.txt'],
  ['a symlinked directory leading out of the base', () => 'data/outside-dir/secret.txt'],
  ['a path with URL-encoded dots (%2e%2e)', () => '%2e%2e/secret.txt'],
  ['a path with a URL-encoded slash (%2f)', () => 'data%2f..%2fsecret.txt'],
  ['a path with a NUL byte', () => 'data/allowed.txt\0../secret.txt'],
]

for (const [what, requestOf] of traversals) {
  test(`${what} is denied: the guest gets an err, the host a CapabilityDeniedError`, async (t) => {
    const layout = tree()
    const request = requestOf(layout)
    const { guest, permissions, denied } = guestFor(layout.base)
    const err = await guestErr(t, guest.call('read-file', [request]))
    t.regex(err, /^filesystem\.read denied: /)
    t.false(err.includes(SECRET))
    t.false(err.includes(layout.base), 'the err does not reveal host paths the guest did not write')
    t.is(denied.length, 1)
    assertDenied(t, denied[0], 'filesystem.read', request)
    t.is(denied[0]?.message, err)
    t.is(permissions.deniedCount, 1)
  })
}

test('URL escapes are never decoded: %2e%2e inside the grant is a plain (missing) name', async (t) => {
  const { base } = tree()
  const { guest, denied } = guestFor(base)
  const err = await guestErr(t, guest.call('read-file', ['data/%2e%2e/secret.txt']))
  t.is(err, '"data/%2e%2e/secret.txt": no such file')
  t.is(denied.length, 0)
})

test('a path longer than PATH_MAX is denied before it is looked at, and the denial repeats only its start', async (t) => {
  // Checking a path is linear in it, on the JS thread: a 23 MiB path blocked the event loop 5 s.
  const { base } = tree()
  const { guest, denied } = guestFor(base)
  const long = `data/${'a/'.repeat(1_000_000)}x.txt`
  const err = await guestErr(t, guest.call('read-file', [long]))
  t.regex(
    err,
    /^filesystem\.read denied: "data\/a\/a.*"… \(2000010 characters\) is longer than 4096 characters$/,
  )
  t.true(err.length < 400, err.slice(0, 100))
  t.is(denied.length, 1)
  // At the limit a path is read as any other.
  const atLimit = `data/${'./'.repeat(2043)}nope`
  t.is(atLimit.length, 4095)
  t.regex(await guestErr(t, guest.call('read-file', [atLimit])), /no such file$/)
})

test("the guest's path is quoted in denials and errs with what would forge a log line escaped", async (t) => {
  // onDenied hands a host these messages to log: U+2028 and U+202E came through raw (probe Z22).
  const { base } = tree()
  const { guest, denied } = guestFor(base)
  const err = await guestErr(t, guest.call('read-file', ['../A\u2028FAKE\u202eB']))
  t.true(err.startsWith('filesystem.read denied: "../A\\u2028FAKE\\u202eB"'), err)
  t.false(/[\u2028\u202e]/.test(denied[0]?.message ?? '\u2028'))
  t.regex(await guestErr(t, guest.call('read-file', ['data/A\u2029'])), /^"data\/A\\u2029": no such file$/)
})

test('a missing file is "no such file" inside the grant and denied outside it, so nothing leaks', async (t) => {
  const { base } = tree()
  const { guest, denied } = guestFor(base)
  t.is(await guestErr(t, guest.call('read-file', ['data/nope.txt'])), '"data/nope.txt": no such file')
  t.is(denied.length, 0)
  // Outside the grant an existing and a missing file get the same denial.
  const missing = await guestErr(t, guest.call('read-file', ['../outside/nope.txt']))
  const existing = await guestErr(t, guest.call('read-file', ['../outside/secret.txt']))
  t.is(missing.replace('nope', 'secret'), existing)
  t.is(denied.length, 2)
})

test('without a filesystem grant every read is denied, even of files in the base directory', async (t) => {
  const { base } = tree()
  const { guest, denied } = guestFor(base, {})
  const err = await guestErr(t, guest.call('read-file', ['data/allowed.txt']))
  t.regex(err, /reading files is not granted/)
  assertDenied(t, denied[0], 'filesystem.read', 'data/allowed.txt')
})

test('a file over the size cap and a directory are errs, not denials', async (t) => {
  const { base } = tree()
  const { guest, denied } = guestFor(base)
  t.is(
    await guestErr(t, guest.call('read-file', ['data/big.bin'])),
    '"data/big.bin": larger than the 1024-byte cap',
  )
  t.is(await guestErr(t, guest.call('read-file', ['data/deep'])), '"data/deep": is a directory')
  t.is(denied.length, 0)
})

test('a FIFO inside the grant is an err at once, not a read that waits for a writer', async (t) => {
  const { base } = tree()
  execFileSync('mkfifo', [path.join(base, 'data', 'pipe')])
  const { guest, denied } = guestFor(base)
  t.is(await guestErr(t, guest.call('read-file', ['data/pipe'])), '"data/pipe": not a regular file')
  t.is(denied.length, 0)
})

test('through loadComponent the manifest grants reads relative to its directory', async (t) => {
  const dir = capabilitiesDir(scratch, { permissions: ['filesystem.read = ["./data/*.txt"]'] })
  mkdirSync(path.join(dir, 'data'))
  writeFileSync(path.join(dir, 'data', 'hello.txt'), 'hello from the manifest directory')
  writeFileSync(path.join(dir, 'secret.txt'), SECRET)
  const seen = denials()
  using sandbox = await loadComponent(dir, { onDenied: seen.onDenied })
  t.is(await sandbox.call('read-file', ['data/hello.txt']), 'hello from the manifest directory')
  const err = await guestErr(t, sandbox.call('read-file', ['data/../secret.txt']))
  t.regex(err, /^filesystem\.read denied/)
  await guestErr(t, sandbox.call('read-file', ['Component.toml']))
  t.is(seen.list.length, 2)
  assertDenied(t, seen.list[0], 'filesystem.read', 'data/../secret.txt')
  const metrics = sandbox.metrics()
  t.is(metrics.capabilityDenials, 2)
  t.is(metrics.restarts, 0, 'a denial is an err for the guest, not a trap')
})

test('a manifest without [permissions] gets the interfaces linked, and every read denied', async (t) => {
  const dir = capabilitiesDir(scratch)
  writeFileSync(path.join(dir, 'data.txt'), 'data')
  using sandbox = await loadComponent(dir)
  t.regex(await guestErr(t, sandbox.call('read-file', ['data.txt'])), /not granted/)
  t.is(sandbox.metrics().capabilityDenials, 1)
})

/**
 * Records every filesystem call made through `node:fs` and `node:fs/promises` (named imports
 * included, through `syncBuiltinESMExports`) until `restore`. Serial tests only: it sees every
 * caller in the process.
 */
function spyOnFilesystem(): { calls: string[]; restore: () => void } {
  const calls: string[] = []
  const names = ['open', 'realpath', 'lstat', 'stat', 'access', 'opendir', 'readdir', 'readlink', 'readFile']
  const restorers: (() => void)[] = []
  const wrap = (target: Record<string, unknown>, name: string, label: string) => {
    const original = target[name]
    if (typeof original !== 'function') return
    target[name] = function (this: unknown, ...args: unknown[]) {
      calls.push(`${label}(${String(args[0])})`)
      return (original as (...args: unknown[]) => unknown).apply(this, args)
    }
    restorers.push(() => (target[name] = original))
  }
  for (const name of names) {
    wrap(fsPromises as unknown as Record<string, unknown>, name, `promises.${name}`)
    wrap(fs as unknown as Record<string, unknown>, name, name)
    wrap(fs as unknown as Record<string, unknown>, `${name}Sync`, `${name}Sync`)
  }
  syncBuiltinESMExports()
  return {
    calls,
    restore: () => {
      for (const restore of restorers) restore()
      syncBuiltinESMExports()
    },
  }
}

test.serial(
  'absolute, UNC, drive and escaping paths are denied without touching the filesystem',
  async (t) => {
    const { base, outside } = tree()
    const seen = denials()
    const filesystem = createFilesystem(
      createPermissions({ filesystemRead: ['./data/**', '**/*.txt'], baseDir: base }, seen),
    )
    const requests = [
      '/etc/passwd',
      path.join(base, 'data', 'allowed.txt'),
      path.join(outside, 'secret.txt'),
      '//server/share/data/file.txt',
      '\\\\server\\share\\data\\file.txt',
      '\\\\?\\C:\\data\\file.txt',
      'C:\\data\\file.txt',
      'C:data/file.txt',
      'c:/data/file.txt',
      '../outside/secret.txt',
      'data/../../outside/secret.txt',
      'data/deep/../../../outside/secret.txt',
      'data\\..\\secret.txt',
      '/automount/server/that/would/hang/file.txt',
    ]
    const spy = spyOnFilesystem()
    try {
      for (const request of requests) {
        const error = await t.throwsAsync(filesystem.read(request), { instanceOf: CapabilityDeniedError })
        t.is(error?.code, 'ERR_WASM_CAPABILITY_DENIED', request)
        t.is(error?.request, request)
        t.regex(error?.message ?? '', /^filesystem\.read denied: /)
      }
    } finally {
      spy.restore()
    }
    t.deepEqual(spy.calls, [], 'no filesystem call was made for a refused path')
    t.is(seen.list.length, requests.length)
  },
)

test.serial('a granted path is read after the lexical check, without realpath', async (t) => {
  const { base } = tree()
  const filesystem = createFilesystem(createPermissions({ filesystemRead: ['./data/**'], baseDir: base }))
  const spy = spyOnFilesystem()
  let bytes: Uint8Array | undefined
  try {
    bytes = await filesystem.read('data/deep/../allowed.txt')
  } finally {
    spy.restore()
  }
  t.is(Buffer.from(bytes ?? []).toString(), 'allowed content ✓', '.. that stays inside is resolved lexically')
  t.false(
    spy.calls.some((call) => call.includes('realpath')),
    spy.calls.join('\n'),
  )
})

test('a symlinked directory inside the grant is not followed, even to a target inside it', async (t) => {
  const { base } = tree()
  symlinkSync(path.join(base, 'data', 'deep'), path.join(base, 'data', 'alias'))
  const seen = denials()
  const filesystem = createFilesystem(
    createPermissions({ filesystemRead: ['./data/**'], baseDir: base }, seen),
  )
  for (const request of ['data/alias/nested.txt', 'data/inside-link.txt']) {
    const error = await t.throwsAsync(filesystem.read(request), { instanceOf: CapabilityDeniedError })
    t.is(error?.code, 'ERR_WASM_CAPABILITY_DENIED')
    t.is(error?.capability, 'filesystem.read')
    t.is(
      error?.message,
      `filesystem.read denied: "${request}" passes through a symbolic link, which is not followed`,
    )
  }
  t.is(seen.list.length, 2)
})

test('a grant whose directory is a symlink, even one inside the base directory, reads nothing', async (t) => {
  const { base } = tree()
  symlinkSync(path.join(base, 'data'), path.join(base, 'alias'))
  const filesystem = createFilesystem(createPermissions({ filesystemRead: ['./alias/**'], baseDir: base }))
  await t.throwsAsync(filesystem.read('alias/allowed.txt'), {
    instanceOf: CapabilityDeniedError,
    message: /passes through a symbolic link/,
  })
})

/**
 * Replaces `node:fs/promises` `open` so that opening a path whose last name is `trigger` first
 * swaps `directory` for a symlink to `replacement`: the race a guest with write access next to the
 * grant could run, made deterministic. Returns the undo.
 */
function swapOnOpen(trigger: string, directory: string, replacement: string): () => void {
  const original = fsPromises.open
  let swapped = false
  fsPromises.open = (async (file: fs.PathLike, ...rest: unknown[]) => {
    if (!swapped && path.basename(String(file)) === trigger) {
      swapped = true
      renameSync(directory, `${directory}-checked`)
      symlinkSync(replacement, directory)
    }
    return (original as (...args: unknown[]) => Promise<FileHandle>)(file, ...rest)
  }) as typeof fsPromises.open
  syncBuiltinESMExports()
  return () => {
    fsPromises.open = original
    syncBuiltinESMExports()
  }
}

test.serial('a directory swapped for a symlink between the check and the open does not leak', async (t) => {
  const { base, outside } = tree()
  mkdirSync(path.join(base, 'data', 'sub'))
  writeFileSync(path.join(base, 'data', 'sub', 'target.txt'), 'the checked file')
  writeFileSync(path.join(outside, 'target.txt'), SECRET)
  const filesystem = createFilesystem(createPermissions({ filesystemRead: ['./data/**'], baseDir: base }))
  const undo = swapOnOpen('target.txt', path.join(base, 'data', 'sub'), outside)
  let outcome: string
  try {
    outcome = Buffer.from(await filesystem.read('data/sub/target.txt')).toString()
  } catch (error) {
    outcome = (error as Error).message
  } finally {
    undo()
  }
  t.true(lstatSync(path.join(base, 'data', 'sub')).isSymbolicLink(), 'the swap happened')
  t.false(outcome.includes(SECRET), outcome)
  // Opened relative to the directory that was checked: the guest gets the file that was granted.
  t.is(outcome, 'the checked file')
})

test.serial(
  'without /proc, a directory swapped before the open is caught by the check after it',
  async (t) => {
    const { base, outside } = tree()
    mkdirSync(path.join(base, 'data', 'sub'))
    writeFileSync(path.join(base, 'data', 'sub', 'target.txt'), 'the checked file')
    writeFileSync(path.join(outside, 'target.txt'), SECRET)
    const undo = swapOnOpen('target.txt', path.join(base, 'data', 'sub'), outside)
    try {
      const error = await t.throwsAsync(openBeneath(base, ['data', 'sub', 'target.txt'], { procfs: false }))
      t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ELOOP')
    } finally {
      undo()
    }
    t.true(lstatSync(path.join(base, 'data', 'sub')).isSymbolicLink(), 'the swap happened')
  },
)

test('without /proc, symlinks in any component are refused and files are opened', async (t) => {
  const { base } = tree()
  const open = (...names: string[]) => openBeneath(base, names, { procfs: false })
  const handle = await open('data', 'allowed.txt')
  t.is((await handle.readFile('utf8')) as string, 'allowed content ✓')
  await handle.close()
  for (const names of [
    ['data', 'outside-dir', 'secret.txt'],
    ['data', 'escape.txt'],
  ]) {
    const error = await t.throwsAsync(open(...names))
    t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ELOOP', names.join('/'))
  }
  const missing = await t.throwsAsync(open('data', 'nope.txt'))
  t.is((missing as NodeJS.ErrnoException | undefined)?.code, 'ENOENT')
})
