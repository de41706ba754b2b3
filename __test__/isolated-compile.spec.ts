import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout } from 'node:timers/promises'

import test from 'ava'

import {
  CompileError,
  ConfigError,
  DisposedError,
  Engine,
  loadComponent,
  type ValidationResult,
} from '../lib/index.js'
import { MiB, root, tempDir, typeScriptWorker, typesImports, typesWasm, watComponentDir } from './helpers.js'

/**
 * M ifs that each change a local: Cranelift's register allocator takes time growing with the
 * square of their number (SECURITY.md, finding 49, the part no bound refuses; locals and values
 * live across many blocks are refused, findings 49 and 65). 80,000 (5 MB of WAT) take some 22 s
 * of CPU and 540 MB here, 4.3 s on an engine with fuel: far past the deadlines below on any
 * machine, and the small compiles beside it get 5 s.
 */
function changedInIfs(count: number): string {
  const changed = 'local.get 0 if local.get 1 i32.const 7 i32.add local.set 1 end '
  return `(module (func (export "f") (param i32) (result i32) (local i32) ${changed.repeat(count)} local.get 1))`
}

const bomb = changedInIfs(80_000)
const answer = '(module (func (export "answer") (result i32) i32.const 42))'

function answerOf(module: ReturnType<Engine['compileModuleSync']>): unknown {
  return module.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('answer', [])
}

test.serial(
  'a compile past compileLimits.timeoutMs is stopped with a CompileError, sync and async',
  async (t) => {
    // Time enough for a small compile on a loaded machine (other spec files run beside these).
    const engine = new Engine({ compileLimits: { timeoutMs: 5_000 } })
    const tooLong =
      /^compiling took longer than compileLimits\.timeoutMs \(5000 ms\); the compiling process was stopped$/
    await t.throwsAsync(engine.compileModule(bomb), { instanceOf: CompileError, message: tooLong })
    t.throws(() => engine.compileModuleSync(bomb), { instanceOf: CompileError, message: tooLong })
    // The engine goes on compiling, and a failed compile was not remembered.
    t.is(answerOf(await engine.compileModule(answer)), 42)
    await t.throwsAsync(engine.compileModule(bomb), { instanceOf: CompileError, message: tooLong })
  },
)

test.serial(
  'a compile that takes more than compileLimits.memoryBytes is stopped with a CompileError',
  async (t) => {
    const engine = new Engine({ compileLimits: { memoryBytes: 32 * MiB } })
    const tooMuch =
      /^compiling took more memory than compileLimits\.memoryBytes \(33554432 bytes\); the compiling process was stopped$/
    await t.throwsAsync(engine.compileModule(bomb), { instanceOf: CompileError, message: tooMuch })
    t.throws(() => engine.compileModuleSync(bomb), { instanceOf: CompileError, message: tooMuch })
    // A compile of the same shape within the bound succeeds.
    const module = await engine.compileModule(changedInIfs(200))
    t.is(module.instantiateSync({ limits: { memoryBytes: MiB } }).callSync('f', [1]), 1400)
  },
)

test.serial('code compiled in a child runs as code compiled here, and failures read the same', async (t) => {
  const here = new Engine()
  const isolated = new Engine({ compileLimits: {} })
  const components = [await isolated.compileComponent(typesWasm), isolated.compileComponentSync(typesWasm)]
  for (const component of components) {
    t.deepEqual(component.exports, here.compileComponentSync(typesWasm).exports)
    const instance = await component.instantiate({
      limits: { memoryBytes: 4 * MiB },
      imports: typesImports([]),
    })
    t.deepEqual(await instance.call('roundtrip-list-string', [['héllo', '']]), ['héllo', ''])
  }
  t.is(answerOf(isolated.compileModuleSync(answer)), 42)
  // What the child's compile refused reaches the caller as the same error.
  const invalid = '(module (func (result i32) i64.const 0))'
  const expected = t.throws(() => here.compileModuleSync(invalid), { instanceOf: CompileError })
  t.throws(() => isolated.compileModuleSync(invalid), {
    instanceOf: CompileError,
    message: expected?.message,
  })
  await t.throwsAsync(isolated.compileModule(invalid), {
    instanceOf: CompileError,
    message: expected?.message,
  })
  // So does what is refused before any child starts.
  await t.throwsAsync(
    isolated.compileComponent(path.join(root, 'fixtures', 'build', 'wasi-cli.module.wasm')),
    {
      instanceOf: CompileError,
      message: /^expected a component but got a core wasm module/,
    },
  )
  isolated.close()
  await t.throwsAsync(isolated.compileModule(answer), { instanceOf: DisposedError })
})

