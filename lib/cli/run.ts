/**
 * `airssys-wasm run`: runs a WASI command as `wasmtime run` does (argv, stdio, exit code), or calls
 * an export under a manifest's (or the flags') limits and prints the result.
 */
import { createReadStream, statSync } from 'node:fs'
import path from 'node:path'

import { Engine } from '../engine.js'
import { AbortError, ConfigError, HostLimitError, TimeoutError, WasiExitError, WasmError } from '../errors.js'
import type { Instance, WasiOptions } from '../instance.js'
import { RULES } from '../options.js'
import { loadManifest, MANIFEST_FILE } from '../sandbox/manifest.js'
import { readComponentWasm } from '../sandbox/paths.js'
import { compileManifestWasm, loadComponent } from '../sandbox/sandbox.js'
import { argumentsFromText } from '../util/json-values.js'
import { exportPaths, splitExportPath, wasmKind } from '../util/names.js'
import { integerFlag, jsonRequested, parse, UsageError } from './args.js'
import { errorFields, EXIT, RunInterrupted } from './exit.js'
import { RUN_HELP } from './help.js'
import { backedUp, boundedJsonText, MAX_JSON_TEXT, printText, type CliOutput } from './output.js'
import { exportedFunctions, readWasm, type ExportedFunction } from './wasm.js'

interface Limits {
  memoryBytes?: number
  fuel?: number
  timeoutMs?: number
}

/** What the guest gets through WASI: always piped, so the CLI prints its output escaped. */
type RunWasi = WasiOptions & { stdout: 'pipe'; stderr: 'pipe' }

/** A call's figures, as `--json` prints them. */
interface RunMetrics {
  fuelConsumed: number | null
  peakMemoryBytes: number
}

/** What `run` needs from a sandbox or a bare instance. */
interface Runner {
  call(name: string, args: unknown[], signal?: AbortSignal): Promise<unknown>
  metrics(): RunMetrics
  /** What the guest wrote to its WASI stdout and stderr (piped, to be printed escaped). */
  takeOutput(): { stdout: string; stderr: string }
  close(): void
}

/** A compiled target before it runs: what it exports, and how to start it with its WASI setup. */
interface Target {
  functions: ExportedFunction[]
  /** Instantiates it; `signal` stops its start code. */
  start(wasi: RunWasi, signal: AbortSignal | undefined): Promise<Runner>
  /** Closes the engine (after the runner is closed). */
  close(): void
}

/**
 * How much output a guest's pipe holds before its writes wait for the CLI to take it
 * (`outputOverflow: 'wait'`, as on a full OS pipe): nothing is dropped. The CLI takes it every
 * {@link TAKE_EVERY_MS}, so this is what a guest writes at full speed between two takes.
 */
const PIPE_BYTES = 16 * 1024 * 1024
const TAKE_EVERY_MS = 20

/** The export `requested` names, as `call` resolves it (versionless, lowerCamelCase). */
function findFunction(functions: ExportedFunction[], requested: string): ExportedFunction | undefined {
  return functions.find((candidate) => {
    const { interfaceName, name } = splitExportPath(candidate.name)
    return exportPaths(interfaceName, name).includes(requested)
  })
}

function chooseFunction(functions: ExportedFunction[], invoke: string | undefined): string {
  if (invoke !== undefined) return invoke
  const [only, ...others] = functions
  if (only !== undefined && others.length === 0) return only.name
  const names = functions.length === 0 ? 'none' : functions.map((f) => f.name).join(', ')
  throw new UsageError(
    `--invoke NAME is required: the wasm exports ${functions.length} functions (${names})`,
    'run',
  )
}

/**
 * The export that makes the wasm a WASI command: `_start` of a core module, or `run` of an
 * exported `wasi:cli/run@...` of a component. Undefined for anything else.
 */
