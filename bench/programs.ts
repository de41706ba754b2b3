/**
 * Real programs: the C and Rust sources in fixtures/programs/ (sorting, hashing, JSON, regex,
 * compression, a cipher, a hash map, f64 simulations, an interpreter), compiled to wasm by
 * fixtures/programs/build.mjs, each run on Node's WebAssembly and on airssys-wasm in the same run:
 * with a deadline compiled in (Cranelift), with fuel, and on the baseline compiler (Winch); and each
 * compiled cold by V8 (lazy and eager), Cranelift and Winch. The summary gives the geometric mean of
 * the ratios to V8 and the worst program.
 *
 * Every side of every program runs in a child process of its own (bench/programs-child.ts), so a
 * crash takes down only that side: a failed V8 side is restarted (up to 3 times), a failed one of ours
 * is reported (and the run's exit code says so). The children time the calls; this process asks each
 * side for one timed call in turn, so load from other processes falls on all sides alike. Their
 * samples become sampled rows.
 */
import { fork, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { ConfigError, Engine } from '../lib/index.js'
import { amount, ratio } from './format.js'
import { MiB, type Row, type RowResult, type Scenario } from './harness.js'
import { FAR_DEADLINE_MS } from './kernel.js'
import type { ChildJob, Reply, Request, Side } from './programs-child.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..')
const PROGRAMS_DIR = path.join(root, 'fixtures', 'programs')
export const BUILD_DIR = path.join(PROGRAMS_DIR, 'build')
const CHILD = path.join(here, 'programs-child.ts')

export interface Program {
  name: string
  language: 'Rust' | 'C'
  /** The size argument: each program's call takes roughly 20–60 ms on V8 on the 2-core machine. */
  n: number
  what: string
}

export const PROGRAMS: Program[] = [
  { name: 'sort', language: 'Rust', n: 500_000, what: '`sort_unstable` of n random u64s and n/4 words' },
  {
    name: 'sha256',
    language: 'Rust',
    n: 8192,
    what: 'SHA-256 (`sha2`) of n KiB, then 4n chained short digests',
  },
  {
    name: 'json',
    language: 'Rust',
    n: 4000,
    what: '`serde_json`: n orders to text, parsed into structs, to pretty text, parsed as `Value`',
  },
  {
    name: 'regex',
    language: 'Rust',
    n: 15_000,
    what: '`regex`: five patterns (captures, find-all, case-insensitive) over n log lines',
  },
  {
    name: 'deflate',
    language: 'Rust',
    n: 1024,
    what: '`miniz_oxide`: n KiB of text deflated (level 6) and inflated',
  },
  {
    name: 'chacha20',
    language: 'Rust',
    n: 8192,
    what: 'ChaCha20 (`chacha20`): n KiB encrypted and decrypted',
  },
  {
    name: 'wordcount',
    language: 'Rust',
    n: 400_000,
    what: 'n words of text counted in a std `HashMap`, the top 100 sorted out',
  },
  { name: 'nbody', language: 'Rust', n: 1_000_000, what: 'n steps of the 5-body simulation (f64, `sqrt`)' },
  { name: 'crc32', language: 'C', n: 16, what: 'table-driven CRC-32 over 1 MiB, n times' },
  {
    name: 'lz77',
    language: 'C',
    n: 1536,
    what: 'LZ77 with hash chains on n KiB of text, compressed and decompressed',
  },
  { name: 'matmul', language: 'C', n: 480, what: 'n × n f64 matrix multiply (i-k-j loops)' },
  {
    name: 'mandelbrot',
    language: 'C',
    n: 400,
    what: 'Mandelbrot set on an n × n grid, up to 256 iterations a point',
  },
  {
    name: 'quicksort',
    language: 'C',
    n: 500_000,
    what: 'quicksort of n ints (median of 3, insertion sort below 24)',
  },
  {
    name: 'vm',
    language: 'C',
    n: 200_000,
    what: 'a register-VM interpreter counting the primes below n by trial division',
  },
]

