#!/usr/bin/env node
/**
 * The `airssys-wasm` command (DESIGN §8): `run`, `inspect` and `validate`.
 *
 * Errors print `CODE: message` on stderr. Exit codes: 0 success, 1 any other failure, 2 usage or
 * configuration (including a bad argument value), 3 compile or link, 4 trap (timeout, fuel and
 * memory limits included) or abort.
 */
import { readFileSync, realpathSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'

import type { ComponentItem } from '../component.js'
import { loadManifest, MANIFEST_FILE, type Manifest } from '../sandbox/manifest.js'
import { Engine } from '../engine.js'
import {
  AbortError,
  CompileError,
  ConfigError,
  LinkError,
  TrapError,
  WasmError,
  WasmTypeError,
} from '../errors.js'
import type { Instance } from '../instance.js'
import type { ModuleItem } from '../module.js'
import { loadComponent } from '../sandbox/sandbox.js'
import { argumentsFromText, toJsonText } from '../util/json-values.js'
import { exportPaths, splitExportPath, wasmKind } from '../util/names.js'
import { parseFuncSignature, type FuncSignature } from '../util/wit-type.js'

/** Where the CLI writes; `process` in real use. */
export interface CliOutput {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
}

const EXIT = { success: 0, failure: 1, usage: 2, compile: 3, trap: 4 } as const

/** A command line the CLI cannot act on; `command` names the help that explains it. */
class UsageError extends Error {
  readonly code = 'ERR_USAGE'

  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message)
  }
}

const USAGE = `Usage: airssys-wasm <command> [options]

Runs untrusted WebAssembly components and core modules under hard limits, on Wasmtime.

Commands:
  run <dir|file.wasm> [ARGS...]  call an export under a manifest's (or the flags') limits
  inspect <file.wasm|dir>        list imports and exports with their types
  validate <dir>                 check a Component.toml and its wasm without running them

Options:
  -h, --help     show help; \`airssys-wasm <command> --help\` shows a command's
  -v, --version  print the version

Exit codes: 0 success, 1 other failure, 2 usage or configuration error,
3 compile or link error, 4 trap (including timeout, fuel and memory limits).
`

const RUN_HELP = `Usage: airssys-wasm run <dir|file.wasm> [--invoke NAME] [ARGS...] [options]

Calls an export and prints its result as JSON.

A directory (or its Component.toml) runs under the manifest's memory, fuel and timeout
limits; the flags may only lower them. A bare .wasm (or .wat) file has no manifest:
--memory is required, and fuel and timeout apply only when given.

Arguments:
  ARGS               one JSON value per parameter: 42, '[1,2]', '{"x":1}', '"text"'.
                     Text for a string parameter may be bare: run examples/hello world.
                     64-bit integers may be JSON numbers or strings ("18446744073709551615").
                     Put -- before arguments that start with "-": run m.wat -- -1

Options:
  --invoke NAME      export to call: a root name (greet) or iface#func.
                     Default: the only exported function, if there is exactly one.
  --fuel N           fuel budget for the call
  --timeout-ms N     wall-clock deadline for the call, in milliseconds
  --memory BYTES     memory limit in bytes (required for a bare .wasm)
  --json             print { result, metrics: { fuelConsumed, peakMemoryBytes, elapsedMs } }
                     (on failure: { error: { code, message }, metrics } as well as stderr)
  -h, --help         show this help

Output: JSON, where a bigint is a string ending in n ("42n"), a byte list is an array,
NaN and the infinities are strings, and a missing value (no result, an absent option) is
null; without --json, a function without a result prints nothing.
`

const INSPECT_HELP = `Usage: airssys-wasm inspect <file.wasm|dir> [--json]

Lists the imports and exports of a component (with WIT-like types) or a core module (with
core types). A directory inspects the wasm its Component.toml names. Nothing is run.

Options:
  --json      print { kind, imports, exports } as JSON
  -h, --help  show this help
`

