/**
 * A 1 MiB core module: compiling it cold against V8's eager optimizing compile (TurboFan for every
 * function, in a child process started with `--no-wasm-lazy-compilation --no-liftoff`, because those
 * flags are process-wide), compiling the same bytes again, `deserializeModule` of its precompiled
 * code, and loading it from the on-disk cache (`cacheDir`) in a new engine.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import { Engine, type Module } from '../lib/index.js'
import { expectEqual, KiB, MiB, type Scenario } from './harness.js'
import { largeModuleBytes, withNonce } from './wasm.js'

const EAGER_FLAGS = ['--no-wasm-lazy-compilation', '--no-liftoff']

/**
 * The child: keeps the bytes it is sent; for each request writes a new nonce into them, compiles
 * with V8 and answers with `run(3, 4)` of the first instance (a check) or `true`. The nonce is the
 * last 8 bytes (see `withNonce`), so V8's native-module cache never answers.
 */
const CHILD_SOURCE = `
let bytes
let nonce = 0n
process.on('message', (message) => {
  if (message.bytes) { bytes = message.bytes; process.send({ ready: process.execArgv }); return }
  new DataView(bytes.buffer, bytes.byteOffset + bytes.length - 8, 8).setBigUint64(0, ++nonce, true)
  const module = new WebAssembly.Module(bytes)
  process.send({ result: message.check ? new WebAssembly.Instance(module).exports.run(3, 4) : true })
})
`

interface EagerCompiler {
  compile: (check?: boolean) => Promise<unknown>
  stop: () => void
}

async function startEagerCompiler(bytes: Uint8Array): Promise<EagerCompiler> {
  const child: ChildProcess = spawn(process.execPath, [...EAGER_FLAGS, '-e', CHILD_SOURCE], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  })
  let pending: { resolve: (value: unknown) => void; reject: (error: unknown) => void } | undefined
  const settle = (outcome: { value: unknown } | { error: unknown }) => {
    const waiting = pending
    pending = undefined
    if ('error' in outcome) waiting?.reject(outcome.error)
    else waiting?.resolve(outcome.value)
  }
  child.on('message', (message: { ready?: string[]; result?: unknown }) =>
    settle({ value: message.ready ?? message.result }),
  )
  child.on('error', (error) => settle({ error }))
  child.on('exit', (code) => settle({ error: new Error(`the V8 eager-compile child exited with ${code}`) }))
  const ask = (message: object) =>
    new Promise<unknown>((resolve, reject) => {
      pending = { resolve, reject }
      child.send(message)
    })
  const flags = (await ask({ bytes })) as string[]
  expectEqual(
    'eager child flags',
    EAGER_FLAGS.every((flag) => flags.includes(flag)),
    true,
  )
  return { compile: (check = false) => ask({ check }), stop: () => child.kill() }
}