/**
 * The V8 side runs with every function compiled by TurboFan up front. V8 11.3 (Node 20) does not
 * inline wasm calls, so this is the code dynamic tier-up reaches once a program is hot (after 15
 * warm-up calls with default flags, regex, json, sort, matmul and wordcount ran within 5% of these
 * times), without the measurement depending on whether a warm-up was long enough for every function:
 * by default the regex program takes about 8 calls to tier up. A later V8 that inlines on feedback
 * collected by Liftoff would need this choice made again.
 */
const V8_FLAGS = ['--no-liftoff', '--no-wasm-lazy-compilation']
/** A budget no program exhausts (the largest uses a few billion units a call). */
const FUEL_PER_CALL = 1e15
const MEMORY_BYTES = 256 * MiB
/** A V8 run is tried once and retried up to 3 times (Node's own wasm has crashed here before). */
const V8_ATTEMPTS = 4
/** A child that has not answered a request after this long is killed and counts as failed. */
const CHILD_TIMEOUT_MS = 120_000
const SAMPLING = {
  full: { warmupRuns: 3, warmupMs: 300, runs: 15, compiles: 5 },
  quick: { warmupRuns: 1, warmupMs: 0, runs: 5, compiles: 2 },
}

interface Manifest {
  rust: string
  clang: string | null
  skipped: string | null
  programs: { name: string; language: 'Rust' | 'C'; file: string; export: string; bytes: number }[]
}

function build(): Manifest {
  const result = spawnSync(process.execPath, [path.join(PROGRAMS_DIR, 'build.mjs')], {
    cwd: root,
    stdio: 'inherit',
  })
  if (result.error) throw result.error
  if (result.status !== 0)
    throw new Error(`fixtures/programs/build.mjs failed (exit ${result.status ?? result.signal})`)
  return JSON.parse(readFileSync(path.join(BUILD_DIR, 'manifest.json'), 'utf8')) as Manifest
}

/** A child process died, failed or stopped answering. */
class ChildFailed extends Error {}

/** A running child: one request at a time, each answered by one reply. */
interface Child {
  /** The reply to `request`; rejects with ChildFailed if the child dies first. */
  ask: (request: Request) => Promise<Reply>
  /** Closes the IPC channel (the child exits) and resolves once the child has exited. */
  stop: () => Promise<void>
}

/** Starts one child; resolves with its first reply (`ready`, or why it cannot run). */
async function startChild(job: ChildJob): Promise<{ child: Child; first: Reply }> {
  const process_ = fork(CHILD, [JSON.stringify(job)], {
    cwd: root,
    execArgv: ['--import', 'tsx', ...(job.side === 'v8' ? V8_FLAGS : [])],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  })
  let stderr = ''
  process_.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  let waiting: { resolve: (reply: Reply) => void; reject: (error: Error) => void } | undefined
  let ended: string | undefined
  let lastError: string | undefined
  let timer: NodeJS.Timeout | undefined
  let timedOut = false
  const settle = (outcome: { reply: Reply } | { failure: string }) => {
    clearTimeout(timer)
    const pending = waiting
    waiting = undefined
    if ('reply' in outcome) pending?.resolve(outcome.reply)
    else pending?.reject(new ChildFailed(outcome.failure))
  }
  process_.on('message', (reply: Reply) => {
    // An error report is followed by the child's exit, which settles the request.
    if ('error' in reply) lastError = reply.error
    else settle({ reply })
  })
  process_.on('error', (error) => {
    ended ??= error.message
    settle({ failure: ended })
  })
  // 'exit', not 'close': after disconnect() Node does not always emit 'close'.
  const exited = new Promise<void>((resolve) => process_.once('exit', () => resolve()))
  process_.on('close', (code, signal) => {
    const why = timedOut
      ? `no answer after ${CHILD_TIMEOUT_MS / 1000} s`
      : signal
        ? `killed by ${signal}`
        : `exited with code ${code}`
    const detail = lastError ?? stderr.trim().split('\n').slice(-3).join(' | ')
    ended ??= `${why}${detail ? `: ${detail}` : ''}`
    settle({ failure: ended })
  })
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      if (ended) return reject(new ChildFailed(ended))
      waiting = { resolve, reject }
      timer = setTimeout(() => {
        timedOut = true
        process_.kill('SIGKILL')
      }, CHILD_TIMEOUT_MS)
    })
  const child: Child = {
    ask: (request) => {
      const reply = next()
      if (!ended) process_.send(request)
      return reply
    },
    stop: () => {
      clearTimeout(timer)
      if (process_.connected) process_.disconnect()
      return exited
    },
  }
  return { child, first: await next() }
}