const VALIDATE_HELP = `Usage: airssys-wasm validate <dir> [--json]

Checks a Component.toml against the default policy (every problem is listed) and compiles
the component it names, without running it.

Options:
  --json      print { ok, manifest, imports, exports } as JSON
  -h, --help  show this help
`

const HELP: Record<string, string> = { run: RUN_HELP, inspect: INSPECT_HELP, validate: VALIDATE_HELP }

function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: T,
  command: string,
) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true })
  } catch (error) {
    // node:util's errors (ERR_PARSE_ARGS_UNKNOWN_OPTION, ...) are usage errors of this command.
    throw new UsageError((error as Error).message, command)
  }
}

/** A flag holding a positive integer (`1000000` or `1_000_000`), or undefined when absent. */
function integerFlag(flag: string, text: string | undefined, command: string): number | undefined {
  if (text === undefined) return undefined
  const value = /^\d[\d_]*$/.test(text) ? Number(text.replaceAll('_', '')) : Number.NaN
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${flag} expects a positive integer, got "${text}"`, command)
  }
  return value
}

interface Limits {
  memoryBytes?: number
  fuel?: number
  timeoutMs?: number
}

interface ExportedFunction {
  name: string
  type: string
}

/** What `run` needs from a sandbox or a bare instance. */
interface Runner {
  functions: ExportedFunction[]
  call(name: string, args: unknown[]): Promise<unknown>
  metrics(): { fuelConsumed: number | null; peakMemoryBytes: number }
  close(): void
}

/** Functions a caller can invoke: root functions, and `iface#func` for exported interfaces. */
function exportedFunctions(items: readonly (ComponentItem | ModuleItem)[]): ExportedFunction[] {
  return items.flatMap((item) => {
    if (item.kind === 'func') return [{ name: item.name, type: item.type }]
    if (item.kind !== 'instance' || !('exports' in item)) return []
    return (item.exports ?? [])
      .filter((inner) => inner.kind === 'func')
      .map((inner) => ({ name: `${item.name}#${inner.name}`, type: inner.type }))
  })
}

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

function signatureOf(functions: ExportedFunction[], name: string): FuncSignature | undefined {
  const found = findFunction(functions, name)
  if (found === undefined) return undefined
  try {
    return parseFuncSignature(found.type)
  } catch {
    // A type this CLI cannot read: arguments are then plain JSON, checked by the binding.
    return undefined
  }
}

/** Whether `target` is a directory or a manifest file rather than a wasm file. */
function isManifestTarget(target: string): boolean {
  try {
    return statSync(target).isDirectory() || path.basename(target) === MANIFEST_FILE
  } catch {
    throw new UsageError(`cannot find ${target}`, 'run')
  }
}

async function manifestRunner(target: string, limits: Limits): Promise<Runner> {
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
  const sandbox = await loadComponent(manifest.file, { limits })
  return {
    functions: exportedFunctions(sandbox.component.exports),
    call: (name, args) => sandbox.call(name, args),
    metrics: () => {
      const metrics = sandbox.metrics()
      return { fuelConsumed: metrics.fuel.lastCallConsumed, peakMemoryBytes: metrics.memory.peakBytes }
    },
    close: () => sandbox.dispose(),
  }
}

async function readWasm(file: string, command: string): Promise<Uint8Array> {
  try {
    return await readFile(file)
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      command,
    )
  }
}