function commandExport(functions: ExportedFunction[]): string | undefined {
  return functions.find(({ name }) => name === '_start' || /^wasi:cli\/run@[^#]+#run$/.test(name))?.name
}

/** Whether `target` is a directory or a manifest file rather than a wasm file. */
function isManifestTarget(target: string): boolean {
  try {
    return statSync(target).isDirectory() || path.basename(target) === MANIFEST_FILE
  } catch {
    throw new UsageError(`cannot find ${target}`, 'run')
  }
}

async function manifestTarget(target: string, limits: Limits): Promise<Target> {
  const manifest = loadManifest(target)
  const ceilings: [string, number | undefined, number, string][] = [
    ['--memory', limits.memoryBytes, manifest.resources.memory.maxBytes, 'resources.memory.max_bytes'],
    ['--fuel', limits.fuel, manifest.resources.cpu.maxFuel, 'resources.cpu.max_fuel'],
    ['--timeout-ms', limits.timeoutMs, manifest.resources.cpu.timeoutMs, 'the resources.cpu timeout in ms'],
  ]
  for (const [flag, value, ceiling, field] of ceilings) {
    if (value !== undefined && value > ceiling) {
      throw new ConfigError(
        `${flag} ${value} is above ${field} (${ceiling}): flags may only lower a manifest's limits`,
        {
          path: flag,
          value,
          allowed: `1..${ceiling}`,
        },
      )
    }
  }
  const engine = new Engine({ fuel: true })
  try {
    // Compiled here to learn whether it is a command (which decides its argv) before it runs;
    // loadComponent reuses this compiled code for the same bytes on the same engine.
    const compiled = await compileManifestWasm(
      engine,
      await readComponentWasm(manifest, engine.maxModuleBytes),
    )
    return {
      functions: exportedFunctions(compiled.exports),
      start: async (wasi, signal) => {
        const { preopens: _files, ...rest } = wasi
        const sandbox = await loadComponent(manifest.file, { engine, limits, wasi: rest, signal })
        return {
          call: (name, args, signal) => sandbox.call(name, args, { signal }),
          metrics: () => {
            const metrics = sandbox.metrics()
            return { fuelConsumed: metrics.fuel.lastCallConsumed, peakMemoryBytes: metrics.memory.peakBytes }
          },
          takeOutput: () => sandbox.takeOutput(),
          close: () => sandbox.dispose(),
        }
      },
      close: () => engine.close(),
    }
  } catch (error) {
    engine.close()
    throw error
  }
}

async function wasmTarget(file: string, limits: Limits): Promise<Target> {
  const { memoryBytes } = limits
  if (memoryBytes === undefined) {
    throw new UsageError(
      '--memory BYTES is required to run a bare .wasm file: there is no default memory limit ' +
        '(or run a directory whose Component.toml sets one)',
      'run',
    )
  }
  const metered = limits.fuel !== undefined
  const engine = new Engine({ fuel: metered })
  try {
    const bytes = await readWasm(file, 'run', engine.maxModuleBytes)
    const compiled =
      wasmKind(bytes) === 'component'
        ? await engine.compileComponent(bytes)
        : await engine.compileModule(bytes)
    return {
      functions: exportedFunctions(compiled.exports),
      start: async (wasi, signal) => {
        const instance: Instance = await compiled.instantiate({
          limits: { memoryBytes },
          fuel: limits.fuel,
          timeoutMs: limits.timeoutMs,
          wasi,
          signal,
        })
        return {
          call: (name, args, signal) => instance.call(name, args, { signal }),
          metrics: () => {
            const metrics = instance.metrics()
            return {
              fuelConsumed: metered ? metrics.fuel.lastCallConsumed : null,
              peakMemoryBytes: metrics.memory.peakBytes,
            }
          },
          takeOutput: () => instance.takeOutput(),
          close: () => instance.dispose(),
        }
      },
      close: () => engine.close(),
    }
  } catch (error) {
    engine.close()
    throw error
  }
}

/**
 * `--dir` and `--dir-rw` values (`HOST[::GUEST]`) as preopens. Without `::GUEST` the guest sees
 * the directory under the path as written, as `wasmtime run --dir` does.
 */
function preopens(
  readOnly: readonly string[],
  writable: readonly string[],
): NonNullable<WasiOptions['preopens']> {
  const result: NonNullable<WasiOptions['preopens']> = {}
  const add = (flag: string, value: string, write: boolean) => {
    const separator = value.indexOf('::')
    const host = separator === -1 ? value : value.slice(0, separator)
    const guest = separator === -1 ? value : value.slice(separator + 2)
    if (host === '' || guest === '') {
      throw new UsageError(`${flag} expects HOST or HOST::GUEST, got "${value}"`, 'run')
    }
    let isDirectory: boolean
    try {
      isDirectory = statSync(host).isDirectory()
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error)
      throw new UsageError(`${flag} ${value}: cannot use ${host}: ${reason}`, 'run')
    }
    if (!isDirectory) throw new UsageError(`${flag} ${value}: ${host} is not a directory`, 'run')
    if (guest in result)
      throw new UsageError(`${flag} ${value}: the guest path ${guest} is given twice`, 'run')
    result[guest] = write ? { host: path.resolve(host), write: true } : path.resolve(host)
  }
  for (const value of readOnly) add('--dir', value, false)
  for (const value of writable) add('--dir-rw', value, true)
  return result
}

/** `--env` values: `NAME=VALUE`, or `NAME` alone for the CLI's own value of it. */
function environment(values: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const value of values) {
    const equals = value.indexOf('=')
    const name = equals === -1 ? value : value.slice(0, equals)
    if (name === '') throw new UsageError(`--env expects NAME=VALUE or NAME, got "${value}"`, 'run')
    if (equals === -1) {
      const inherited = process.env[name]
      if (inherited === undefined) {
        throw new UsageError(`--env ${name}: ${name} is not set here (use ${name}=VALUE)`, 'run')
      }
      env[name] = inherited
    } else {
      env[name] = value.slice(equals + 1)
    }
  }
  return env
}