type Ready = Extract<Reply, { ready: true }>

/**
 * One side of one program: its child, restarted on failure while attempts are left (V8's sides have
 * `V8_ATTEMPTS`, ours one: our crash is a bug, not noise to retry past), and the samples it gave.
 */
class Runner {
  runs: number[] = []
  compiles: number[] = []
  /** Why earlier children of this side failed. */
  tried: string[] = []
  ready?: Ready
  #child?: Child

  constructor(
    readonly where: string,
    readonly job: ChildJob,
    readonly warmup: Request,
  ) {}

  get attempts(): number {
    return this.job.side.startsWith('v8') ? V8_ATTEMPTS : 1
  }

  /** Starts the child; returns its first reply (throws ChildFailed once no attempt is left). */
  async start(): Promise<Reply> {
    try {
      return await this.#launch()
    } catch (error) {
      if (!(error instanceof ChildFailed)) throw error
      await this.#restart(error, false)
      return this.ready!
    }
  }

  /** Asks the child; if it fails, starts (and warms up) a new one while attempts are left. */
  async ask(request: Request): Promise<Reply> {
    for (;;) {
      try {
        return await this.#child!.ask(request)
      } catch (error) {
        if (!(error instanceof ChildFailed)) throw error
        await this.#restart(error, this.job.side !== 'v8-lazy')
      }
    }
  }

  /** Ends the child and waits for it to exit, so the next program's children run alone. */
  async stop(): Promise<void> {
    await this.#child?.stop()
  }

  async #launch(): Promise<Reply> {
    const { child, first } = await startChild(this.job)
    this.#child = child
    if ('ready' in first) this.ready = first
    return first
  }

  /** After `error`, starts new children until one is ready (and warmed up) or no attempt is left. */
  async #restart(error: ChildFailed, warm: boolean): Promise<void> {
    for (;;) {
      if (this.tried.length + 1 >= this.attempts) throw error
      this.tried.push(error.message)
      await this.#child?.stop()
      try {
        const first = await this.#launch()
        if (!('ready' in first))
          throw new Error(`${this.where}: restarted, it answered ${JSON.stringify(first)}`)
        if (warm) nanoseconds(this.where, await this.#child!.ask(this.warmup))
        return
      } catch (next) {
        if (!(next instanceof ChildFailed)) throw next
        error = next
      }
    }
  }
}

/** A reply's nanoseconds; a checksum mismatch stops the benchmark. */
function nanoseconds(where: string, reply: Reply): number {
  if ('ns' in reply) return reply.ns
  if ('warmedUp' in reply) return 0
  if ('mismatch' in reply) {
    const { expected, actual, at } = reply.mismatch
    throw new Error(`${where}: checksum ${actual} at ${at}, expected ${expected}`)
  }
  throw new Error(`${where}: unexpected reply ${JSON.stringify(reply)}`)
}

/** The samples each side of one program gave. */
interface Measured {
  program: Program
  file: string
  bytes: number
  sides: Partial<Record<Side, { runs: number[]; compiles: number[]; fuelPerRun?: number }>>
}

/** `list` starting at its `round`-th element: each side goes first equally often. */
function rotate<T>(list: T[], round: number): T[] {
  const start = list.length === 0 ? 0 : round % list.length
  return [...list.slice(start), ...list.slice(0, start)]
}

/**
 * Runs one program on every side: starts each side's child (our sides are checked against the V8
 * side's checksum), warms each up, then takes `sampling.runs` rounds of one timed call per side and
 * `sampling.compiles` rounds of one cold compile per side. A side whose child fails for good is left
 * out (a notice for V8, a failure for ours); the others go on.
 */