/** `answer` as a binary (the on-disk cache keeps binaries: text is parsed by the child only). */
const answerBinary = Uint8Array.from([
  ...[0, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
  ...[1, 5, 1, 0x60, 0, 1, 0x7f],
  ...[3, 2, 1, 0],
  ...[7, 10, 1, 6, ...new TextEncoder().encode('answer'), 0, 0],
  ...[10, 6, 1, 4, 0, 0x41, 42, 0x0b],
])

test.serial('with cacheDir, what a child compiled is stored, and a hit starts no child', async (t) => {
  const cacheDir = tempDir(t, 'isolated-cache')
  const first = new Engine({ cacheDir, compileLimits: {} })
  t.is(answerOf(await first.compileModule(answerBinary)), 42)
  t.deepEqual(first.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
  // A child could not start and compile within 1 ms: the hit is this process's own load.
  const second = new Engine({ cacheDir, compileLimits: { timeoutMs: 1 } })
  t.is(answerOf(second.compileModuleSync(answerBinary)), 42)
  const third = new Engine({ cacheDir, compileLimits: { timeoutMs: 1 } })
  t.is(answerOf(await third.compileModule(answerBinary)), 42)
  t.deepEqual(second.cacheStats, { hits: 1, misses: 0, writeFailures: 0 })
  // A child validates, binaries too: a component's types, checked again at each instantiation,
  // cost the validator more than the input's size (probe H39).
  t.regex(whyInvalid(await third.validateAsync(answerBinary)), /^validating took longer than .*\(1 ms\)/)
  t.regex(whyInvalid(third.validate(answerBinary)), /^validating took longer than .*\(1 ms\)/)
  // Text is neither looked up nor stored: only the child parses it.
  await t.throwsAsync(third.compileModule(answer), {
    instanceOf: CompileError,
    message: /timeoutMs \(1 ms\)/,
  })
  t.is(answerOf(await first.compileModule(answer)), 42)
  t.deepEqual(first.cacheStats, { hits: 0, misses: 1, writeFailures: 0 })
})

test.serial(
  'loadComponent compiles through its engine: a plugin too costly to compile is refused',
  async (t) => {
    const dir = watComponentDir(tempDir(t, 'isolated-plugin'), bomb, { maxBytes: MiB })
    // Fuel makes the bomb cheaper (its checks split the chain): 1 s is still far below its time.
    const engine = new Engine({ fuel: true, compileLimits: { timeoutMs: 1_000 } })
    await t.throwsAsync(loadComponent(dir, { engine }), {
      instanceOf: CompileError,
      message: /took longer than compileLimits\.timeoutMs/,
    })
  },
)

test.serial(
  'at most compileLimits.concurrency children run at once; the others wait, their deadline not started',
  async (t) => {
    const engine = new Engine({ compileLimits: { timeoutMs: 5_000, concurrency: 1 } })
    const settled: string[] = []
    const stopped = [bomb, changedInIfs(80_001)].map((bytes) =>
      t.throwsAsync(
        engine.compileModule(bytes).finally(() => settled.push('bomb')),
        { instanceOf: CompileError, message: /timeoutMs \(5000 ms\)/ },
      ),
    )
    // Once both wait for or hold the one slot, a small compile waits some 10 s, longer than its
    // deadline, and still compiles.
    await setTimeout(1_000)
    const module = await engine.compileModule(answer).finally(() => settled.push('answer'))
    t.is(answerOf(module), 42)
    await Promise.all(stopped)
    t.deepEqual(settled, ['bomb', 'bomb', 'answer'])
  },
)

const whyInvalid = (result: ValidationResult) => (result.ok ? '' : result.message)

/** Waits until no process holds `marker`, for up to 5 s (a loaded machine runs a child late); those left. */
async function goneWith(marker: string): Promise<string[]> {
  for (let tries = 0; tries < 50 && processesWith(marker).length > 0; tries++) await setTimeout(100)
  return processesWith(marker)
}

/** Processes whose command line holds `marker` (the children of a compile carry their request). */
function processesWith(marker: string): string[] {
  const listed = spawnSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' }).stdout
  return listed.split('\n').filter((line) => line.includes(marker) && line.includes('compile-child'))
}

test.serial(
  'WAT text is parsed in the child only: its cost is bounded, and validate of text runs there too',
  async (t) => {
    // Probe H37: the parent parsed text before starting the child, and WAT's labels cost time
    // growing with the square of their nesting: 100,000 nested blocks each naming the outermost
    // (2.5 MB) took the parent 23 s under timeoutMs: 1000, and validate as long on the JS thread.
    const depth = 100_000
    const text = `(module (func ${Array.from({ length: depth }, (_, i) => `block $b${i} `).join('')}${'br $b0 '.repeat(depth)}${'end '.repeat(depth)}))`
    // Time enough for a small compile on a loaded machine (the specs run in parallel).
    const engine = new Engine({ compileLimits: { timeoutMs: 5_000 } })
    const cpu = process.cpuUsage()
    const tooLong = /took longer than compileLimits\.timeoutMs \(5000 ms\)/
    await t.throwsAsync(engine.compileModule(text), { instanceOf: CompileError, message: tooLong })
    t.throws(() => engine.compileModuleSync(new TextEncoder().encode(text)), {
      instanceOf: CompileError,
      message: tooLong,
    })
    const refused = engine.validate(text)
    t.false(refused.ok)
    t.regex(whyInvalid(refused), /^validating took longer than compileLimits\.timeoutMs \(5000 ms\)/)
    t.regex(whyInvalid(await engine.validateAsync(text)), /^validating took longer/)
    // The parent's own work stays small: four parses of 23 s each would be 90 s of its CPU.
    const { user, system } = process.cpuUsage(cpu)
    t.true(user + system < 10_000_000, `${(user + system) / 1e6} s of the parent's CPU`)
    // Small text compiles and validates in a child as in the process (on an engine whose deadline
    // leaves a loaded machine time to start a child).
    const roomy = new Engine({ compileLimits: {} })
    t.is(answerOf(await roomy.compileModule(answer)), 42)
    t.deepEqual(roomy.validate(answer), { ok: true })
    t.deepEqual(await roomy.validateAsync('(module (func (result i32) i64.const 0))'), {
      ok: false,
      message: 'type mismatch: expected i32, found i64 (at offset 0x1a)',
    })
  },
)

test.serial('closing the engine stops its compiles in children, running and waiting', async (t) => {
  // Probe H37: each child ran to its end after close(), and each waiting compile started one.
  const engine = new Engine({ maxModuleBytes: 12_345_671, compileLimits: { concurrency: 1 } })
  const compiles = [bomb, changedInIfs(80_001)].map((source) => engine.compileModule(source))
  for (let tries = 0; tries < 50 && processesWith('12345671').length === 0; tries++) await setTimeout(100)
  t.is(processesWith('12345671').length, 1)
  engine.close()
  for (const compile of compiles) await t.throwsAsync(compile, { instanceOf: DisposedError })
  t.deepEqual(await goneWith('12345671'), [])
  t.throws(() => engine.validate(answer), { instanceOf: DisposedError })
})

test.serial(
  'a compile child ends when its parent is gone (a process or a worker), before its deadline',
  async (t) => {
    // Probe H37: a child outlived a killed or exiting parent, holding 350 MB, until its own
    // deadline (up to 24.8 days).
    const dir = tempDir(t, 'isolated-orphan')
    const script = path.join(dir, 'parent.ts')
    writeFileSync(
      script,
      `import { Engine } from ${JSON.stringify(path.join(root, 'lib', 'index.ts'))}
    const engine = new Engine({ maxModuleBytes: 12_345_672, compileLimits: { timeoutMs: 60_000 } })
    engine.compileModule(${JSON.stringify(bomb)}).catch(() => {})
    setTimeout(() => process.kill(process.pid, 'SIGKILL'), 3_000)`,
    )
    const parent = spawn(process.execPath, [...process.execArgv, script], {
      stdio: 'ignore',
    })
    const exited = new Promise((resolve) => parent.on('exit', resolve))
    let seen = false
    for (let tries = 0; tries < 50 && !seen; tries++) {
      seen = processesWith('12345672').length === 1
      await setTimeout(50)
    }
    t.true(seen, 'the parent started its child')
    await exited
    t.deepEqual(await goneWith('12345672'), [])
    // Nor does one a terminated worker started (probe H39: it ran on to the end of its compile).
    const worker = typeScriptWorker(
      dir,
      `import { Engine } from ${JSON.stringify(path.join(root, 'lib', 'index.ts'))}
    new Engine({ maxModuleBytes: 12_345_673, compileLimits: { timeoutMs: 60_000 } })
      .compileModule(${JSON.stringify(bomb)}).catch(() => {})`,
    )
    let started: string[] = []
    for (let tries = 0; tries < 100 && started.length === 0; tries++) {
      started = processesWith('12345673')
      await setTimeout(50)
    }
    t.is(started.length, 1, 'the worker started its child')
    await worker.terminate()
    t.deepEqual(await goneWith('12345673'), [])
    // And nothing is left of it: Node reaps a child only in the loop that spawned it, so a
    // terminated worker's child stayed a zombie until the process exited (one per worker). The
    // addon reaps it through a pidfd, which only Linux has.
    if (process.platform !== 'linux') return
    const pid = Number.parseInt(started[0]!.trim(), 10)
    const stateOf = () => {
      try {
        return /\) (\w)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '?'
      } catch {
        return 'reaped'
      }
    }
    for (let tries = 0; tries < 50 && stateOf() !== 'reaped'; tries++) await setTimeout(100)
    t.is(stateOf(), 'reaped')
  },
)

test.serial('compileLimits is checked: an object of known keys, each within its bounds', (t) => {
  const refused = (compileLimits: unknown, path: string, message: RegExp) => {
    const error = t.throws(() => new Engine({ compileLimits } as never), { instanceOf: ConfigError, message })
    t.is(error?.path, path)
  }
  refused(5, 'compileLimits', /^compileLimits: expected an object, got 5$/)
  refused({ timeoutMs: 0 }, 'compileLimits.timeoutMs', /expected an integer from 1 to 2147483647, got 0/)
  refused(
    { memoryBytes: MiB },
    'compileLimits.memoryBytes',
    /expected an integer from 16777216 to 281474976710656/,
  )
  refused({ memoryByte: MiB }, 'compileLimits.memoryByte', /unknown compileLimits option "memoryByte"/)
  refused({ concurrency: 0 }, 'compileLimits.concurrency', /expected an integer from 1 to 256, got 0/)
  t.notThrows(() => new Engine({ compileLimits: { timeoutMs: 1, memoryBytes: 16 * MiB } }).close())
})
