/**
 * Compiles in a child process bounded in time and memory ({@link EngineOptions.compileLimits}).
 *
 * Why a process: wasmtime cannot cancel a compile or bound its memory, and some inputs cost
 * Cranelift far more than their size (SECURITY.md, findings 23 and 49). A child can be killed, and
 * whatever it allocated goes with it. The child (compile-child.ts) compiles with an engine of the
 * same settings and sends back wasmtime's serialized code, which the parent loads: machine code
 * this addon made, trusted as the parent's own compile would be. The parent keeps `cacheDir` to
 * itself: a hit is loaded without a child, and what a child compiled is stored as a compile here
 * would store it.
 *
 * The child reads its own resident memory every few ms and exits once it grew by more than the
 * bound since the compile began (a bound on what the compile holds, to within what Cranelift
 * allocates between two reads); the parent kills it at the deadline, whatever it is doing.
 */
import {
  type ChildProcessWithoutNullStreams,
  spawn,
  spawnSync,
  type SpawnSyncReturns,
} from 'node:child_process'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { CompileError, fromNative, WasmError } from './errors.js'
import type { NativeEngineOptions } from './native.js'
import type { ResolvedCompileLimits } from './options.js'

/**
 * How many of an engine's compiles run in children at once ({@link ResolvedCompileLimits}
 * `concurrency`); the others wait, in order, their deadlines starting with their child. A sync
 * compile does not wait: it runs at once (it holds its thread anyway).
 */
export class ChildSlots {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(slots: number) {
    this.#free = slots
  }

  /** Resolves once a slot is free, with the function that frees it. */
  async take(): Promise<() => void> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    let held = true
    return () => {
      if (!held) return
      held = false
      const next = this.#waiting.shift()
      if (next === undefined) this.#free++
      else next()
    }
  }
}

/** What the parent asks of the child (its one argument, as JSON). */
export interface ChildRequest {
  kind: 'module' | 'component'
  engine: NativeEngineOptions
  memoryBytes: number
  timeoutMs: number
}

/** How the child exits when it could not answer (a parent's broken request, a deadline without a parent). */
export const CHILD_FAILED = 70

/**
 * A frame's kind, its first byte: serialized code, an error as `{ code, message }` JSON, or
 * (without payload) that the compile took more memory than allowed.
 */
const FRAME_KINDS = { code: 0, error: 1, memory: 2 } as const
/** A frame: kind (1 byte), payload length (8 bytes, little-endian), payload. */
const FRAME_HEADER_BYTES = 9

export function frame(kind: keyof typeof FRAME_KINDS, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES)
  header.writeUInt8(FRAME_KINDS[kind], 0)
  header.writeBigUInt64LE(BigInt(payload.length), 1)
  return Buffer.concat([header, payload])
}

/**
 * The most a child may write for an input of `inputBytes`: what the on-disk cache reads for one
 * entry (crate/src/cache/disk.rs), and a frame's header.
 */
function maxOutputBytes(inputBytes: number): number {
  return 64 * 1024 * 1024 + 32 * inputBytes + FRAME_HEADER_BYTES
}

/**
 * This file's path, from V8's structured stack trace: the one way that works in both of the
 * package's builds (ES modules and CommonJS) and from the TypeScript sources under a loader. The
 * caller's own stack settings are put back.
 */
function ownFile(): string {
  const { prepareStackTrace, stackTraceLimit } = Error
  try {
    Error.stackTraceLimit = 1
    Error.prepareStackTrace = (_, frames) => frames
    const frames = new Error().stack as unknown as NodeJS.CallSite[]
    const name = frames[0]?.getFileName()
    if (name === undefined || name === null) throw new Error('no file name in the stack trace')
    return name.startsWith('file:') ? fileURLToPath(name) : name
  } finally {
    Error.prepareStackTrace = prepareStackTrace
    Error.stackTraceLimit = stackTraceLimit
  }
}

const OWN_FILE = ownFile()
const CHILD_FILE = join(OWN_FILE, '..', `compile-child${extname(OWN_FILE)}`)

/**
 * How the child is started: the package's built JavaScript needs nothing; its TypeScript sources
 * (the repository's tests) need the loader the parent was started with.
 */
function childArguments(request: ChildRequest): string[] {
  const loader = extname(OWN_FILE) === '.ts' ? process.execArgv : []
  return [...loader, CHILD_FILE, JSON.stringify(request)]
}

/** The parent's environment without NODE_OPTIONS: an `--inspect` or a preload there is the parent's own. */
function childEnvironment(): NodeJS.ProcessEnv {
  const environment = { ...process.env }
  delete environment.NODE_OPTIONS
  return environment
}

/** How a child's run ended, as both spawn functions report it. */
interface Outcome {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
  timedOut: boolean
  tooMuchOutput: boolean
}