async function measureProgram(
  program: Program,
  built: Manifest['programs'][number],
  sides: Side[],
  sampling: (typeof SAMPLING)['full'],
  notices: string[],
  failures: string[],
): Promise<Measured> {
  const warmup: Request = { warmup: { runs: sampling.warmupRuns, ms: sampling.warmupMs } }
  let live: Runner[] = []
  let checksum: string | undefined
  const lose = (runner: Runner, error: unknown) => {
    if (!(error instanceof ChildFailed)) throw error
    const tries = runner.tried.length + 1
    const message = `${runner.where} failed${tries > 1 ? ` ${tries} times` : ''}: ${[...runner.tried, error.message].join('; ')}`
    if (runner.job.side.startsWith('v8')) notices.push(`${message}.`)
    else failures.push(message)
    console.log(`  ${message}`)
    void runner.stop()
    live = live.filter((other) => other !== runner)
  }
  /** Does `action` for each runner in turn; a runner that fails for good is dropped. */
  const each = async (runners: Runner[], action: (runner: Runner) => Promise<void>) => {
    for (const runner of runners) {
      try {
        await action(runner)
      } catch (error) {
        lose(runner, error)
      }
    }
  }
  try {
    for (const side of sides) {
      const job: ChildJob = {
        side,
        file: path.join(BUILD_DIR, built.file),
        exportName: built.export,
        n: program.n,
        expected: side === 'v8-lazy' ? undefined : checksum,
        timeoutMs: FAR_DEADLINE_MS,
        fuel: FUEL_PER_CALL,
        memoryBytes: MEMORY_BYTES,
      }
      const runner = new Runner(`${program.name} on ${side}`, job, warmup)
      live.push(runner)
      await each([runner], async () => {
        const first = await runner.start()
        if ('unsupported' in first) {
          notices.push(`${runner.where} left out: ${first.unsupported}.`)
          live = live.filter((other) => other !== runner)
          return
        }
        if (!('ready' in first)) return void nanoseconds(runner.where, first)
        if (side === 'v8' && !V8_FLAGS.every((flag) => first.execArgv.includes(flag))) {
          throw new Error(`the V8 child ran without ${V8_FLAGS.join(' ')}: ${first.execArgv.join(' ')}`)
        }
        if (side !== 'v8-lazy') checksum ??= first.checksum
      })
    }
    if (!live.some((runner) => runner.job.side === 'v8') && checksum) {
      notices.push(
        `${program.name}: our sides agree with each other, but V8 gave no checksum to check against.`,
      )
    }
    const callers = () => live.filter((runner) => runner.job.side !== 'v8-lazy')
    await each(callers(), async (runner) => void nanoseconds(runner.where, await runner.ask(warmup)))
    for (let round = 0; round < sampling.runs; round++) {
      await each(rotate(callers(), round), async (runner) => {
        runner.runs.push(nanoseconds(runner.where, await runner.ask({ run: true })))
      })
    }
    // The fuel engine compiles the same code plus its counters: only the others are compile rows.
    const compilers = () => live.filter((runner) => runner.job.side !== 'fuel')
    for (let round = 0; round < sampling.compiles; round++) {
      await each(rotate(compilers(), round), async (runner) => {
        runner.compiles.push(nanoseconds(runner.where, await runner.ask({ compile: true })))
      })
    }
  } finally {
    await Promise.all(live.map((runner) => runner.stop()))
  }
  const result: Measured = { program, file: built.file, bytes: built.bytes, sides: {} }
  for (const runner of live) {
    const { runs, compiles, ready, tried } = runner
    result.sides[runner.job.side] = { runs, compiles, fuelPerRun: ready?.fuelPerRun }
    if (tried.length > 0) {
      notices.push(`${runner.where} failed ${tried.length}× and was restarted: ${tried.join('; ')}.`)
      console.log(`  ${notices.at(-1)}`)
    }
  }
  return result
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function geomean(values: number[]): number {
  return Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length)
}

