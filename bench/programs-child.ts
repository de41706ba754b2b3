/**
 * One side of one program of the real-programs benchmark (bench/programs.ts), in a process of its own
 * so that a crash takes down only this side. Started with a JSON `ChildJob` as its argument, it
 * compiles and instantiates the program, checks the first call's checksum, answers `Ready`, and then
 * does what the scenario asks, one request at a time over IPC: warm up, time one call, time one cold
 * compile, exit. The scenario interleaves the sides' requests, so a burst of other work on the machine
 * lands on every side alike instead of on whichever side happened to be running.
 *
 * `v8` runs the program on Node's WebAssembly, `v8-lazy` only compiles it with V8's defaults, and
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
  /** The checksum the first call must return (a bigint as a decimal string), when already known. */
  expected?: string
  /** Per-call options for our sides. */
  timeoutMs: number
  fuel: number
  memoryBytes: number
}

export type Request = { warmup: { runs: number; ms: number } } | { run: true } | { compile: true }

export type Reply =
  /** After the first call (none for `v8-lazy`): its checksum, and the V8 flags the process has. */
  | { ready: true; checksum: string; execArgv: string[]; fuelPerRun?: number }
  /** One timed call or one cold compile (a new nonce each time), in nanoseconds; or a warm-up done. */
  | { ns: number }
  | { warmedUp: number }
  | { mismatch: { expected: string; actual: string; at: string } }
  /** Winch cannot compile the program (an unsupported proposal): a finding, not a failure. */
  | { unsupported: string }
  /** An error the child caught on its way out (it exits with code 1). */
  | { error: string }

interface Subject {
  /** One call of the program (absent for `v8-lazy`). */
  call?: () => unknown
  compile: (bytes: Uint8Array<ArrayBuffer>) => void
  fuelPerRun?: () => number
}

function send(reply: Reply, then: () => void = () => {}): void {
  process.send!(reply, then)
}

class Stop extends Error {}

function checksumOf(value: unknown, at: string, expected: string | undefined): string {
  if (typeof value !== 'bigint') throw new Error(`${at}: returned ${typeof value}, not an i64 (bigint)`)
  const actual = value.toString()
  if (expected !== undefined && actual !== expected) {
    send({ mismatch: { expected, actual, at } }, () => process.exit(0))
    throw new Stop()
  }
  return actual
}

function onV8(job: ChildJob, bytes: Uint8Array<ArrayBuffer>): Subject {
  const module = new WebAssembly.Module(bytes)
  const compile = (cold: Uint8Array<ArrayBuffer>) => void new WebAssembly.Module(cold)
  if (job.side === 'v8-lazy') {
    const exported = WebAssembly.Module.exports(module).map((entry) => entry.name)
    if (!exported.includes(job.exportName)) throw new Error(`${job.file} does not export ${job.exportName}`)
    return { compile }
  }
  const program = new WebAssembly.Instance(module).exports[job.exportName] as (n: number) => unknown
  return { call: () => program(job.n), compile }
}

async function onAirssys(job: ChildJob, bytes: Uint8Array<ArrayBuffer>): Promise<Subject | undefined> {
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
    if (job.side === 'winch' && error instanceof CompileError) {
      send({ unsupported: error.message }, () => process.exit(0))
      return undefined
    }
    throw error
  }
  const instance = compiled.instantiateSync({ limits: { memoryBytes: job.memoryBytes } })
  const options = job.side === 'fuel' ? { fuel: job.fuel } : { timeoutMs: job.timeoutMs }
  return {
    call: () => instance.callSync(job.exportName, [job.n], options),
    compile: (cold) => void engine.compileModuleSync(cold),
    fuelPerRun: () => instance.metrics().fuel.lastCallConsumed,
  }
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as ChildJob
  const bytes = new Uint8Array(readFileSync(job.file))
  const subject = job.side.startsWith('v8') ? onV8(job, bytes) : await onAirssys(job, bytes)
  if (!subject) return
  const call = subject.call
  const checksum = call ? checksumOf(call(), 'the first call', job.expected) : ''
  const cold = withNonce(bytes)
  let calls = 1
  const checkedCall = () => checksumOf(call!(), `call ${++calls}`, checksum)

  process.on('message', (request: Request) => {
    try {
      if ('warmup' in request) {
        const started = performance.now()
        let runs = 0
        while (runs < request.warmup.runs || performance.now() - started < request.warmup.ms) {
          checkedCall()
          runs++
        }
        send({ warmedUp: runs })
      } else if ('run' in request) {
        const before = performance.now()
        const result = call!()
        const ns = (performance.now() - before) * 1e6
        checksumOf(result, `call ${++calls}`, checksum)
        send({ ns })
      } else {
        cold.next()
        const before = performance.now()
        subject.compile(cold.bytes)
        send({ ns: (performance.now() - before) * 1e6 })
      }
    } catch (error) {
      fail(error)
    }
  })
  // The scenario ends a child by closing the IPC channel.
  process.on('disconnect', () => process.exit(0))
  send({
    ready: true,
    checksum,
    execArgv: process.execArgv,
    ...(job.side === 'fuel' ? { fuelPerRun: subject.fuelPerRun!() } : {}),
  })
}

function fail(error: unknown): void {
  if (error instanceof Stop) return
  console.error(error)
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  send({ error: message }, () => process.exit(1))
}

main().catch(fail)
