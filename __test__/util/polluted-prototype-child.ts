// Child process for own.spec.ts: a host application whose Object.prototype an
// attacker polluted (a naive deep merge of JSON holding `__proto__`), then uses the package with
// ordinary options that leave the polluted keys out. Inherited properties must neither widen a
// guest's grants nor lift a limit. Prints one JSON object: each scenario's outcome.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'

import {
  typesImports,
  typesWasm,
  wasiComponentWasm,
  wasiHttpWasm,
  wasiModuleWasm,
} from '../../fixtures/index.js'
import { createPermissions, Engine, loadComponent, type Instance, type WasiOptions } from '../../lib/index.js'

const scratch = mkdtempSync(path.join(tmpdir(), 'aw-pollute-'))
const hostDir = path.join(scratch, 'host')
mkdirSync(hostDir)
writeFileSync(path.join(hostDir, 'secret.txt'), 'HOST-SECRET')
const server = http.createServer((_, response) => response.end('reached'))
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const hostPort = `127.0.0.1:${(server.address() as { port: number }).port}`
const cacheDir = path.join(scratch, 'cache')

function merge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const key of Object.keys(source)) {
    const value = source[key]
    if (typeof value === 'object' && value !== null) {
      if (typeof target[key] !== 'object' || target[key] === null)
        target[key] = Array.isArray(value) ? [] : {}
      merge(target[key] as Record<string, unknown>, value as Record<string, unknown>)
    } else {
      target[key] = value
    }
  }
}

const grants = {
  wasi: { preopens: { '/h': { host: hostDir, write: true } }, http: { allow: [hostPort] } },
  preopens: { '/h': { host: hostDir, write: true } },
  host: hostDir,
  write: true,
  args: ['x', 'echo', 'POLLUTED-ARGS'],
  env: { MESSAGE: 'POLLUTED-ENV' },
  stdin: 'POLLUTED-STDIN',
  stdout: 'inherit',
  http: { allow: [hostPort] },
  allow: [hostPort],
  timeoutMs: 60_000,
  // An aborted look-alike: read, it would fail or stop every call given options.
  signal: { aborted: true, reason: 'POLLUTED-SIGNAL' },
  fuel: 1e15,
  memories: 100,
  tables: 10_000,
  instances: 10_000,
  resourceHandles: 1_000_000,
  tableElements: 10_000_000,
  outputLimitBytes: 1 << 30,
  maxBodyBytes: 1 << 30,
  cacheDir,
  policy: { memoryBytes: { max: 2 ** 40 }, fuel: { max: 1e15 }, timeoutMs: { max: 2 ** 31 - 1 } },
  filesystemRead: ['**'],
  baseDir: hostDir,
  networkOutbound: [hostPort],
  timeSleep: true,
  permissions: { filesystem: { write: ['.'] }, network: { outbound: [hostPort] }, time: { sleep: true } },
  filesystem: { write: ['.'] },
  network: { outbound: [hostPort] },
  outbound: [hostPort],
  time: { sleep: true },
  sleep: true,
}
// JSON.parse makes `__proto__` an own key, which the merge then follows into Object.prototype.
merge({}, JSON.parse(`{"__proto__": ${JSON.stringify(grants)}}`))
// Functions arrive by code rather than JSON.
Object.assign(Object.prototype, { imports: { env: { f: () => 777 } } })

const outcome = async (run: () => unknown): Promise<string> => {
  try {
    return `ok ${JSON.stringify(await run())}`
  } catch (error) {
    const { name, code } = error as { name?: string; code?: string }
    return `${name} ${code ?? ''}`.trim()
  }
}
const results: Record<string, string> = {}
const engine = new Engine({ fuel: true })
const limits = { memoryBytes: 16 << 20 }
const component = await engine.compileComponent(wasiComponentWasm)
const module = await engine.compileModule(wasiModuleWasm)
const run = component.exports.find((item) => item.name.startsWith('wasi:cli/run@'))!.name + '#run'

async function command(inst: Instance, entry: string): Promise<string> {
  const outcome = await inst.call(entry).then(
    () => 'ran',
    (error: { name: string }) => error.name,
  )
  const { stdout, stderr } = inst.takeOutput()
  return `${outcome}: ${stdout.trim()} | ${stderr.trim()}`
}
const piped = { stdout: 'pipe', stderr: 'pipe' } as const

