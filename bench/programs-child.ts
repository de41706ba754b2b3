/**
 * One side of one program of the real-programs benchmark (bench/programs.ts), in a process of its own
 * so that a crash takes down only this side. Started by the scenario with a JSON job as its argument;
 * answers with one IPC message (`ChildReport`) and exits.
 *
 * `v8` runs the program on Node's WebAssembly, `v8-lazy` only times V8's default (lazy) compile, and
 * `cranelift`, `fuel` and `winch` run it on airssys-wasm. Only the airssys-wasm sides load the addon.
 */
import { readFileSync } from 'node:fs'

import { withNonce } from './wasm.js'

export type Side = 'v8' | 'v8-lazy' | 'cranelift' | 'fuel' | 'winch'

export interface ChildJob {
  side: Side
  file: string
  exportName: string
  n: number
  /** The checksum the program must return (a bigint as a decimal string), when already known. */
  expected?: string
  warmupRuns: number
  warmupMs: number
  runs: number
  compiles: number
  /** Per-call options for our sides. */
  timeoutMs: number
  fuel: number
  memoryBytes: number
}

export type ChildReport =
  | {
      ok: true
      checksum: string
      /** Nanoseconds per call, in the order taken (none for `v8-lazy`). */
      runs: number[]
      /** Nanoseconds per cold compile of the program's bytes (a new nonce each time). */
      compiles: number[]
      /** Fuel one call consumed (the `fuel` side). */
      fuelPerRun?: number
      /** The V8 flags the process runs with, so the scenario can check them. */
      execArgv: string[]
    }
  | { ok: false; mismatch: { expected: string; actual: string; at: string } }
  | { ok: false; unsupported: string }
  /** An error the child caught on its way out (it exits with code 1). */
  | { ok: false; error: string }

type Program = (n: number) => unknown

function send(report: ChildReport): void {
  process.send!(report, () => process.exit(0))
}

function checksumOf(value: unknown, at: string, expected: string | undefined): string {
  if (typeof value !== 'bigint') throw new Error(`${at}: returned ${typeof value}, not an i64 (bigint)`)
  const actual = value.toString()
  if (expected !== undefined && actual !== expected) {
    send({ ok: false, mismatch: { expected, actual, at } })
    throw new MismatchSent()
  }
  return actual
}

class MismatchSent extends Error {}

/** Checks the first call, warms up, then times `job.runs` calls, each checked too. */
function timeRuns(job: ChildJob, program: Program): { checksum: string; runs: number[] } {
  const checksum = checksumOf(program(job.n), 'the first call', job.expected)
  const started = performance.now()
  for (let run = 1; run < job.warmupRuns || performance.now() - started < job.warmupMs; run++) {
    checksumOf(program(job.n), `warm-up call ${run + 1}`, checksum)
  }
  const runs: number[] = []
  for (let run = 0; run < job.runs; run++) {
    const before = performance.now()
    const result = program(job.n)
    runs.push((performance.now() - before) * 1e6)
    checksumOf(result, `timed call ${run + 1}`, checksum)
  }
  return { checksum, runs }
}

/** Times `count` compiles of `bytes`, each with a new nonce so no compiled-code cache can answer. */
function timeCompiles(
  bytes: Uint8Array<ArrayBuffer>,
  count: number,
  compile: (bytes: Uint8Array<ArrayBuffer>) => void,
): number[] {
  const cold = withNonce(bytes)
  const samples: number[] = []
  for (let index = 0; index < count; index++) {
    cold.next()
    const before = performance.now()
    compile(cold.bytes)
    samples.push((performance.now() - before) * 1e6)
  }
  return samples
}

function runOnV8(job: ChildJob, bytes: Uint8Array<ArrayBuffer>): ChildReport {
  const module = new WebAssembly.Module(bytes)
  if (job.side === 'v8-lazy') {
    const exported = WebAssembly.Module.exports(module).map((entry) => entry.name)
    if (!exported.includes(job.exportName)) throw new Error(`${job.file} does not export ${job.exportName}`)
    const compiles = timeCompiles(bytes, job.compiles, (cold) => new WebAssembly.Module(cold))
    return { ok: true, checksum: '', runs: [], compiles, execArgv: process.execArgv }
  }
  const program = new WebAssembly.Instance(module).exports[job.exportName] as Program
  const { checksum, runs } = timeRuns(job, program)
  const compiles = timeCompiles(bytes, job.compiles, (cold) => new WebAssembly.Module(cold))
  return { ok: true, checksum, runs, compiles, execArgv: process.execArgv }
}

async function runOnAirssys(job: ChildJob, bytes: Uint8Array<ArrayBuffer>): Promise<ChildReport> {
  const { CompileError, Engine } = await import('../lib/index.js')
  const engine =
    job.side === 'fuel'
      ? new Engine({ fuel: true })
      : job.side === 'winch'
        ? new Engine({ compiler: 'winch' })
        : new Engine()
  let compiled
  try {
    compiled = engine.compileModuleSync(bytes)
  } catch (error) {
    // Winch does not support every proposal: a program it cannot compile is a finding, not a failure.
    if (job.side === 'winch' && error instanceof CompileError)
      return { ok: false, unsupported: error.message }
    throw error
  }
  const instance = compiled.instantiateSync({ limits: { memoryBytes: job.memoryBytes } })
  const options = job.side === 'fuel' ? { fuel: job.fuel } : { timeoutMs: job.timeoutMs }
  const program = (n: number) => instance.callSync(job.exportName, [n], options)
  const { checksum, runs } = timeRuns(job, program)
  const fuelPerRun = job.side === 'fuel' ? instance.metrics().fuel.lastCallConsumed : undefined
  // The fuel engine compiles the same code plus its counters: only the other two are compile rows.
  const compiles =
    job.side === 'fuel' ? [] : timeCompiles(bytes, job.compiles, (cold) => engine.compileModuleSync(cold))
  return { ok: true, checksum, runs, compiles, fuelPerRun, execArgv: process.execArgv }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as ChildJob
  const bytes = new Uint8Array(readFileSync(job.file))
  const report = job.side.startsWith('v8') ? runOnV8(job, bytes) : await runOnAirssys(job, bytes)
  send(report)
}

main().catch((error: unknown) => {
  if (error instanceof MismatchSent) return
  console.error(error)
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  process.send!({ ok: false, error: message } satisfies ChildReport, () => process.exit(1))
})