/** The most `--stdin` reads: the guest's stdin is held in memory whole. */
export const STDIN_MAX_BYTES = 64 * 1024 * 1024

/**
 * `--stdin FILE`, or `-` for the CLI's own stdin, read to its end: the bytes the guest reads. An
 * endless source (`yes |`, `/dev/zero`) stops at {@link STDIN_MAX_BYTES}, a usage error.
 */
async function stdinBytes(
  source: string | undefined,
  interrupted: AbortSignal | undefined,
): Promise<Uint8Array | undefined> {
  if (source === undefined) return undefined
  const stream = source === '-' ? process.stdin : createReadStream(source)
  const reading = readAll(stream, source)
  if (interrupted === undefined) return reading
  // A terminal or a FIFO may never end: a signal does not wait for it, nor for a read the file
  // system cannot cancel (whose wait the entry point's exit cuts short).
  return new Promise((resolve, reject) => {
    const stop = () => {
      stream.destroy()
      reject(new RunInterrupted(interrupted.reason as NodeJS.Signals, undefined))
    }
    if (interrupted.aborted) return stop()
    interrupted.addEventListener('abort', stop, { once: true })
    reading.then(resolve, reject).finally(() => interrupted.removeEventListener('abort', stop))
  })
}

/** All of `stream`, at most {@link STDIN_MAX_BYTES}, for `--stdin source`. */
async function readAll(stream: NodeJS.ReadableStream, source: string): Promise<Uint8Array> {
  const chunks: Buffer[] = []
  let total = 0
  try {
    for await (const chunk of stream) {
      total += (chunk as Buffer).length
      if (total > STDIN_MAX_BYTES) {
        throw new UsageError(
          `--stdin ${source}: more than ${STDIN_MAX_BYTES / (1024 * 1024)} MiB; the guest's stdin is held in memory`,
          'run',
        )
      }
      chunks.push(chunk as Buffer)
    }
  } catch (error) {
    if (error instanceof UsageError) throw error
    const reason = (error as NodeJS.ErrnoException).code ?? String(error)
    throw new UsageError(`--stdin ${source}: cannot read it: ${reason}`, 'run')
  }
  return Buffer.concat(chunks)
}

/**
 * A guest's exit status as the process's: 1..255 pass through; anything beyond is 1, since the
 * system keeps only the low byte and `exit(256)` must not read as success.
 */
function processExitCode(status: number): number {
  return Number.isInteger(status) && status >= 1 && status <= 255 ? status : EXIT.failure
}

/** What a call wrote: under `--json`, `dropped` once it was more than a document may hold. */
interface Output {
  stdout: string
  stderr: string
  dropped?: boolean
}

/**
 * Calls `name` while taking what the guest writes, whose writes wait once its pipe is full
 * (probe Z51: with its oldest bytes dropped instead, `run tool.wasm > out` lost tens of MB
 * of a 100 MB output, exit 0): printed as it comes, escaped, no faster than the reader takes it,
 * so a slow reader holds the guest back as a pipe does; or, under `--json`, kept for the
 * document until it could no longer fit one (then dropped, and the document says so). Returns
 * what was kept (nothing when printed).
 */