/** One line per program while the scenario runs: each side's median run time and its ratio to V8. */
function progress({ program, bytes, sides }: Measured): string {
  const v8 = sides.v8 ? median(sides.v8.runs) : undefined
  const times = (['v8', 'cranelift', 'fuel', 'winch'] as const)
    .filter((side) => sides[side])
    .map((side) => {
      const time = median(sides[side]!.runs)
      return `${side} ${amount(time, 'ns')}${v8 && side !== 'v8' ? ` (${ratio(time / v8)})` : ''}`
    })
  return `${program.name} (${program.language}, ${amount(bytes, 'bytes')}): ${times.join(' · ')}`
}

/** The rows: every program's run times, then every program's compile times. */
function rowsOf(measured: Measured[], manifest: Manifest): Row[] {
  const rows: Row[] = []
  const compileRows: Row[] = []
  const language = (program: Program) =>
    program.language === 'Rust'
      ? `Rust, ${manifest.rust.split(' ').slice(0, 2).join(' ')}`
      : `C, ${manifest.clang}`
  for (const { program, file, bytes, sides: done } of measured) {
    const id = (side: string) => `${program.name}-${side}`
    const size = `${file}, ${amount(bytes, 'bytes')}`
    const v8 = done.v8 ? [id('v8')] : []
    const timed = (side: Side) => () => done[side]!.runs
    const compiled = (side: Side) => () => done[side]!.compiles
    /** `row` into `to`, in nanoseconds, when `side` ran for this program. */
    const add = (to: Row[], side: Side, samples: (side: Side) => () => number[], row: Row) => {
      if (done[side]) to.push({ ...row, unit: 'ns', samples: samples(side) })
    }
    const withCranelift = done.cranelift ? [id('cranelift')] : []
    add(rows, 'v8', timed, {
      id: id('v8'),
      title: `${program.name}: V8`,
      note:
        `Baseline. ${program.what}; n = ${program.n.toLocaleString('en-US')} (${language(program)}; ${size}). ` +
        `Node's WebAssembly, TurboFan up front (${V8_FLAGS.join(' ')}).`,
    })
    add(rows, 'cranelift', timed, {
      id: id('cranelift'),
      title: `${program.name}: callSync, timeoutMs`,
      note: `Ours, Cranelift, a far deadline (timeoutMs: ${FAR_DEADLINE_MS}). Ratio: to V8.`,
      baselines: v8,
    })
    add(rows, 'fuel', timed, {
      id: id('fuel'),
      title: `${program.name}: callSync, fuel`,
      note:
        `Ours with fuel (Engine({ fuel: true }), a budget of ${FUEL_PER_CALL.toExponential()} a call; ` +
        `one call consumes ${(done.fuel?.fuelPerRun ?? 0).toLocaleString('en-US')}). ` +
        'Ratios: to V8 and to the deadline row.',
      baselines: [...v8, ...withCranelift],
    })
    add(rows, 'winch', timed, {
      id: id('winch'),
      title: `${program.name}: callSync, timeoutMs, Winch`,
      note: 'Ours on the baseline compiler, the same deadline. Ratios: to V8 and to Cranelift.',
      baselines: [...v8, ...withCranelift],
    })
    const lazy = done['v8-lazy'] ? [id('compile-v8')] : []
    const eager = done.v8 ? [id('compile-v8-eager')] : []
    add(compileRows, 'v8-lazy', compiled, {
      id: id('compile-v8'),
      title: `${program.name}: compile, V8 (lazy)`,
      note: `Baseline. \`new WebAssembly.Module\` of ${size}, cold (V8's default: validates now, compiles each function at its first call).`,
    })
    add(compileRows, 'v8', compiled, {
      id: id('compile-v8-eager'),
      title: `${program.name}: compile, V8 (eager TurboFan)`,
      note: `The same with ${V8_FLAGS.join(' ')}: every function through TurboFan now. Ratio: to lazy.`,
      baselines: lazy,
    })
    add(compileRows, 'cranelift', compiled, {
      id: id('compile-cranelift'),
      title: `${program.name}: compileModuleSync, Cranelift`,
      note: 'Ours, cold. Ratios: to V8 lazy and eager.',
      baselines: [...lazy, ...eager],
    })
    add(compileRows, 'winch', compiled, {
      id: id('compile-winch'),
      title: `${program.name}: compileModuleSync, Winch`,
      note: 'Ours on Winch, cold. Ratios: to V8 lazy and eager, and to Cranelift.',
      baselines: [...lazy, ...eager, ...(done.cranelift ? [id('compile-cranelift')] : [])],
    })
  }
  return [...rows, ...compileRows]
}