export const largeModule: Scenario = {
  name: 'large-module',
  title: 'A 1 MiB core module: compile, cache, deserialize',
  async setup() {
    const bytes = largeModuleBytes(1 * MiB)
    // The cold rows change a nonce before each compile; the other rows keep to unchanged bytes.
    const cold = withNonce(bytes)
    const engine = new Engine()
    const winch = new Engine({ compiler: 'winch' })
    const expected = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.run as (
      a: number,
      b: number,
    ) => number
    const want = expected(3, 4)
    const compiled = engine.compileModuleSync(bytes)
    /** `run(3, 4)` in a fresh instance of `module`: every way of getting the module must agree. */
    const run = (module: Module) =>
      module.instantiateSync({ limits: { memoryBytes: 64 * KiB } }).callSync('run', [3, 4])
    expectEqual('our run(3, 4)', run(compiled), want)
    expectEqual('Winch run(3, 4)', run(winch.compileModuleSync(bytes)), want)
    const eager = await startEagerCompiler(cold.bytes)
    expectEqual('V8 eager run(3, 4)', await eager.compile(true), want)

    const precompiled = compiled.serialize()
    const fresh = new Engine()
    expectEqual('deserialized run(3, 4)', run(fresh.deserializeModule(precompiled)), want)
    const cacheDir = mkdtempSync(path.join(tmpdir(), 'airssys-bench-cache-'))
    new Engine({ cacheDir }).compileModuleSync(bytes)
    const fromDisk = new Engine({ cacheDir })
    expectEqual('disk-cached run(3, 4)', run(fromDisk.compileModuleSync(bytes)), want)
    expectEqual('disk cache hits', fromDisk.cacheStats?.hits, 1)
    const size = `${(bytes.length / MiB).toFixed(2)} MiB, ${largeModuleBytes.name} in bench/wasm.ts`

    return {
      rows: [
        {
          id: 'node-eager-cold',
          title: 'Node: new WebAssembly.Module, eager TurboFan (1 MiB, cold)',
          note:
            `Baseline. V8 compiling the module (${size}) with every function optimized up front, in a ` +
            `child process started with ${EAGER_FLAGS.join(' ')}, a fresh nonce each time; includes an ` +
            'IPC round trip to the child (tens of µs, under 0.1% of a compile). V8 compiles on ' +
            'background threads, as Cranelift does.',
          runAsync: async () => {
            await eager.compile()
          },
        },
        {
          id: 'module-cold',
          title: 'compileModuleSync (1 MiB, cold)',
          note:
            'The same module through wasmtime (Cranelift, opt-level speed, parallel compilation), a ' +
            'fresh nonce each time (and no cacheDir). Ratio: to V8 eager.',
          baselines: ['node-eager-cold'],
          run: () => {
            cold.next()
            engine.compileModuleSync(cold.bytes)
          },
        },
        {
          id: 'winch-cold',
          title: "new Engine({ compiler: 'winch' }): compileModuleSync (1 MiB, cold)",
          note:
            "The same module through wasmtime's baseline compiler (Winch: one pass, no optimization), " +
            'a fresh nonce each time. Ratio: to V8 eager and to Cranelift. What its code costs to run: ' +
            'the programs scenario.',
          baselines: ['node-eager-cold', 'module-cold'],
          run: () => {
            cold.next()
            winch.compileModuleSync(cold.bytes)
          },
        },
        {
          id: 'node-module-same',
          title: 'Node: new WebAssembly.Module (1 MiB, same bytes)',
          note: 'Baseline. V8 compiling bytes it compiled before: its native-module cache answers (it hashes and compares the bytes).',
          run: () => {
            new WebAssembly.Module(bytes)
          },
        },
        {
          id: 'module-same',
          title: 'compileModuleSync (1 MiB, same bytes)',
          note:
            'The same bytes again on the same engine: the in-process cache answers after hashing the ' +
            'bytes with SHA-256. Ratio: to V8 on the same bytes.',
          baselines: ['node-module-same'],
          run: () => {
            engine.compileModuleSync(bytes)
          },
        },
        {
          id: 'deserialize',
          title: `deserializeModule (${(precompiled.length / MiB).toFixed(1)} MiB of precompiled code)`,
          note:
            'Loading serialize() output of the 1 MiB module from memory on another engine: wasmtime ' +
            'copies it into fresh executable memory. Ratio: to a cold compile.',
          baselines: ['module-cold'],
          run: () => {
            fresh.deserializeModule(precompiled)
          },
        },
        {
          id: 'disk-cache-hit',
          title: 'new Engine({ cacheDir }) + compileModuleSync (1 MiB, on disk)',
          note:
            'A new engine (so the in-process cache is empty) compiling bytes another engine compiled ' +
            'into the same cacheDir: SHA-256 of the bytes (once in the TS layer, once in Rust for the ' +
            'file name), then the file is read, its SHA-256 trailer checked and its code loaded (copied into fresh executable memory, as deserialize does). Ratio: to a cold compile.',
          baselines: ['module-cold'],
          run: () => {
            new Engine({ cacheDir }).compileModuleSync(bytes)
          },
        },
      ],
      teardown: () => {
        eager.stop()
        engine.close()
        fresh.close()
        rmSync(cacheDir, { recursive: true, force: true })
      },
    }
  },
}