async function callTaking(
  runner: Runner,
  name: string,
  args: unknown[],
  json: boolean,
  io: CliOutput,
): Promise<{ outcome: { result: unknown } | { error: unknown }; output: Output }> {
  const output: Output = { stdout: '', stderr: '' }
  const take = async () => {
    const { stdout, stderr } = runner.takeOutput()
    if (!json) {
      await printText(io.stdout, stdout, io.interrupted)
      await printText(io.stderr, stderr, io.interrupted)
    } else if (output.dropped !== true) {
      // Past this, the document would pass its bound: what follows is only taken, to let the guest go on.
      if (output.stdout.length + output.stderr.length + stdout.length + stderr.length > MAX_JSON_TEXT) {
        Object.assign(output, { stdout: '', stderr: '', dropped: true })
      } else {
        output.stdout += stdout
        output.stderr += stderr
      }
    }
  }
  let taking: Promise<void> | undefined
  const taker = setInterval(() => {
    if (taking === undefined && !backedUp(io.stdout) && !backedUp(io.stderr)) {
      taking = take().finally(() => (taking = undefined))
    }
  }, TAKE_EVERY_MS)
  let outcome: { result: unknown } | { error: unknown }
  try {
    outcome = { result: await runner.call(name, args, stopSignal(io)) }
  } catch (error) {
    outcome = { error }
  } finally {
    clearInterval(taker)
    await taking
  }
  await take()
  return { outcome, output }
}

/**
 * Runs a WASI command to its end, printing its output as it comes (escaped, through `io`); the
 * guest's `exit(n)` is the returned code. Other failures (a trap, the deadline) are thrown.
 */
async function runCommand(runner: Runner, name: string, io: CliOutput): Promise<number> {
  const { outcome } = await callTaking(runner, name, [], false, io)
  if (!('error' in outcome)) return EXIT.success
  if (outcome.error instanceof WasiExitError) return processExitCode(outcome.error.exitCode)
  throw outcome.error
}

/**
 * A command under `--json`: one document, as for an invoked function (`result` null, its metrics
 * and output); an exit with a non-zero code is `{ error }` with `exitCode`, and the status is that
 * code, as without `--json`.
 */
async function commandJson(
  runner: Runner,
  functions: ExportedFunction[],
  command: string,
  io: CliOutput,
  failed: { call?: FailedCall },
): Promise<number> {
  try {
    return await invoke(runner, functions, command, [], true, io, failed)
  } catch (error) {
    if (!(error instanceof WasiExitError)) throw error
    await printText(io.stdout, `${errorDocument(error, failed.call)}\n`)
    return processExitCode(error.exitCode)
  }
}

/** What a failed call leaves for `--json` to print beside its error. */
interface FailedCall extends Output {
  metrics: RunMetrics & { elapsedMs: number }
}

/**
 * Calls one export with JSON arguments and prints its result (as JSON). Under `--json` the
 * guest's output goes into the one document on stdout (`stdout`, `stderr`), so that it parses;
 * what the call left is put in `failed` for `run` to print with an error (the call's, or the
 * refusal of a result too large to print).
 */
async function invoke(
  runner: Runner,
  functions: ExportedFunction[],
  requested: string | undefined,
  texts: string[],
  json: boolean,
  io: CliOutput,
  failed: { call?: FailedCall },
): Promise<number> {
  const name = chooseFunction(functions, requested)
  const callArgs = argumentsFromText(texts, findFunction(functions, name)?.signature)
  const started = performance.now()
  const { outcome, output } = await callTaking(runner, name, callArgs, json, io)
  const metrics = { ...runner.metrics(), elapsedMs: msSince(started) }
  // A deadline or an abort that stops the guest inside wasm unwinds compiled code before it
  // writes its fuel count back: no figure (null). One that stops it while it waits on a host
  // function has the figure, on the error.
  if ('error' in outcome && (outcome.error instanceof TimeoutError || outcome.error instanceof AbortError)) {
    metrics.fuelConsumed = outcome.error.fuelConsumed ?? null
  }
  // Also for a result too large to print: the call ran, and its document says what it did.
  failed.call = { metrics, ...output }
  if ('error' in outcome) throw outcome.error
  if (json) await printText(io.stdout, `${documentText({ result: outcome.result, metrics }, output)}\n`)
  else if (outcome.result !== undefined || returnsValue(findFunction(functions, name))) {
    // An absent option is null here too; only a function without a result prints nothing.
    await printText(io.stdout, `${boundedJsonText(outcome.result ?? null)}\n`)
  }
  return EXIT.success
}

