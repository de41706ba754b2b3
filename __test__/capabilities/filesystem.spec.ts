import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import {
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
 *   data/inside-link.txt  ->  data/allowed.txt
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
  t.is(
    await guest.call('read-file', ['data/inside-link.txt']),
    'allowed content ✓',
    'a symlink within the grant',
  )
  t.is(
    await guest.call('read-file', [path.join(base, 'data/allowed.txt')]),
    'allowed content ✓',
    'absolute, inside',
  )
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
