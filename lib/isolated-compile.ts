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
 * allocates between two reads); the parent kills it at the deadline, whatever it is doing, and
 * when its engine is closed. WAT text is parsed by the child only (resolving its labels takes time
 * growing with the square of their nesting: 2.5 MB took the parent 23 s, an outside probe), so a
 * text input is neither looked up in nor stored to `cacheDir`, whose files are keyed by binaries.
 * `validate` runs in a child too, binaries included (a component's types, checked again at each
 * instantiation, cost more than its size).
 */
import {
  type ChildProcessWithoutNullStreams,
  spawn,
  spawnSync,
  type SpawnSyncReturns,
} from 'node:child_process'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { CompileError, DisposedError, fromNative, WasmError } from './errors.js'
import { holdChild, type NativeEngineOptions, releaseChild } from './native.js'
import type { ResolvedCompileLimits } from './options.js'

/** What the parent asks of the child (its one argument, as JSON). */
export interface ChildRequest {
  /** Compile a module or a component, or validate either. */
  kind: 'module' | 'component' | 'validate'
  engine: NativeEngineOptions
  memoryBytes: number
  timeoutMs: number
  /**
   * Whether the parent keeps the child's stdin open after the input, so that its end (the
   * parent's process, or the worker that owned the engine, gone) ends the child. A sync compile's
   * stdin closes after the input; its parent's death shows as a new parent process.
   */
  watchStdin: boolean
}

/** How the child exits when it could not answer (a parent's broken request, a deadline without a parent). */
export const CHILD_FAILED = 70

/**
 * A frame's kind, its first byte: serialized code, an error as `{ code, message }` JSON, (without
 * payload) that the compile took more memory than allowed, or what validation found as
 * `{ message }` JSON (`null` when valid).
 */
const FRAME_KINDS = { code: 0, error: 1, memory: 2, validated: 3 } as const
/** A frame: kind (1 byte), payload length (8 bytes, little-endian), payload. */
const FRAME_HEADER_BYTES = 9

export function frame(kind: keyof typeof FRAME_KINDS, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(FRAME_KINDS[kind]), lengthPrefixed(payload)])
}

/** `bytes` after their length (8 bytes, little-endian): the child's input, and a frame's rest. */
function lengthPrefixed(bytes: Uint8Array): Buffer {
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(bytes.length))
  return Buffer.concat([length, bytes])
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
  /** Its engine was closed meanwhile (which killed it, if it still ran). */
  closed: boolean
}

/** The payload of the frame the child answered with (of `expected` kind), or the error its run means. */
function answer(outcome: Outcome, limits: ResolvedCompileLimits, expected: 'code' | 'validated'): Buffer {
  if (outcome.closed) throw new DisposedError('the engine was closed')
  const what = expected === 'code' ? 'compiling' : 'validating'
  if (outcome.timedOut) {
    throw new CompileError(
      `${what} took longer than compileLimits.timeoutMs (${limits.timeoutMs} ms); the ${what} process was stopped`,
    )
  }
  // A whole frame says what happened, even if the exit after it was not clean (an answer only if it was).
  const { stdout } = outcome
  const kind = stdout.length >= FRAME_HEADER_BYTES ? stdout.readUInt8(0) : undefined
  const payload = stdout.subarray(FRAME_HEADER_BYTES)
  const whole =
    kind !== undefined && !outcome.tooMuchOutput && stdout.readBigUInt64LE(1) === BigInt(payload.length)
  if (whole && kind === FRAME_KINDS.memory) {
    throw new CompileError(
      `${what} took more memory than compileLimits.memoryBytes (${limits.memoryBytes} bytes); the ${what} process was stopped`,
    )
  }
  if (whole && kind === FRAME_KINDS.error) throw childError(payload)
  if (whole && kind === FRAME_KINDS[expected] && outcome.status === 0) return payload
  const how =
    outcome.signal !== null ? `was killed by ${outcome.signal}` : `exited with code ${outcome.status}`
  const said = outcome.stderr.trim().split('\n', 1)[0]?.slice(0, 500)
  throw new WasmError(
    `the ${what} process ${how}${outcome.tooMuchOutput ? ' after writing too much' : ''}${said ? `: ${said}` : ''}`,
    { code: 'ERR_WASM_INTERNAL' },
  )
}

/** What a validating child found: `null` when valid, else why not. */
function validated(payload: Buffer): string | null {
  const { message } = JSON.parse(payload.toString('utf8')) as { message?: unknown }
  return typeof message === 'string' ? message : null
}

/**
 * Why validation says no when its child went past a bound: its CompileError's message (such
 * input could not compile within the bounds either). Other errors stay errors.
 */