/** Milliseconds since `start` (a `performance.now()`), to a hundredth. */
function msSince(start: number): number {
  return Math.round((performance.now() - start) * 100) / 100
}

/** Whether `exported` has a result (its type spells one: `func(...) -> T`). */
function returnsValue(exported: ExportedFunction | undefined): boolean {
  return exported?.type.includes(') -> ') ?? false
}

/** `--json`'s document for a failure. */
function errorDocument(error: unknown, call: FailedCall | undefined): string {
  const { stdout, stderr, dropped, ...fields } = call ?? {}
  const output = stdout === undefined || stderr === undefined ? undefined : { stdout, stderr, dropped }
  return documentText({ error: errorFields(error), ...fields }, output)
}

/**
 * `--json`'s document of `fields` and the guest's `output`: when that is too large to print, the
 * document says so (`outputDropped`) in place of holding it, and the run's outcome stays the
 * same (a command that printed 12 MiB of control characters, six times as long escaped, was a
 * HostLimitError under `--json` only). A document too large without any output is refused.
 */
function documentText(fields: object, output: Output | undefined): string {
  if (output?.dropped === true) return boundedJsonText({ ...fields, outputDropped: true })
  try {
    const printed = output === undefined ? {} : { stdout: output.stdout, stderr: output.stderr }
    return boundedJsonText({ ...fields, ...printed })
  } catch (tooLarge) {
    const printed = output !== undefined && (output.stdout !== '' || output.stderr !== '')
    if (!(tooLarge instanceof HostLimitError) || !printed) throw tooLarge
    return boundedJsonText({ ...fields, outputDropped: true })
  }
}

/**
 * `run`. Under `--json` stdout holds exactly one JSON document whatever happens: a failure before
 * the call (a bad flag, the manifest, compiling, linking, instantiating) prints `{ error }`, and
 * a failed call adds its metrics and output.
 */
export async function run(args: readonly string[], io: CliOutput): Promise<number> {
  const failed: { call?: FailedCall } = {}
  let code: number
  try {
    code = await runParsed(args, io, failed)
  } catch (caught) {
    // Nobody reads what is left to say: stopped quietly, as a writer killed by SIGPIPE is.
    if (caught instanceof AbortError && io.readerGone?.aborted === true) return EXIT.readerGone
    const interrupted =
      io.interrupted?.aborted === true && caught instanceof AbortError && !(caught instanceof RunInterrupted)
    const error = interrupted ? new RunInterrupted(io.interrupted!.reason as NodeJS.Signals, caught) : caught
    if (jsonRequested(args)) io.stdout.write(`${errorDocument(error, failed.call)}\n`)
    throw error
  }
  // The guest had ended, but the signal cut what was left to print (a guest can be 32 MiB ahead
  // of its reader): said as for a stopped guest. A --json document is the whole answer.
  if (io.interrupted?.aborted === true && !jsonRequested(args)) {
    throw new RunInterrupted(io.interrupted.reason as NodeJS.Signals, undefined)
  }
  return code
}

/**
 * The runner `starting` gives. When its start code fails, what that left (the output that is
 * often the explanation, a panic's message) is printed as a call's is, or put in `failed` for
 * `--json`'s document.
 */
async function started(
  starting: Promise<Runner>,
  json: boolean,
  io: CliOutput,
  failed: { call?: FailedCall },
): Promise<Runner> {
  const began = performance.now()
  try {
    return await starting
  } catch (error) {
    const left = error instanceof WasmError ? error.failedStart : undefined
    if (left === undefined) throw error
    const { stdout, stderr } = left
    if (!json) {
      await printText(io.stdout, stdout, io.interrupted)
      await printText(io.stderr, stderr, io.interrupted)
    }
    failed.call = {
      metrics: {
        fuelConsumed: left.fuelConsumed ?? null,
        peakMemoryBytes: left.peakBytes,
        elapsedMs: msSince(began),
      },
      stdout,
      stderr,
    }
    throw error
  }
}

