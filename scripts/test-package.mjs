// The packaging test (`npm run test:package`): installs airssys-wasm the way a user does, from the
// tarballs `npm publish` would upload, into a fresh project where no Rust toolchain can be found,
// and uses it from there: import, require, a component run, the CLI, and the shipped types.
//
//   node scripts/test-package.mjs [--no-build] [--keep]
//     --no-build  skip `npm run build` (the addon, dist/ and the examples must be built already)
//     --keep      keep the temporary folder (it is always kept when a check fails)
//
// Needs the npm registry only for the package's own dependencies, typescript and @types/node, all
// usually in npm's cache already (`--prefer-offline`).
import { spawnSync } from 'node:child_process'
import {
  accessSync,
  constants,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const args = new Set(process.argv.slice(2))
const started = Date.now()
const manifest = readJson(join(root, 'package.json'))
const seconds = () => `${((Date.now() - started) / 1000).toFixed(1)}s`

let temp
let passed = 0

function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'))
}

function step(title) {
  console.log(`\n== ${title} (${seconds()})`)
}

function ok(what) {
  passed++
  console.log(`  ok  ${what}`)
}

class CheckFailed extends Error {}

function check(condition, what, detail = '') {
  if (!condition) throw new CheckFailed(`${what}${detail ? `\n${detail}` : ''}`)
  ok(what)
}

/** Runs a command to completion; its output is returned (and shown when it fails). */
function run(command, commandArgs, { cwd, env = process.env, quiet = true } = {}) {
  const result = spawnSync(command, commandArgs, {
    cwd,
    env,
    encoding: 'utf8',
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.error) throw new CheckFailed(`cannot run ${command}: ${result.error.message}`)
  if (result.status !== 0) {
    throw new CheckFailed(
      `\`${command} ${commandArgs.join(' ')}\` failed in ${cwd} (exit ${result.status ?? result.signal})\n` +
        `${result.stdout ?? ''}${result.stderr ?? ''}`,
    )
  }
  return { stdout: result.stdout ?? '', stderr: result.stderr ?? '' }
}

/** The napi-rs platform name of this machine, as in `airssys-wasm.<platform>.node` and npm/<platform>/. */
function hostPlatform() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const glibc = process.report?.getReport()?.header?.glibcVersionRuntime
    return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

/** The napi-rs platform name of a Rust target triple in `napi.targets` (npm/<platform>/). */
function napiPlatform(target) {
  const [arch, , os, abi] = target.split('-')
  const cpu = { x86_64: 'x64', aarch64: 'arm64' }[arch] ?? arch
  if (os === 'darwin') return `darwin-${cpu}`
  if (os === 'windows') return `win32-${cpu}-${abi}`
  return `${os}-${cpu}-${abi}`
}

/**
 * The environment of a user without Rust: PATH loses ~/.cargo/bin and every folder that holds cargo
 * or rustc, and this process's npm, node and Rust variables are dropped. Should node or npm share a
 * folder with cargo, they are reached through a folder of their own instead.
 */
function userEnvironment(toolsDir) {
  const rustTools = process.platform === 'win32' ? ['cargo.exe', 'rustc.exe'] : ['cargo', 'rustc']
  const cargoBin = resolve(homedir(), '.cargo', 'bin')
  const dropped = []
  const kept = []
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const hasRust = rustTools.some((tool) => existsSync(join(dir, tool)))
    if (resolve(dir) === cargoBin || hasRust) dropped.push(dir)
    else kept.push(dir)
  }
  const env = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_|CARGO|RUSTUP|RUSTC|RUSTFLAGS|NODE_OPTIONS$|NODE_PATH$|INIT_CWD$|NAPI_RS_)/i.test(name))
      continue
    env[name] = value
  }
  env.PATH = kept.join(delimiter)
  if (process.platform !== 'win32' && !(findOnPath('node', env) && findOnPath('npm', env))) {
    linkNodeTools(toolsDir)
    env.PATH = [toolsDir, ...kept].join(delimiter)
  }
  return { env, dropped, rustTools }
}