// Grants: nothing but what the host gave.
results.noWasi = await command(await component.instantiate({ limits, timeoutMs: 10_000 }), run)
for (const [kind, code, entry] of [
  ['component', component, run],
  ['module', module, '_start'],
] as const) {
  const options = (args: string[], preopens?: WasiOptions['preopens']) => ({
    limits,
    timeoutMs: 10_000,
    wasi: { ...piped, args: ['x', ...args], ...(preopens ? { preopens } : {}) },
  })
  results[`${kind}Cat`] = await command(await code.instantiate(options(['cat', '/h/secret.txt'])), entry)
  results[`${kind}Write`] = await command(
    await code.instantiate(options(['write', '/h/new.txt'], { '/h': { host: hostDir } })),
    entry,
  )
  results[`${kind}Echo`] = await command(
    await code.instantiate({ limits, timeoutMs: 10_000, wasi: { ...piped } }),
    entry,
  )
  results[`${kind}Stdin`] = await command(await code.instantiate(options(['stdin'])), entry)
}
results.written = String(existsSync(path.join(hostDir, 'new.txt')))

const httpGuest = await engine.compileComponent(wasiHttpWasm)
const httpRun = httpGuest.exports.find((item) => item.name.startsWith('wasi:cli/run@'))!.name + '#run'
results.http = await command(
  await httpGuest.instantiate({
    limits,
    timeoutMs: 10_000,
    wasi: { ...piped, args: ['wasi-http', 'get', `http://${hostPort}/`], http: {} },
  }),
  httpRun,
)

// Limits: the instance's own, and the engine's defaults.
const spin = await engine.compileModule('(module (func (export "spin") (loop $l (br $l))))')
// A small budget (microseconds of spinning) under a deadline far beyond it: the deadline only
// stops the loop if the polluted fuel were taken, and a busy machine cannot reach it first.
const spinning = await spin.instantiate({ limits: { memoryBytes: 0 }, timeoutMs: 5_000, fuel: 100_000 })
results.spin = await outcome(() => spinning.call('spin', []))
results.spinOptions = await outcome(() => spinning.call('spin', [], {}))
results.spinSync = await outcome(() => spinning.callSync('spin', [], {}))
const memories = await engine.compileModule(`(module ${'(memory 0)'.repeat(10)})`)
results.memories = await outcome(() => memories.instantiate({ limits: { memoryBytes: 0 } }))
const importing = await engine.compileModule('(module (import "env" "f" (func (result i32))))')
results.imports = await outcome(() => importing.instantiate({ limits: { memoryBytes: 0 } }))
results.engine = await outcome(() => new Engine().close())
results.cacheDir = String(existsSync(cacheDir))

// Values: the prototype's enumerable keys are no flags of a flags value (they failed every one).
const types = (await engine.compileComponent(typesWasm)).instantiateSync({ limits, imports: typesImports() })
results.flags = await outcome(() => types.callSync('roundtrip-flags', [{ read: true }]))

// A manifest asking for more than the default policy allows.
const manifestDir = path.join(scratch, 'greedy')
mkdirSync(manifestDir)
writeFileSync(path.join(manifestDir, 'guest.wasm'), '(component)')
writeFileSync(
  path.join(manifestDir, 'Component.toml'),
  `[component]\nname = "greedy"\nversion = "0.1.0"\nwasm = "guest.wasm"\n` +
    `[resources.memory]\nmax_bytes = 1073741824\n[resources.cpu]\nmax_fuel = 100000000000\ntimeout_seconds = 100000\n`,
)
results.policy = await outcome(async () => (await loadComponent(manifestDir, { engine })).dispose())
writeFileSync(path.join(manifestDir, 'guest.wasm'), new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]))
writeFileSync(
  path.join(manifestDir, 'Component.toml'),
  `[component]\nname = "modest"\nversion = "0.1.0"\nwasm = "guest.wasm"\n[resources.memory]\nmax_bytes = 1048576\n[resources.cpu]\nmax_fuel = 1000000\ntimeout_seconds = 1\n`,
)
const sandbox = await loadComponent(manifestDir, { engine })
results.sandboxPermissions = JSON.stringify(sandbox.manifest.permissions)
results.sandboxCall = await outcome(() => sandbox.call('nothing', [], {}))
sandbox.dispose()
const granted = createPermissions({})
results.permissions = JSON.stringify([
  granted.filesystemRead,
  granted.baseDir,
  granted.networkOutbound,
  granted.timeSleep,
])

server.close()
engine.close()
rmSync(scratch, { recursive: true, force: true })
process.stdout.write(`\nRESULT ${JSON.stringify(results)}\n`)
