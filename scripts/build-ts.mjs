// Builds the JavaScript side of the package from lib/ (`npm run build:ts`):
//   dist/              ES modules and their types (tsconfig.build.json): the CLI, and the types of the
//                      `import` entry; dist/index.js itself re-exports the CommonJS build (below)
//   dist/cjs/          the same sources as CommonJS (tsconfig.cjs.json): the `require` entry, so that
//                      `require('airssys-wasm')` works without Node's require(esm)
//   dist/binding/      the addon loader: a copy of lib/binding/index.js, the ES module `napi build --esm`
//                      writes, with its types (lib/binding/index.d.ts)
//   dist/cjs/binding/  napi-rs's CommonJS loader, made by the same generator, with the same types
// tsc copies no .js file, so both loaders are placed here, where lib/native.ts's `./binding/index.js`
// resolves from dist/native.js and dist/cjs/native.js alike. A built addon in lib/binding/ is copied
// beside them so that dist/ runs in a checkout; package.json's "files" leaves it out of the tarball
// (the addon ships in the per-platform packages).
// dist/ is rebuilt from nothing, so a file removed from lib/ never lingers in a published tarball.
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { writeJsBinding } from '@napi-rs/cli'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const cjs = join(dist, 'cjs')
const binding = join(root, 'lib', 'binding')
const esmLoader = join(binding, 'index.js')
const loaderTypes = join(binding, 'index.d.ts')

function fail(message) {
  console.error(`build-ts.mjs: ${message}`)
  process.exit(1)
}

function tsc(project) {
  const bin = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const result = spawnSync(process.execPath, [bin, '-p', project], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) fail(`tsc -p ${project} failed`)
}

/** The names the generated ESM loader exports (`export { NativeEngine }`), which the CommonJS loader must export too. */
function loaderExports(source) {
  const names = [...source.matchAll(/^export \{ (\w+) \}$/gm)].map((match) => match[1])
  if (names.length === 0) fail(`found no \`export { Name }\` lines in ${relative(root, esmLoader)}`)
  return names
}

/** Every `require('…')` target of a loader: the local .node files and the per-platform packages. */
function requiredSpecifiers(source) {
  return [...new Set([...source.matchAll(/require\('([^']+)'\)/g)].map((match) => match[1]))].sort()
}

/** dist/binding/: the ES module loader as napi build wrote it. */
function copyEsmLoader() {
  const target = join(dist, 'binding')
  mkdirSync(target, { recursive: true })
  copyFileSync(esmLoader, join(target, 'index.js'))
  copyFileSync(loaderTypes, join(target, 'index.d.ts'))
  return target
}

/** dist/cjs/binding/: the CommonJS loader for the same addon (dist/cjs/package.json makes its .js CommonJS). */
async function writeCommonJsLoader() {
  const esmSource = readFileSync(esmLoader, 'utf8')
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  // The loaders check the platform package's version against the one they were generated for.
  const loaderVersion = /bindingPackageVersion !== '([^']+)'/.exec(esmSource)?.[1]
  if (loaderVersion !== undefined && loaderVersion !== manifest.version) {
    fail(
      `lib/binding/index.js was generated for version ${loaderVersion}, not ${manifest.version}: run \`npm run build:native\``,
    )
  }
  const target = join(cjs, 'binding')
  mkdirSync(target, { recursive: true })
  await writeJsBinding({
    platform: true,
    format: 'commonjs',
    jsBinding: 'index.js',
    idents: loaderExports(esmSource),
    binaryName: manifest.napi.binaryName,
    packageName: manifest.napi.packageName ?? manifest.name,
    version: manifest.version,
    outputDir: target,
  })
  // Both loaders must look for the same files and packages; they differ when lib/binding/index.js is
  // stale (built for another version or name) or napi-rs changed its generator.
  const cjsSource = readFileSync(join(target, 'index.js'), 'utf8')
  const [expected, actual] = [requiredSpecifiers(esmSource), requiredSpecifiers(cjsSource)]
  if (expected.join('\n') !== actual.join('\n')) {
    fail(
      `the CommonJS and ES module loaders load different binaries; rebuild lib/binding/index.js with \`npm run build:native\`\n` +
        `  ES module: ${expected.join(' ')}\n  CommonJS:  ${actual.join(' ')}`,
    )
  }
  copyFileSync(loaderTypes, join(target, 'index.d.ts'))
  return target
}

/**
 * Makes dist/index.js, the `import` entry, re-export what the CommonJS build exports. Two builds
 * of the same classes would be two copies in a process that both imports and requires the package
 * (an app beside a dependency, or a test runner): an error of one copy failed `instanceof` against
 * the other's class, and the sandbox refused the other copy's Engine. The names are those tsc's ES
 * module entry exported (types are gone by then).
 */
function reexportCommonJsFromEsmEntry() {
  const entry = join(dist, 'index.js')
  const source = readFileSync(entry, 'utf8')
  // tsc writes each `export { … } from '…'` of lib/index.ts on one line; anything else (a default
  // export, a local declaration) would need more than this.
  const lines = source.split('\n').filter((line) => line.startsWith('export'))
  const reexports = lines.map((line) => /^export \{([^}]*)\} from '[^']+';$/.exec(line))
  if (lines.length === 0 || reexports.some((match) => match === null)) {
    fail(`dist/index.js has an export this script cannot re-export from the CommonJS build:\n${source}`)
  }
  const names = reexports.flatMap((match) =>
    match[1]
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean),
  )
  if (names.some((name) => !/^[A-Za-z_$][\w$]*$/.test(name)))
    fail(`unexpected export names: ${names.join(', ')}`)
  writeFileSync(
    entry,
    `// The ES module entry of airssys-wasm: the CommonJS build's exports (scripts/build-ts.mjs says why).\n` +
      `import commonJs from './cjs/index.js'\n\n` +
      `export const {\n${names.map((name) => `  ${name},\n`).join('')}} = commonJs\n`,
  )
  rmSync(`${entry}.map`, { force: true })
  // The types too: a second copy of the declarations would be a second set of classes to tsc
  // (their #private fields make an ES module's Engine no CommonJS Engine).
  writeFileSync(
    join(dist, 'index.d.ts'),
    `// The ES module entry's types: the CommonJS build's (scripts/build-ts.mjs says why).\n` +
      `export * from './cjs/index.js'\n`,
  )
  rmSync(join(dist, 'index.d.ts.map'), { force: true })
}

/** The addon, when built, next to each loader, which looks for it in its own folder first. */
function copyAddon(targets) {
  const addons = readdirSync(binding).filter((name) => name.endsWith('.node'))
  for (const target of targets) {
    for (const addon of addons) copyFileSync(join(binding, addon), join(target, addon))
  }
}

rmSync(dist, { recursive: true, force: true })
tsc('tsconfig.build.json')
tsc('tsconfig.cjs.json')
writeFileSync(join(cjs, 'package.json'), '{ "type": "commonjs" }\n')
reexportCommonJsFromEsmEntry()
copyAddon([copyEsmLoader(), await writeCommonJsLoader()])
// npm makes bin targets executable on install; this keeps `./dist/cli/index.js` runnable in a checkout.
if (process.platform !== 'win32') chmodSync(join(dist, 'cli', 'index.js'), 0o755)