/**
 * Geometric means of the ratios per variant over the programs, with the worst and best program, then
 * what was left out or retried, and what failed.
 */
function summarize(
  results: RowResult[],
  measured: Measured[],
  notices: string[],
  failures: string[],
): string[] {
  const ratioOf = (row: string, baseline: string) =>
    results.find((result) => result.id === row)?.ratios.find((entry) => entry.baseline === baseline)?.ratio
  const line = (label: string, row: string, baseline: string) => {
    const pairs = measured
      .map(({ program }) => ({
        name: program.name,
        value: ratioOf(`${program.name}-${row}`, `${program.name}-${baseline}`),
      }))
      .filter((pair): pair is { name: string; value: number } => pair.value !== undefined)
    if (pairs.length === 0) return []
    const worst = pairs.reduce((a, b) => (b.value > a.value ? b : a))
    const best = pairs.reduce((a, b) => (b.value < a.value ? b : a))
    return [
      `${label}: geomean ${ratio(geomean(pairs.map((pair) => pair.value)))} over ${pairs.length} program${pairs.length === 1 ? '' : 's'} ` +
        `(worst ${worst.name} ${ratio(worst.value)}, best ${best.name} ${ratio(best.value)})`,
    ]
  }
  return [
    ...line('Run time, ours (Cranelift, deadline) / V8', 'cranelift', 'v8'),
    ...line('Run time, ours with fuel / V8', 'fuel', 'v8'),
    ...line('Run time, fuel / deadline', 'fuel', 'cranelift'),
    ...line('Run time, ours on Winch / V8', 'winch', 'v8'),
    ...line('Run time, Winch / Cranelift', 'winch', 'cranelift'),
    ...line('Cold compile, Cranelift / V8 eager TurboFan', 'compile-cranelift', 'compile-v8-eager'),
    ...line('Cold compile, Winch / V8 eager TurboFan', 'compile-winch', 'compile-v8-eager'),
    ...line('Cold compile, Winch / Cranelift', 'compile-winch', 'compile-cranelift'),
    ...line('Cold compile, Cranelift / V8 lazy', 'compile-cranelift', 'compile-v8'),
    ...notices,
    ...failures.map((failure) => `FAILED: ${failure}.`),
  ]
}

export const programs: Scenario = {
  name: 'programs',
  title: 'Real programs (C and Rust, fixtures/programs/): run time and cold compile, ours vs V8',
  async setup(mode) {
    const manifest = build()
    const sampling = mode.quick ? SAMPLING.quick : SAMPLING.full
    const notices: string[] = []
    const failures: string[] = []

    const available = PROGRAMS.filter((program) => {
      const built = manifest.programs.find((candidate) => candidate.name === program.name)
      if (built) return true
      if (program.language === 'C' && manifest.skipped) return false
      throw new Error(`fixtures/programs/build.mjs did not build ${program.name}`)
    })
    if (manifest.skipped) notices.push(`C programs left out: ${manifest.skipped}.`)

    let winch = true
    try {
      new Engine({ compiler: 'winch' }).close()
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      winch = false
      notices.push(`Winch rows left out: this build has no baseline compiler (${error.message}).`)
    }
    const sides: Side[] = ['v8', 'v8-lazy', 'cranelift', 'fuel', ...(winch ? (['winch'] as const) : [])]

    const measured: Measured[] = []
    for (const program of available) {
      const built = manifest.programs.find((candidate) => candidate.name === program.name)!
      const result = await measureProgram(program, built, sides, sampling, notices, failures)
      measured.push(result)
      console.log(`  ${progress(result)}`)
    }
    if (failures.length > 0) {
      // Our crash is a bug to fix, not noise: say so in the exit code, but keep every other number.
      process.exitCode = 1
      for (const failure of failures) console.error(`programs: ${failure}`)
    }

    return {
      rows: rowsOf(measured, manifest),
      summarize: (results) => summarize(results, measured, notices, failures),
    }
  },
}