/**
 * A command whose start code called `exit(n)`: the run's status is n, as for an exit in its
 * `_start` (0 a success), with `--json`'s document as for a command (its output already printed
 * without, by {@link started}).
 */
async function exitedInStart(
  error: WasiExitError,
  json: boolean,
  io: CliOutput,
  call: FailedCall | undefined,
): Promise<number> {
  if (json) {
    const { stdout = '', stderr = '', metrics } = call ?? {}
    const document =
      error.exitCode === 0
        ? documentText({ result: null, metrics }, { stdout, stderr })
        : errorDocument(error, call)
    await printText(io.stdout, `${document}\n`)
  }
  return error.exitCode === 0 ? EXIT.success : processExitCode(error.exitCode)
}

/** What stops a call: its output's reader leaving, or the process being asked to stop. */
function stopSignal(io: CliOutput): AbortSignal | undefined {
  const signals = [io.readerGone, io.interrupted].filter((signal) => signal !== undefined)
  return signals.length > 1 ? AbortSignal.any(signals) : signals[0]
}

async function runParsed(
  args: readonly string[],
  io: CliOutput,
  failed: { call?: FailedCall },
): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      invoke: { type: 'string' },
      fuel: { type: 'string' },
      'timeout-ms': { type: 'string' },
      memory: { type: 'string' },
      json: { type: 'boolean' },
      dir: { type: 'string', multiple: true },
      'dir-rw': { type: 'string', multiple: true },
      env: { type: 'string', multiple: true },
      arg: { type: 'string', multiple: true },
      stdin: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    'run',
  )
  if (values.help) {
    io.stdout.write(RUN_HELP)
    return EXIT.success
  }
  const [target, ...texts] = positionals
  if (target === undefined)
    throw new UsageError('run needs a directory with a Component.toml, or a .wasm file', 'run')
  const limits: Limits = {
    // Named by their flags past the largest the options take (it was the option's own message).
    memoryBytes: integerFlag('--memory', values.memory, 'run', RULES['limits.memoryBytes'].max),
    fuel: integerFlag('--fuel', values.fuel, 'run', RULES.fuel.max),
    timeoutMs: integerFlag('--timeout-ms', values['timeout-ms'], 'run', RULES.timeoutMs.max),
  }
  const fromManifest = isManifestTarget(target)
  const dirs = [...(values.dir ?? []), ...(values['dir-rw'] ?? [])]
  if (fromManifest && dirs.length > 0) {
    throw new UsageError(
      "--dir and --dir-rw are for a bare .wasm: a manifest's files are its [permissions] " +
        'filesystem.read and filesystem.write grants',
      'run',
    )
  }
  const wasi: RunWasi = {
    stdout: 'pipe',
    stderr: 'pipe',
    outputLimitBytes: PIPE_BYTES,
    outputOverflow: 'wait',
    env: environment(values.env ?? []),
    preopens: preopens(values.dir ?? [], values['dir-rw'] ?? []),
    stdin: await stdinBytes(values.stdin, io.interrupted),
  }
  const compiled = fromManifest ? await manifestTarget(target, limits) : await wasmTarget(target, limits)
  try {
    const command = values.invoke === undefined ? commandExport(compiled.functions) : undefined
    // argv[0] is the path as given, as for any program; a command also gets the words after it.
    const argv = [target, ...(values.arg ?? []), ...(command === undefined ? [] : texts)]
    let runner: Runner
    try {
      runner = await started(
        compiled.start({ ...wasi, args: argv }, stopSignal(io)),
        values.json ?? false,
        io,
        failed,
      )
    } catch (error) {
      if (command === undefined || !(error instanceof WasiExitError)) throw error
      return await exitedInStart(error, values.json ?? false, io, failed.call)
    }
    try {
      if (command === undefined) {
        return await invoke(
          runner,
          compiled.functions,
          values.invoke,
          texts,
          values.json ?? false,
          io,
          failed,
        )
      }
      return values.json
        ? await commandJson(runner, compiled.functions, command, io, failed)
        : await runCommand(runner, command, io)
    } finally {
      runner.close()
    }
  } finally {
    compiled.close()
  }
}
