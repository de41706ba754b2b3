/** `airssys-wasm run`: calls an export under a manifest's (or the flags') limits and prints the result. */
import { statSync } from 'node:fs'
import path from 'node:path'

import { Engine } from '../engine.js'
import { ConfigError } from '../errors.js'
import type { Instance } from '../instance.js'
import { loadManifest, MANIFEST_FILE } from '../sandbox/manifest.js'
import { loadComponent } from '../sandbox/sandbox.js'
import { argumentsFromText, toJsonText } from '../util/json-values.js'
import { exportPaths, splitExportPath, wasmKind } from '../util/names.js'
import { integerFlag, parse, UsageError } from './args.js'
import { errorCode, errorMessage, EXIT } from './exit.js'
import { RUN_HELP } from './help.js'
import type { CliOutput } from './output.js'
import { exportedFunctions, readWasm, type ExportedFunction } from './wasm.js'

interface Limits {
  memoryBytes?: number
  fuel?: number
  timeoutMs?: number
}

/** What `run` needs from a sandbox or a bare instance. */
interface Runner {
  functions: ExportedFunction[]
  call(name: string, args: unknown[]): Promise<unknown>
  metrics(): { fuelConsumed: number | null; peakMemoryBytes: number }
  /** What the guest wrote to its WASI stdout and stderr (piped, to be printed escaped). */
  takeOutput(): { stdout: string; stderr: string }
  close(): void
}

/** Guest output is kept and printed by the CLI, never written to the terminal by the guest itself. */
const PIPED = { stdout: 'pipe', stderr: 'pipe' } as const

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
  const sandbox = await loadComponent(manifest.file, { limits, wasi: PIPED })
  return {
    functions: exportedFunctions(sandbox.component.exports),
    call: (name, args) => sandbox.call(name, args),
    metrics: () => {
      const metrics = sandbox.metrics()
      return { fuelConsumed: metrics.fuel.lastCallConsumed, peakMemoryBytes: metrics.memory.peakBytes }
    },
    takeOutput: () => sandbox.takeOutput(),
    close: () => sandbox.dispose(),
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
      wasi: PIPED,
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
      takeOutput: () => instance.takeOutput(),
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

export async function run(args: readonly string[], io: CliOutput): Promise<number> {
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
    const callArgs = argumentsFromText(texts, findFunction(runner.functions, name)?.signature)
    const started = performance.now()
    const metrics = () => ({
      ...runner.metrics(),
      elapsedMs: Math.round((performance.now() - started) * 100) / 100,
    })
    const printOutput = () => {
      const { stdout, stderr } = runner.takeOutput()
      if (stdout !== '') io.stdout.write(stdout)
      if (stderr !== '') io.stderr.write(stderr)
    }
    let result: unknown
    try {
      result = await runner.call(name, callArgs)
      printOutput()
    } catch (error) {
      printOutput()
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