/** The serialized code the child answered with, or the error its run means. */
function answer(outcome: Outcome, limits: ResolvedCompileLimits): Uint8Array {
  if (outcome.timedOut) {
    throw new CompileError(
      `compiling took longer than compileLimits.timeoutMs (${limits.timeoutMs} ms); the compiling process was stopped`,
    )
  }
  // A whole frame says what happened, even if the exit after it was not clean (code only if it was).
  const { stdout } = outcome
  const kind = stdout.length >= FRAME_HEADER_BYTES ? stdout.readUInt8(0) : undefined
  const payload = stdout.subarray(FRAME_HEADER_BYTES)
  const whole =
    kind !== undefined && !outcome.tooMuchOutput && stdout.readBigUInt64LE(1) === BigInt(payload.length)
  if (whole && kind === FRAME_KINDS.memory) {
    throw new CompileError(
      `compiling took more memory than compileLimits.memoryBytes (${limits.memoryBytes} bytes); the compiling process was stopped`,
    )
  }
  if (whole && kind === FRAME_KINDS.error) throw childError(payload)
  if (whole && kind === FRAME_KINDS.code && outcome.status === 0) return payload
  const how =
    outcome.signal !== null ? `was killed by ${outcome.signal}` : `exited with code ${outcome.status}`
  const said = outcome.stderr.trim().split('\n', 1)[0]?.slice(0, 500)
  throw new WasmError(
    `the compiling process ${how}${outcome.tooMuchOutput ? ' after writing too much' : ''}${said ? `: ${said}` : ''}`,
    { code: 'ERR_WASM_INTERNAL' },
  )
}

function notStarted(error: unknown): WasmError {
  const reason = error instanceof Error ? error.message : String(error)
  return new WasmError(`the compiling process did not start: ${reason}`, {
    code: 'ERR_WASM_INTERNAL',
    cause: error,
  })
}

/** The child's error as the class its code names (the same mapping as the addon's errors). */
function childError(payload: Buffer): unknown {
  const { code, message } = JSON.parse(payload.toString('utf8')) as { code?: unknown; message?: unknown }
  return fromNative(Object.assign(new Error(String(message)), { code }))
}

/** Compiles `bytes` (binary or WAT) in a child process; the serialized code it made. */
export async function compileInChild(
  kind: ChildRequest['kind'],
  bytes: Uint8Array,
  engine: NativeEngineOptions,
  limits: ResolvedCompileLimits,
  slots: ChildSlots,
): Promise<Uint8Array> {
  const release = await slots.take()
  try {
    return answer(await run(kind, bytes, engine, limits), limits)
  } finally {
    release()
  }
}

/** Runs one child to its end. */
function run(
  kind: ChildRequest['kind'],
  bytes: Uint8Array,
  engine: NativeEngineOptions,
  limits: ResolvedCompileLimits,
): Promise<Outcome> {
  const request: ChildRequest = { kind, engine, timeoutMs: limits.timeoutMs, memoryBytes: limits.memoryBytes }
  const maxOutput = maxOutputBytes(bytes.length)
  return new Promise<Outcome>((resolve, reject) => {
    let child: ChildProcessWithoutNullStreams
    try {
      // stdin, stdout and stderr are pipes (the default).
      child = spawn(process.execPath, childArguments(request), { env: childEnvironment(), windowsHide: true })
    } catch (error) {
      // Node's permission model, for one, refuses a spawn by throwing.
      reject(notStarted(error))
      return
    }
    const stdout: Buffer[] = []
    let stdoutBytes = 0
    let stderr = ''
    let timedOut = false
    let tooMuchOutput = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, limits.timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length
      if (stdoutBytes > maxOutput) {
        tooMuchOutput = true
        child.kill('SIGKILL')
      } else {
        stdout.push(chunk)
      }
    })
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8')
    })
    // A child that ends before reading all of its input closes the pipe: its exit says why.
    child.stdin.on('error', () => {})
    child.stdin.end(bytes)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(notStarted(error))
    })
    child.on('close', (status, signal) => {
      clearTimeout(timer)
      resolve({ status, signal, stdout: Buffer.concat(stdout), stderr, timedOut, tooMuchOutput })
    })
  })
}

/** {@link compileInChild} on the JS thread. */
export function compileInChildSync(
  kind: ChildRequest['kind'],
  bytes: Uint8Array,
  engine: NativeEngineOptions,
  limits: ResolvedCompileLimits,
): Uint8Array {
  const request: ChildRequest = { kind, engine, timeoutMs: limits.timeoutMs, memoryBytes: limits.memoryBytes }
  let result: SpawnSyncReturns<Buffer>
  try {
    result = spawnSync(process.execPath, childArguments(request), {
      env: childEnvironment(),
      input: bytes,
      maxBuffer: maxOutputBytes(bytes.length),
      timeout: limits.timeoutMs,
      killSignal: 'SIGKILL',
      windowsHide: true,
    })
  } catch (error) {
    throw notStarted(error)
  }
  const failed = result.error as NodeJS.ErrnoException | undefined
  if (failed !== undefined && failed.code !== 'ETIMEDOUT' && failed.code !== 'ENOBUFS')
    throw notStarted(failed)
  return answer(
    {
      status: result.status,
      signal: result.signal,
      stdout: result.stdout ?? Buffer.alloc(0),
      stderr: (result.stderr ?? Buffer.alloc(0)).subarray(0, 4096).toString('utf8'),
      timedOut: failed?.code === 'ETIMEDOUT',
      tooMuchOutput: failed?.code === 'ENOBUFS',
    },
    limits,
  )
}