function refusal(error: unknown): string {
  if (error instanceof CompileError) return error.message
  throw error
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

/** A child waiting for a slot (see {@link CompileChildren}). */
interface Waiting {
  start: () => void
  refuse: (error: unknown) => void
}

/**
 * One engine's children: at most `concurrency` run at once for its async compiles, the others
 * waiting in order, each deadline starting with its own child (a sync compile runs at once: it
 * holds its thread anyway). Closing kills the running children and refuses the waiting ones: a
 * closed engine compiles nothing, and a child can be stopped where a compile in the process
 * cannot.
 */
export class CompileChildren {
  readonly #limits: ResolvedCompileLimits
  readonly #engine: NativeEngineOptions
  #free: number
  readonly #waiting: Waiting[] = []
  readonly #running = new Set<ChildProcessWithoutNullStreams>()
  #closed = false

  constructor(limits: ResolvedCompileLimits, engine: NativeEngineOptions) {
    this.#limits = limits
    // The child's engine keeps no cache: the parent loads and stores what the child made.
    this.#engine = { ...engine, cacheDir: undefined }
    this.#free = limits.concurrency
  }

  /** Compiles `bytes` (binary or WAT) in a child; the serialized code it made. */
  async compile(kind: 'module' | 'component', bytes: Uint8Array): Promise<Uint8Array> {
    return answer(await this.#run(kind, bytes), this.#limits, 'code')
  }

  /** {@link CompileChildren.compile} on the JS thread. */
  compileSync(kind: 'module' | 'component', bytes: Uint8Array): Uint8Array {
    return answer(this.#runSync(kind, bytes), this.#limits, 'code')
  }

  /** Validates `bytes` in a child: `null` when valid, else why not (a bound passed included). */
  async validate(bytes: Uint8Array): Promise<string | null> {
    try {
      return validated(answer(await this.#run('validate', bytes), this.#limits, 'validated'))
    } catch (error) {
      return refusal(error)
    }
  }

  /** {@link CompileChildren.validate} on the JS thread. */
  validateSync(bytes: Uint8Array): string | null {
    try {
      return validated(answer(this.#runSync('validate', bytes), this.#limits, 'validated'))
    } catch (error) {
      return refusal(error)
    }
  }

  /** Kills the running children and refuses the waiting ones, with DisposedError. */
  close(): void {
    this.#closed = true
    for (const waiting of this.#waiting.splice(0)) waiting.refuse(new DisposedError('the engine was closed'))
    for (const child of this.#running) child.kill('SIGKILL')
  }

  #request(kind: ChildRequest['kind'], watchStdin: boolean): ChildRequest {
    const { timeoutMs, memoryBytes } = this.#limits
    return { kind, engine: this.#engine, timeoutMs, memoryBytes, watchStdin }
  }

  async #run(kind: ChildRequest['kind'], bytes: Uint8Array): Promise<Outcome> {
    if (this.#closed) throw new DisposedError('the engine was closed')
    if (this.#free > 0) this.#free--
    else await new Promise<void>((start, refuse) => this.#waiting.push({ start, refuse }))
    try {
      return await this.#spawn(this.#request(kind, true), bytes)
    } finally {
      const next = this.#waiting.shift()
      if (next === undefined) this.#free++
      else next.start()
    }
  }

  /** Runs one child to its end. */
  #spawn(request: ChildRequest, bytes: Uint8Array): Promise<Outcome> {
    const maxOutput = maxOutputBytes(bytes.length)
    return new Promise<Outcome>((resolve, reject) => {
      let child: ChildProcessWithoutNullStreams
      try {
        // stdin, stdout and stderr are pipes (the default).
        child = spawn(process.execPath, childArguments(request), {
          env: childEnvironment(),
          windowsHide: true,
        })
      } catch (error) {
        // Node's permission model, for one, refuses a spawn by throwing.
        reject(notStarted(error))
        return
      }
      // Node reaps a child in the loop that spawned it; a terminated worker's child would stay a
      // zombie, so the addon holds it until Node saw it end, and reaps it if the worker goes first.
      const held = child.pid === undefined ? 0 : holdChild(child.pid)
      child.on('exit', () => releaseChild(held))
      const stdout: Buffer[] = []
      let stdoutBytes = 0
      let stderr = ''
      let timedOut = false
      let tooMuchOutput = false
      this.#running.add(child)
      const timer = setTimeout(() => {
        timedOut = true
        child.kill('SIGKILL')
      }, this.#limits.timeoutMs)
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
      // Left open: its end tells the child that its parent is gone.
      child.stdin.write(lengthPrefixed(bytes))
      child.on('error', (error) => {
        clearTimeout(timer)
        this.#running.delete(child)
        reject(notStarted(error))
      })
      child.on('close', (status, signal) => {
        clearTimeout(timer)
        this.#running.delete(child)
        child.stdin.destroy()
        resolve({
          status,
          signal,
          stdout: Buffer.concat(stdout),
          stderr,
          timedOut,
          tooMuchOutput,
          closed: this.#closed,
        })
      })
    })
  }

  #runSync(kind: ChildRequest['kind'], bytes: Uint8Array): Outcome {
    if (this.#closed) throw new DisposedError('the engine was closed')
    let result: SpawnSyncReturns<Buffer>
    try {
      result = spawnSync(process.execPath, childArguments(this.#request(kind, false)), {
        env: childEnvironment(),
        input: lengthPrefixed(bytes),
        maxBuffer: maxOutputBytes(bytes.length),
        timeout: this.#limits.timeoutMs,
        killSignal: 'SIGKILL',
        windowsHide: true,
      })
    } catch (error) {
      throw notStarted(error)
    }
    const failed = result.error as NodeJS.ErrnoException | undefined
    if (failed !== undefined && failed.code !== 'ETIMEDOUT' && failed.code !== 'ENOBUFS')
      throw notStarted(failed)
    return {
      status: result.status,
      signal: result.signal,
      stdout: result.stdout ?? Buffer.alloc(0),
      stderr: (result.stderr ?? Buffer.alloc(0)).subarray(0, 4096).toString('utf8'),
      timedOut: failed?.code === 'ETIMEDOUT',
      tooMuchOutput: failed?.code === 'ENOBUFS',
      // A sync child runs on this thread: nothing closes the engine meanwhile.
      closed: false,
    }
  }
}
