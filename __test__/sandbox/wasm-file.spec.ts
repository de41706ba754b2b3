import { execFileSync } from 'node:child_process'
import {
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import fsPromises, { type FileHandle } from 'node:fs/promises'
import { syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import { inspect } from '../../lib/cli/inspect.js'
import { validate } from '../../lib/cli/validate.js'
import { ConfigError, Engine, loadComponent, loadManifest } from '../../lib/index.js'
import { readComponentWasm } from '../../lib/sandbox/paths.js'
import { MiB, helloWasm, root } from '../helpers.js'

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-wasm-file-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

const runawayWasm = path.join(root, 'examples', 'runaway', 'runaway.wasm')

/**
 * A component directory whose manifest names `bin/hello.wasm` (a copy of hello), and a directory
 * outside it holding a different component (runaway) under the same name.
 */
function layout(): { dir: string; bin: string; outside: string } {
  const base = mkdtempSync(path.join(scratch, 'case-'))
  const dir = path.join(base, 'component')
  const bin = path.join(dir, 'bin')
  const outside = path.join(base, 'outside')
  mkdirSync(bin, { recursive: true })
  mkdirSync(outside)
  copyFileSync(helloWasm, path.join(bin, 'hello.wasm'))
  copyFileSync(runawayWasm, path.join(outside, 'hello.wasm'))
  writeFileSync(
    path.join(dir, 'Component.toml'),
    [
      '[component]',
      'name = "hello"',
      'version = "0.1.0"',
      'wasm = "bin/hello.wasm"',
      '[resources.memory]',
      `max_bytes = ${2 * MiB}`,
      '[resources.cpu]',
      'max_fuel = 10000000',
      'timeout_ms = 1000',
    ].join('\n'),
  )
  return { dir, bin, outside }
}

/** Swaps `directory` for a symlink to `replacement`, keeping the original aside. */
function swap(directory: string, replacement: string): void {
  renameSync(directory, `${directory}-checked`)
  symlinkSync(replacement, directory)
}

/**
 * Makes the race deterministic: the first time anything opens or reads a path whose last name is
 * `trigger` (through `open` or `readFile` of node:fs/promises), `directory` is swapped for a symlink
 * to `replacement` just before. Returns the undo.
 */
function swapOnAccess(trigger: string, directory: string, replacement: string): () => void {
  const { open, readFile } = fsPromises
  let swapped = false
  const maybeSwap = (file: unknown) => {
    if (!swapped && typeof file === 'string' && path.basename(file) === trigger) {
      swapped = true
      swap(directory, replacement)
    }
  }
  fsPromises.open = (async (file: string, ...rest: unknown[]) => {
    maybeSwap(file)
    return (open as (...args: unknown[]) => Promise<FileHandle>)(file, ...rest)
  }) as typeof fsPromises.open
  fsPromises.readFile = (async (file: string, ...rest: unknown[]) => {
    maybeSwap(file)
    return (readFile as (...args: unknown[]) => Promise<Buffer>)(file, ...rest)
  }) as typeof fsPromises.readFile
  syncBuiltinESMExports()
  return () => {
    fsPromises.open = open
    fsPromises.readFile = readFile
    syncBuiltinESMExports()
  }
}

/** A CliOutput that keeps what is written. */
function capture(): {
  io: { stdout: { write(text: string): void }; stderr: { write(text: string): void } }
  out: () => string
} {
  let text = ''
  const sink = { write: (chunk: string) => void (text += chunk) }
  return { io: { stdout: sink, stderr: sink }, out: () => text }
}

function assertWasmRefused(t: import('ava').ExecutionContext, error: unknown, message: RegExp): void {
  t.true(error instanceof ConfigError, String(error))
  const config = error as ConfigError
  t.is(config.code, 'ERR_WASM_CONFIG')
  t.is(config.path, 'component.wasm')
  t.regex(config.message, /component\.wasm/)
  t.regex(config.message, message)
}

test.serial(
  'loadComponent compiles the wasm that was checked even when its directory is swapped for a symlink at the open',
  async (t) => {
    const { dir, bin, outside } = layout()
    const undo = swapOnAccess('hello.wasm', bin, outside)
    try {
      using sandbox = await loadComponent(dir)
      t.true(lstatSync(bin).isSymbolicLink(), 'the swap happened')
      // Opened one name at a time below the directory already held: hello, not runaway.
      t.deepEqual(
        sandbox.component.exports.map((item) => item.name),
        ['greet'],
      )
      t.is(await sandbox.call('greet', ['race']), 'Hello, race!')
    } finally {
      undo()
    }
  },
)

test.serial(
  'validate and inspect read the checked wasm when its directory is swapped at the open',
  async (t) => {
    for (const [name, command] of [
      ['validate', validate],
      ['inspect', inspect],
    ] as const) {
      const { dir, bin, outside } = layout()
      const { io, out } = capture()
      const undo = swapOnAccess('hello.wasm', bin, outside)
      try {
        t.is(await command([dir, '--json'], io), 0, name)
      } finally {
        undo()
      }
      t.true(lstatSync(bin).isSymbolicLink(), `${name}: the swap happened`)
      const exports = (JSON.parse(out()) as { exports: { name: string }[] }).exports.map((item) => item.name)
      t.deepEqual(exports, ['greet'], name)
    }
  },
)

test('the wasm is read from below the checked directory: a swap after loadManifest is refused', async (t) => {
  const { dir, bin, outside } = layout()
  const manifest = loadManifest(dir)
  t.is(manifest.wasmPath, path.join(bin, 'hello.wasm'), 'wasmPath stays as information')
  swap(bin, outside)
  const error = await t.throwsAsync(readComponentWasm(manifest, 64 * MiB))
  assertWasmRefused(t, error, /symlink/)
})

test('a wasm path whose directory is a symlink to outside is refused', async (t) => {
  const { dir, bin, outside } = layout()
  rmSync(bin, { recursive: true })
  symlinkSync(outside, bin)
  assertWasmRefused(
    t,
    t.throws(() => loadManifest(dir)),
    /leaves the manifest's directory through a symlink/,
  )
  assertWasmRefused(t, await t.throwsAsync(loadComponent(dir)), /through a symlink/)
  const { io } = capture()
  assertWasmRefused(t, await t.throwsAsync(validate([dir], io)), /through a symlink/)
  assertWasmRefused(t, await t.throwsAsync(inspect([dir], io)), /through a symlink/)
})

test('a wasm file that is itself a symlink is refused, even one to a file inside the directory', async (t) => {
  const { dir, bin, outside } = layout()
  const wasm = path.join(bin, 'hello.wasm')
  const checked = loadManifest(dir)
  renameSync(wasm, path.join(bin, 'real.wasm'))
  symlinkSync(path.join(outside, 'hello.wasm'), wasm)
  assertWasmRefused(
    t,
    await t.throwsAsync(loadComponent(dir)),
    /leaves the manifest's directory through a symlink/,
  )

  rmSync(wasm)
  symlinkSync('real.wasm', wasm)
  assertWasmRefused(t, await t.throwsAsync(loadComponent(dir)), /passes through a symlink \("hello\.wasm"\)/)
  // The manifest's check is not the only one: the open follows no symlink either.
  assertWasmRefused(
    t,
    await t.throwsAsync(readComponentWasm(checked, 64 * MiB)),
    /symlink, which is not followed/,
  )
})

test('a wasm file larger than the engine’s maxModuleBytes is refused before its bytes are read', async (t) => {
  const { dir, bin } = layout()
  const wasm = path.join(bin, 'hello.wasm')
  // Above the 64 MiB default; sparse, so the test writes no data.
  const huge = path.join(bin, 'huge.wasm')
  writeFileSync(huge, '')
  truncateSync(huge, 64 * MiB + 1)
  renameSync(huge, wasm)
  const error = await t.throwsAsync(loadComponent(dir))
  assertWasmRefused(t, error, /is larger than 64 MiB, the engine's maxModuleBytes/)

  // The limit is the engine's own: a smaller one refuses hello itself.
  copyFileSync(helloWasm, wasm)
  using engine = new Engine({ fuel: true, maxModuleBytes: 1024 })
  t.is(engine.maxModuleBytes, 1024)
  using defaults = new Engine()
  t.is(defaults.maxModuleBytes, 64 * MiB, 'the default')
  assertWasmRefused(t, await t.throwsAsync(loadComponent(dir, { engine })), /is larger than 1 KiB/)
  using sandbox = await loadComponent(dir)
  t.is(await sandbox.call('greet', ['size']), 'Hello, size!')
})

test('a wasm path that is a directory or a FIFO is refused without waiting', async (t) => {
  const { dir, bin } = layout()
  const manifest = loadManifest(dir)
  const wasm = path.join(bin, 'hello.wasm')
  rmSync(wasm)
  mkdirSync(wasm)
  assertWasmRefused(t, await t.throwsAsync(readComponentWasm(manifest, 64 * MiB)), /is not a file/)
  rmSync(wasm, { recursive: true })
  execFileSync('mkfifo', [wasm])
  assertWasmRefused(t, await t.throwsAsync(readComponentWasm(manifest, 64 * MiB)), /is not a file/)
  rmSync(wasm)
  assertWasmRefused(t, await t.throwsAsync(readComponentWasm(manifest, 64 * MiB)), /does not exist/)
})
