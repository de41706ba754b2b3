/** `airssys-wasm validate`: checks a Component.toml and its wasm without running them. */
import { Engine } from '../engine.js'
import { ConfigError } from '../errors.js'
import { initialSizes } from '../native.js'
import { loadManifest, type Manifest } from '../sandbox/manifest.js'
import { readComponentWasm } from '../sandbox/paths.js'
import { compileManifestWasm } from '../sandbox/sandbox.js'
import { toJsonText } from '../util/json-values.js'
import { escapeText } from '../util/quoted.js'
import { jsonRequested, onlyTarget, parse } from './args.js'
import { errorFields, EXIT } from './exit.js'
import { VALIDATE_HELP } from './help.js'
import type { CliOutput } from './output.js'
import { exportedFunctions, listing } from './wasm.js'

/**
 * What the manifest grants, in words: a plugin directory grants itself files, network and sleep,
 * and the one who checks it before running it must see that.
 */
function describeGrants(manifest: Manifest): string {
  const { filesystem, network, time } = manifest.permissions
  // Escaped here too: two grants that differ by an invisible character must not print alike.
  const list = (items: readonly string[]) => items.map((item) => escapeText(JSON.stringify(item))).join(', ')
  const grants = [
    filesystem.read.length > 0 ? `read ${list(filesystem.read)}` : undefined,
    filesystem.write.length > 0 ? `write ${list(filesystem.write)}` : undefined,
    network.outbound.length > 0 ? `network ${list(network.outbound)}` : undefined,
    time.sleep ? 'sleep' : undefined,
  ].filter((grant) => grant !== undefined)
  return grants.length > 0 ? grants.join('; ') : 'none'
}

function describeLimits(manifest: Manifest): string {
  const { memory, cpu } = manifest.resources
  return `memory ${memory.maxBytes} bytes, fuel ${cpu.maxFuel} per call, timeout ${cpu.timeoutMs} ms per call`
}

/**
 * Refuses a memory limit below the memory the wasm starts with (all its memories together), or a
 * table limit below its largest table: every instance would fail, which a check that passed must
 * not hide (a componentize-js guest starts with 145 pages).
 */
function checkInitialSizes(manifest: Manifest, bytes: Uint8Array): void {
  const needed = initialSizes(bytes)
  const { maxBytes, maxTableElements } = manifest.resources.memory
  if (needed.memoryBytes > maxBytes) {
    const path = 'resources.memory.max_bytes'
    throw new ConfigError(
      `${path}: ${maxBytes} is less than the ${needed.memoryBytes} bytes the wasm's memories start with together: every instance would fail`,
      { path, value: maxBytes },
    )
  }
  if (needed.tableElements > maxTableElements) {
    const path = 'resources.memory.max_table_elements'
    throw new ConfigError(
      `${path}: ${maxTableElements} is less than the ${needed.tableElements} elements the wasm's largest table starts with: every instance would fail`,
      { path, value: maxTableElements },
    )
  }
}

/** `validate`. Under `--json` a failure is also a document on stdout: `{ ok: false, error }`. */
export async function validate(args: readonly string[], io: CliOutput): Promise<number> {
  try {
    return await validateParsed(args, io)
  } catch (error) {
    if (jsonRequested(args)) io.stdout.write(`${toJsonText({ ok: false, error: errorFields(error) }, 2)}\n`)
    throw error
  }
}

async function validateParsed(args: readonly string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(
    args,
    { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    'validate',
  )
  if (values.help) {
    io.stdout.write(VALIDATE_HELP)
    return EXIT.success
  }
  const target = onlyTarget(positionals, 'validate', 'validate needs a directory with a Component.toml')
  const manifest = loadManifest(target)
  const engine = new Engine()
  try {
    const bytes = await readComponentWasm(manifest, engine.maxModuleBytes)
    const component = await compileManifestWasm(engine, bytes)
    checkInitialSizes(manifest, bytes)
    const { imports, exports } = component
    if (values.json) {
      io.stdout.write(
        `${toJsonText({ ok: true, manifest, imports: listing(imports), exports: listing(exports) }, 2)}\n`,
      )
      return EXIT.success
    }
    const { name, version, wasm } = manifest.component
    const lines = [
      `${manifest.file}: ok`,
      `  component: ${name} ${version} (${wasm})`,
      `  limits: ${describeLimits(manifest)}`,
      `  grants: ${describeGrants(manifest)}`,
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