/** A folder with node, npm and npx alone (this node, and the npm installed beside it). */
function linkNodeTools(dir) {
  mkdirSync(dir, { recursive: true })
  const node = process.execPath
  const npmBin = join(dirname(node), '..', 'lib', 'node_modules', 'npm', 'bin')
  const script = (name, ...command) =>
    writeFileSync(join(dir, name), `#!/bin/sh\nexec ${command.map((part) => `"${part}"`).join(' ')} "$@"\n`, {
      mode: 0o755,
    })
  script('node', node)
  script('npm', node, join(npmBin, 'npm-cli.js'))
  script('npx', node, join(npmBin, 'npx-cli.js'))
}

function findOnPath(tool, env) {
  return env.PATH.split(delimiter).find((dir) => {
    try {
      accessSync(join(dir, tool), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

function pack(cwd, destination) {
  const { stdout } = run('npm', ['pack', '--json', '--pack-destination', destination], { cwd })
  const [result] = JSON.parse(stdout)
  return { ...result, tarball: join(destination, result.filename) }
}

const ESM_CHECK = `
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { CompileError, Engine, WasmError, loadComponent } from 'airssys-wasm'

const entry = fileURLToPath(import.meta.resolve('airssys-wasm'))
assert.match(entry, /node_modules[\\\\/]airssys-wasm[\\\\/]dist[\\\\/]index\\.js$/)

// One copy in a process that both imports and requires the package (an app beside a dependency):
// the same classes, so instanceof holds whichever way an error or an engine came in.
const required = createRequire(import.meta.url)('airssys-wasm')
const imported = await import('airssys-wasm')
assert.deepEqual(Object.keys(imported).sort(), Object.keys(required).sort())
for (const name of Object.keys(required)) assert.equal(imported[name], required[name], name)
let thrown
try {
  new required.Engine().compileModuleSync(new Uint8Array([1]))
} catch (error) {
  thrown = error
}
assert.ok(thrown instanceof CompileError && thrown instanceof WasmError, String(thrown))

const engine = new Engine()
const component = await engine.compileComponent(process.argv[2])
const instance = await component.instantiate({ limits: { memoryBytes: 2 << 20 } })
assert.equal(await instance.call('greet', ['world']), 'Hello, world!')
instance.dispose()

const sandbox = await loadComponent(process.argv[3])
assert.equal(await sandbox.call('greet', ['sandbox']), 'Hello, sandbox!')
sandbox.dispose()

const error = await engine.compileComponent(new Uint8Array([0, 97, 115, 109, 9])).catch((e) => e)
assert.ok(error instanceof CompileError && error instanceof WasmError, String(error))
assert.equal(error.code, 'ERR_WASM_COMPILE')
engine.close()
console.log(entry)
`

const CJS_CHECK = `
const assert = require('node:assert/strict')
const { CompileError, Engine, WasmError } = require('airssys-wasm')

const entry = require.resolve('airssys-wasm')
assert.match(entry, /node_modules[\\\\/]airssys-wasm[\\\\/]dist[\\\\/]cjs[\\\\/]index\\.js$/)
assert.equal(require('airssys-wasm/package.json').version, process.argv[3])

;(async () => {
  const engine = new Engine()
  const component = await engine.compileComponent(process.argv[2])
  const instance = await component.instantiate({ limits: { memoryBytes: 2 << 20 } })
  assert.equal(await instance.call('greet', ['world']), 'Hello, world!')
  assert.equal(instance.callSync('greet', ['sync']), 'Hello, sync!')
  instance.dispose()
  assert.throws(() => engine.compileComponentSync(new Uint8Array([1, 2, 3])), (e) => {
    return e instanceof CompileError && e instanceof WasmError && e.code === 'ERR_WASM_COMPILE'
  })
  engine.close()
  // compileLimits starts the installed package's own child script, async and sync.
  const isolated = new Engine({ compileLimits: { timeoutMs: 60000 } })
  const inChild = await isolated.compileComponent(process.argv[2])
  const greeted = inChild.instantiateSync({ limits: { memoryBytes: 2 << 20 } }).callSync('greet', ['child'])
  assert.equal(greeted, 'Hello, child!')
  assert.equal(isolated.compileModuleSync('(module)').exports.length, 0)
  isolated.close()
  console.log(entry)
})().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
`

// Types a user writes against; the @ts-expect-error lines fail if the shipped types were `any`.
const TYPES_CHECK = `
import { Engine, OutOfFuelError, TrapError, WasmError, loadComponent } from 'airssys-wasm'
import type { InstantiateOptions, Metrics } from 'airssys-wasm'

export async function greet(wasm: string, dir: string): Promise<string> {
  const engine = new Engine({ fuel: true, epochTickMs: 5 })
  const options: InstantiateOptions = { limits: { memoryBytes: 2 << 20 }, fuel: 1_000_000, timeoutMs: 1_000 }
  const component = await engine.compileComponent(wasm)
  using instance = await component.instantiate(options)
  const metrics: Metrics = instance.metrics()
  const peak: number = metrics.memory.peakBytes
  const sandbox = await loadComponent(dir, { engine })
  try {
    return String(await instance.call('greet', ['world'])) + String(await sandbox.call('greet', [String(peak)]))
  } catch (error) {
    if (error instanceof OutOfFuelError || error instanceof TrapError) throw error
    const code: string | undefined = error instanceof WasmError ? error.code : undefined
    throw new Error(code)
  } finally {
    sandbox.dispose()
    engine.close()
  }
}

// @ts-expect-error the memory limit is required
export const missingLimit: InstantiateOptions = {}
// @ts-expect-error engine options are checked
export const badEngine = new Engine({ fuel: 'yes' })
`

const CJS_TYPES_CHECK = `
import airssys = require('airssys-wasm')

export async function greet(wasm: string): Promise<unknown> {
  const engine = new airssys.Engine()
  const component = await engine.compileComponent(wasm)
  const instance = await component.instantiate({ limits: { memoryBytes: 2 << 20 } })
  // @ts-expect-error call takes an array of arguments
  void instance.callSync('greet', 'world')
  return instance.call('greet', ['world'])
}
`

const OLD_LIB_CHECK = `
import { HostError, WasmError } from 'airssys-wasm'

export function causeOf(error: unknown): unknown {
  if (error instanceof HostError) return error.cause
  return error instanceof WasmError ? error.code : undefined
}
`

async function main() {
  const platform = hostPlatform()
  const binaryName = manifest.napi.binaryName
  const addonFile = `${binaryName}.${platform}.node`
  const platformDir = join(root, 'npm', platform)

  if (!args.has('--no-build')) {
    step('build: npm run build')
    run('npm', ['run', 'build'], { cwd: root, quiet: false })
  }

  step(`pack ${manifest.name} and ${manifest.name}-${platform}`)
  const builtAddon = join(root, 'lib', 'binding', addonFile)
  check(existsSync(builtAddon), `the addon is built: lib/binding/${addonFile}`)
  check(existsSync(join(platformDir, 'package.json')), `npm/${platform}/package.json exists`)
  temp = mkdtempSync(join(tmpdir(), 'airssys-wasm-package-'))
  const tarballs = join(temp, 'tarballs')
  mkdirSync(tarballs)

  // The main package as the release's `napi prepublish` leaves it: the same files, with every
  // platform package in optionalDependencies (the release publishes them; nothing is published
  // here). Packed from a copy, so the repository's package.json stays as it is.
  const release = join(temp, 'release')
  mkdirSync(release)
  for (const entry of [
    ...manifest.files.filter((file) => !file.startsWith('!')),
    'package.json',
    'README.md',
    'npm',
  ]) {
    if (existsSync(join(root, entry))) cpSync(join(root, entry), join(release, entry), { recursive: true })
  }
  // `napi prepublish` checks each platform folder for its addon; only this platform's is built.
  for (const folder of readdirSync(join(release, 'npm'))) {
    writeFileSync(join(release, 'npm', folder, `${binaryName}.${folder}.node`), '')
  }
  const napiCli = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  run(process.execPath, [napiCli, 'prepublish', '-t', 'npm', '--skip-optional-publish', '--no-gh-release'], {
    cwd: release,
  })
  const released = readJson(join(release, 'package.json'))
  const platformPackages = manifest.napi.targets.map((target) => `${manifest.name}-${napiPlatform(target)}`)
  const undeclared = platformPackages.filter(
    (name) => released.optionalDependencies?.[name] !== manifest.version,
  )
  check(
    undeclared.length === 0,
    `the released package.json lists the ${platformPackages.length} platform packages in optionalDependencies, at ${manifest.version}`,
    `missing or another version: ${undeclared.join(', ')}`,
  )
  const main = pack(release, tarballs)
  const files = main.files.map((file) => file.path)
  console.log(
    `  ${main.filename}: ${files.length} files, ${(main.unpackedSize / 1024).toFixed(0)} KiB unpacked`,
  )
  const required = [
    'package.json',
    'README.md',
    'dist/index.js',
    'dist/index.d.ts',
    'dist/binding/index.js',
    'dist/binding/index.d.ts',
    'dist/cli/index.js',
    'dist/cjs/package.json',
    'dist/cjs/index.js',
    'dist/cjs/index.d.ts',
    'dist/cjs/binding/index.js',
    'dist/cjs/binding/index.d.ts',
    // What the README links to, so its links work in node_modules too.
    'SECURITY.md',
    'BENCHMARKING.md',
    'docs/INSTALL.md',
    'docs/ARCHITECTURE.md',
  ]
  const missing = required.filter((file) => !files.includes(file))
  check(
    missing.length === 0,
    'the tarball has the ESM and CJS entries, both loaders, types, the CLI and the linked docs',
    missing.join('\n'),
  )
  if (existsSync(join(root, 'wit')))
    check(
      files.some((file) => file.startsWith('wit/')),
      'the tarball has wit/',
    )
  const allowed =
    /^(package\.json|README\.md|LICENSE|SECURITY\.md|BENCHMARKING\.md|docs\/(INSTALL|ARCHITECTURE)\.md|dist\/.*|wit\/.*)$/
  const stray = files.filter((file) => !allowed.test(file) || /\.(node|map|tsbuildinfo)$/.test(file))
  check(
    stray.length === 0,
    'the tarball has nothing else (no .node, source maps, sources or tests)',
    stray.join('\n'),
  )
  const cli = main.files.find((file) => file.path === 'dist/cli/index.js')
  check((cli.mode & 0o111) !== 0, 'dist/cli/index.js is executable in the tarball')
  check(
    readFileSync(join(root, 'dist', 'cli', 'index.js'), 'utf8').startsWith('#!/usr/bin/env node\n'),
    'dist/cli/index.js starts with #!/usr/bin/env node',
  )
  const installScripts = ['preinstall', 'install', 'postinstall'].filter((name) => manifest.scripts?.[name])
  check(
    installScripts.length === 0,
    'the package runs nothing at install (no compiler needed)',
    installScripts.join(' '),
  )

  // The platform package as `napi artifacts` leaves it: npm/<platform>/ plus the built addon.
  const staged = join(temp, 'platform', platform)
  mkdirSync(staged, { recursive: true })
  for (const file of readdirSync(platformDir)) copyFileSync(join(platformDir, file), join(staged, file))
  copyFileSync(builtAddon, join(staged, addonFile))
  const native = pack(staged, tarballs)
  const nativeFiles = native.files.map((file) => file.path).sort()
  console.log(`  ${native.filename}: ${(native.size / 1024 / 1024).toFixed(1)} MiB packed`)
  check(
    nativeFiles.join(' ') === ['README.md', addonFile, 'package.json'].sort().join(' '),
    `the platform tarball holds ${addonFile}, package.json and README.md`,
    nativeFiles.join('\n'),
  )
  check(native.version === main.version, `both packages are version ${main.version}`)

  step('install both into a fresh project without cargo or rustc')
  const project = join(temp, 'project')
  mkdirSync(project)
  const { env, dropped, rustTools } = userEnvironment(join(temp, 'bin'))
  console.log(`  PATH without: ${dropped.join(', ') || '(nothing to drop)'}`)
  for (const tool of rustTools) check(findOnPath(tool, env) === undefined, `${tool} is not on PATH`)
  check(findOnPath(process.platform === 'win32' ? 'npm.cmd' : 'npm', env) !== undefined, 'npm is on PATH')
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'airssys-wasm-package-test', version: '1.0.0', private: true }, null, 2),
  )
  const devVersion = (name) => readJson(join(root, 'node_modules', name, 'package.json')).version
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      main.tarball,
      native.tarball,
      `typescript@${devVersion('typescript')}`,
      `@types/node@${devVersion('@types/node')}`,
    ],
    { cwd: project, env },
  )
  const installed = join(project, 'node_modules', manifest.name)
  const installedNative = join(project, 'node_modules', `${manifest.name}-${platform}`)
  check(
    !readdirSync(installed, { recursive: true }).some((file) => String(file).endsWith('.node')),
    `node_modules/${manifest.name} has no addon of its own`,
  )
  check(
    existsSync(join(installedNative, addonFile)),
    `node_modules/${manifest.name}-${platform} has ${addonFile}`,
  )

  // The example, outside the repository: the installed package is all the project can reach.
  const example = join(project, 'hello')
  mkdirSync(example)
  for (const file of ['Component.toml', 'hello.wasm']) {
    copyFileSync(join(root, 'examples', 'hello', file), join(example, file))
  }
  const wasm = join(example, 'hello.wasm')
  // The loader then also checks that the platform package's version is the main package's.
  const runEnv = { ...env, NAPI_RS_ENFORCE_VERSION_CHECK: '1' }

  step('use it from the project')
  writeFileSync(join(project, 'esm.mjs'), ESM_CHECK)
  const esm = run('node', ['esm.mjs', wasm, example], { cwd: project, env: runEnv })
  check(
    true,
    `import: greet('world') is 'Hello, world!'; loadComponent; CompileError; the same classes as require (${esm.stdout.trim()})`,
  )

  // Node 20.19+ could require() the ES build; turning that off proves the CJS build is what loads.
  const noRequireEsm = process.allowedNodeEnvironmentFlags.has('--no-experimental-require-module')
    ? ['--no-experimental-require-module']
    : []
  writeFileSync(join(project, 'cjs.cjs'), CJS_CHECK)
  const cjs = run('node', [...noRequireEsm, 'cjs.cjs', wasm, main.version], { cwd: project, env: runEnv })
  check(
    true,
    `require${noRequireEsm.length ? ' (require(esm) off)' : ''}: call, callSync, CompileError, compileLimits (${cjs.stdout.trim()})`,
  )

  const bin = join(
    project,
    'node_modules',
    '.bin',
    process.platform === 'win32' ? 'airssys-wasm.cmd' : 'airssys-wasm',
  )
  check(existsSync(bin), 'npm linked the airssys-wasm command')
  const cliRun = run('npx', ['--no', 'airssys-wasm', 'run', './hello', '--invoke', 'greet', 'world'], {
    cwd: project,
    env: runEnv,
  })
  check(
    cliRun.stdout.trim() === '"Hello, world!"',
    `npx airssys-wasm run ./hello --invoke greet world prints ${cliRun.stdout.trim()}`,
    cliRun.stderr,
  )
  // The link itself, run as a program: the shebang and the executable bit must work.
  const cliVersion = run(bin, ['--version'], { cwd: project, env: runEnv })
  check(
    cliVersion.stdout.trim() === main.version,
    `node_modules/.bin/airssys-wasm --version prints ${main.version}`,
  )

  step('type-check against the shipped types')
  writeFileSync(join(project, 'check.mts'), TYPES_CHECK)
  writeFileSync(join(project, 'check-require.cts'), CJS_TYPES_CHECK)
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2023', 'ESNext.Disposable'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          types: ['node'],
        },
        files: ['check.mts', 'check-require.cts'],
      },
      null,
      2,
    ),
  )
  run('npx', ['--no', '--', 'tsc', '--noEmit', '-p', 'tsconfig.json'], { cwd: project, env })
  check(true, 'tsc --noEmit (NodeNext, strict, skipLibCheck off): an ES module and a CommonJS file')
  // A project whose `lib` predates ES2022 (no `Error.cause`) reads a HostError's cause too.
  writeFileSync(join(project, 'old-lib.mts'), OLD_LIB_CHECK)
  run(
    'npx',
    [
      '--no',
      '--',
      'tsc',
      '--noEmit',
      ...['--strict', '--skipLibCheck', 'false', '--types', 'node'],
      ...['--target', 'ES2020', '--lib', 'ES2020', '--module', 'NodeNext', '--moduleResolution', 'NodeNext'],
      'old-lib.mts',
    ],
    { cwd: project, env },
  )
  check(true, 'tsc --noEmit with lib ES2020: the errors and their cause')

  console.log(`\n${passed} checks passed in ${seconds()}`)
  if (args.has('--keep')) console.log(`kept ${temp}`)
  else rmSync(temp, { recursive: true, force: true })
}

try {
  await main()
} catch (error) {
  console.error(`\nFAILED: ${error instanceof CheckFailed ? error.message : error?.stack}`)
  if (temp) console.error(`(kept ${temp})`)
  process.exit(1)
}