async function wasmRunner(file: string, limits: Limits): Promise<Runner> {
  if (limits.memoryBytes === undefined) {
    throw new UsageError(
      '--memory BYTES is required to run a bare .wasm file: there is no default memory limit ' +
        '(or run a directory whose Component.toml sets one)',
      'run',
    )
  }
  const bytes = await readWasm(file, 'run')
  const metered = limits.fuel !== undefined
  const engine = new Engine({ fuel: metered })
  try {
    const compiled =
      wasmKind(bytes) === 'component'
        ? await engine.compileComponent(bytes)
        : await engine.compileModule(bytes)
    const instance: Instance = await compiled.instantiate({
      limits: { memoryBytes: limits.memoryBytes },
      fuel: limits.fuel,
      timeoutMs: limits.timeoutMs,
    })
    return {
      functions: exportedFunctions(compiled.exports),
      call: (name, args) => instance.call(name, args),
      metrics: () => {
        const metrics = instance.metrics()
        return {
          fuelConsumed: metered ? metrics.fuel.lastCallConsumed : null,
          peakMemoryBytes: metrics.memory.peakBytes,
        }
      },
      close: () => {
        instance.dispose()
        engine.close()
      },
    }
  } catch (error) {
    engine.close()
    throw error
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'ERR_UNKNOWN'
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

async function run(args: readonly string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(
    args,
    {
      invoke: { type: 'string' },
      fuel: { type: 'string' },
      'timeout-ms': { type: 'string' },
      memory: { type: 'string' },
      json: { type: 'boolean' },
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
    memoryBytes: integerFlag('--memory', values.memory, 'run'),
    fuel: integerFlag('--fuel', values.fuel, 'run'),
    timeoutMs: integerFlag('--timeout-ms', values['timeout-ms'], 'run'),
  }
  const runner = isManifestTarget(target)
    ? await manifestRunner(target, limits)
    : await wasmRunner(target, limits)
  try {
    const name = chooseFunction(runner.functions, values.invoke)
    const callArgs = argumentsFromText(texts, signatureOf(runner.functions, name))
    const started = performance.now()
    const metrics = () => ({
      ...runner.metrics(),
      elapsedMs: Math.round((performance.now() - started) * 100) / 100,
    })
    let result: unknown
    try {
      result = await runner.call(name, callArgs)
    } catch (error) {
      if (values.json) {
        const failure = { code: errorCode(error), message: errorMessage(error) }
        io.stdout.write(`${toJsonText({ error: failure, metrics: metrics() })}\n`)
      }
      throw error
    }
    if (values.json) io.stdout.write(`${toJsonText({ result, metrics: metrics() })}\n`)
    else if (result !== undefined) io.stdout.write(`${toJsonText(result)}\n`)
    return EXIT.success
  } finally {
    runner.close()
  }
}

/** One item per line, interfaces with their members indented below them. */
function listItems(items: readonly (ComponentItem | ModuleItem)[], indent = '  '): string[] {
  if (items.length === 0) return [`${indent}(none)`]
  return items.flatMap((item) => {
    const name = 'module' in item && item.module !== undefined ? `${item.module}.${item.name}` : item.name
    // Every type string names its kind (`func(...)`, `memory(...)`) except a type definition's.
    const type = item.kind === 'type' ? `type ${item.type}` : item.type
    if (item.kind === 'instance' && 'exports' in item) {
      return [`${indent}${name}: instance`, ...listItems(item.exports ?? [], `${indent}  `)]
    }
    return [`${indent}${name}: ${type}`]
  })
}

async function inspect(args: readonly string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(
    args,
    { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    'inspect',
  )
  if (values.help) {
    io.stdout.write(INSPECT_HELP)
    return EXIT.success
  }
  const [target, ...extra] = positionals
  if (target === undefined)
    throw new UsageError('inspect needs a .wasm file (or a directory with a Component.toml)', 'inspect')
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'inspect')
  let isDirectory = false
  try {
    isDirectory = statSync(target).isDirectory()
  } catch {
    throw new UsageError(`cannot find ${target}`, 'inspect')
  }
  const file = isDirectory ? loadManifest(target).wasmPath : target
  const bytes = await readWasm(file, 'inspect')
  const engine = new Engine()
  try {
    const kind = wasmKind(bytes)
    const compiled =
      kind === 'component' ? await engine.compileComponent(bytes) : await engine.compileModule(bytes)
    const { imports, exports } = compiled
    if (values.json) {
      io.stdout.write(`${toJsonText({ kind, imports, exports }, 2)}\n`)
    } else {
      const lines = [`${kind} ${file}`, 'imports:', ...listItems(imports), 'exports:', ...listItems(exports)]
      io.stdout.write(`${lines.join('\n')}\n`)
    }
    return EXIT.success
  } finally {
    engine.close()
  }
}

function describeLimits(manifest: Manifest): string {
  const { memory, cpu } = manifest.resources
  return `memory ${memory.maxBytes} bytes, fuel ${cpu.maxFuel} per call, timeout ${cpu.timeoutMs} ms per call`
}

async function validate(args: readonly string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(
    args,
    { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    'validate',
  )
  if (values.help) {
    io.stdout.write(VALIDATE_HELP)
    return EXIT.success
  }
  const [target, ...extra] = positionals
  if (target === undefined)
    throw new UsageError('validate needs a directory with a Component.toml', 'validate')
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, 'validate')
  const manifest = loadManifest(target)
  const engine = new Engine()
  try {
    const component = await engine.compileComponent(await readWasm(manifest.wasmPath, 'validate'))
    const { imports, exports } = component
    if (values.json) {
      io.stdout.write(`${toJsonText({ ok: true, manifest, imports, exports }, 2)}\n`)
      return EXIT.success
    }
    const { name, version, wasm } = manifest.component
    const lines = [
      `${manifest.file}: ok`,
      `  component: ${name} ${version} (${wasm})`,
      `  limits: ${describeLimits(manifest)}`,
      `  exports: ${
        exportedFunctions(exports)
          .map((f) => `${f.name}: ${f.type}`)
          .join(', ') || 'none'
      }`,
      `  imports: ${imports.map((item) => item.name).join(', ') || 'none'}`,
    ]
    io.stdout.write(`${lines.join('\n')}\n`)
    return EXIT.success
  } finally {
    engine.close()
  }
}

function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof WasmTypeError)
    return EXIT.usage
  if (errorCode(error) === 'ERR_USAGE') return EXIT.usage
  if (error instanceof CompileError || error instanceof LinkError) return EXIT.compile
  if (error instanceof TrapError || error instanceof AbortError) return EXIT.trap
  return EXIT.failure
}

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return manifest.version
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and returns the exit code; writes to
 * `io` (the process's streams by default) and never calls `process.exit` itself.
 */
export async function main(argv: readonly string[], io: CliOutput = process): Promise<number> {
  const [command, ...rest] = argv
  try {
    switch (command) {
      case undefined:
        io.stderr.write(USAGE)
        return EXIT.usage
      case '-h':
      case '--help':
        io.stdout.write(USAGE)
        return EXIT.success
      case 'help': {
        const topic = rest[0] === undefined ? USAGE : HELP[rest[0]]
        if (topic === undefined) throw new UsageError(`no help for unknown command "${rest[0]}"`)
        io.stdout.write(topic)
        return EXIT.success
      }
      case '-v':
      case '--version':
        io.stdout.write(`${version()}\n`)
        return EXIT.success
      case 'run':
        return await run(rest, io)
      case 'inspect':
        return await inspect(rest, io)
      case 'validate':
        return await validate(rest, io)
      default:
        throw new UsageError(`unknown command "${command}"`)
    }
  } catch (error) {
    io.stderr.write(`${errorCode(error)}: ${errorMessage(error)}\n`)
    if (error instanceof UsageError) {
      const help =
        error.command === undefined ? 'airssys-wasm --help' : `airssys-wasm ${error.command} --help`
      io.stderr.write(`Run \`${help}\` for usage.\n`)
    }
    // Anything that is not ours (a bug, an fs failure) keeps its stack for the report.
    if (!(error instanceof WasmError || error instanceof UsageError || errorCode(error) === 'ERR_USAGE')) {
      io.stderr.write(`${error instanceof Error ? error.stack : ''}\n`)
    }
    return exitCodeOf(error)
  }
}

/** Whether this file is the process's entry point (also through npm's bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) process.exitCode = await main(process.argv.slice(2))
