// Builds the JavaScript side of the package from lib/ (`npm run build:ts`):
//   dist/            ES modules and their types (tsconfig.build.json): the `import` entry and the CLI
//   dist/cjs/        the same sources as CommonJS (tsconfig.cjs.json): the `require` entry, so that
//                    `require('airssys-wasm')` works without Node's require(esm)
//   index.cjs        napi-rs's CommonJS loader for the addon, made by the same generator as the ESM
//                    index.js that `napi build --esm` writes; dist/cjs loads the addon through it
//   index.d.cts      the addon's types for index.cjs (a copy of index.d.ts)
// dist/ is rebuilt from nothing, so a file removed from lib/ never lingers in a published tarball.
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

import { writeJsBinding } from '@napi-rs/cli'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const cjs = join(dist, 'cjs')
const esmLoader = join(root, 'index.js')
const cjsLoaderName = 'index.cjs'

function fail(message) {
  console.error(`build-ts.mjs: ${message}`)
  process.exit(1)
}

function tsc(project) {
  const bin = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const result = spawnSync(process.execPath, [bin, '-p', project], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) fail(`tsc -p ${project} failed`)
}

/** The names the generated ESM loader exports (`export { NativeEngine }`), which index.cjs must export too. */
function loaderExports(source) {
  const names = [...source.matchAll(/^export \{ (\w+) \}$/gm)].map((match) => match[1])
  if (names.length === 0) fail(`found no \`export { Name }\` lines in ${relative(root, esmLoader)}`)
  return names
}

/** Every `require('…')` target of a loader: the local .node files and the per-platform packages. */
function requiredSpecifiers(source) {
  return [...new Set([...source.matchAll(/require\('([^']+)'\)/g)].map((match) => match[1]))].sort()
}

async function writeCommonJsLoader() {
  const esmSource = readFileSync(esmLoader, 'utf8')
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  // The loaders check the platform package's version against the one they were generated for.
  const loaderVersion = /bindingPackageVersion !== '([^']+)'/.exec(esmSource)?.[1]
  if (loaderVersion !== undefined && loaderVersion !== manifest.version) {
    fail(
      `index.js was generated for version ${loaderVersion}, not ${manifest.version}: run \`npm run build:native\``,
    )
  }
  await writeJsBinding({
    platform: true,
    format: 'commonjs',
    jsBinding: cjsLoaderName,
    idents: loaderExports(esmSource),
    binaryName: manifest.napi.binaryName,
    packageName: manifest.napi.packageName ?? manifest.name,
    version: manifest.version,
    outputDir: root,
  })
  // Both loaders must look for the same files and packages; they differ when index.js is stale
  // (built for another version or name) or napi-rs changed its generator.
  const cjsSource = readFileSync(join(root, cjsLoaderName), 'utf8')
  const [expected, actual] = [requiredSpecifiers(esmSource), requiredSpecifiers(cjsSource)]
  if (expected.join('\n') !== actual.join('\n')) {
    fail(
      `${cjsLoaderName} and index.js load different binaries; rebuild index.js with \`npm run build:native\`\n` +
        `  index.js:  ${expected.join(' ')}\n  ${cjsLoaderName}: ${actual.join(' ')}`,
    )
  }
  copyFileSync(join(root, 'index.d.ts'), join(root, 'index.d.cts'))
}

function filesUnder(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
}

/**
 * Points dist/cjs at index.cjs: tsc keeps lib/native.ts's `'../index.js'` (the ES module loader at the
 * root), which from dist/cjs/ would not even name the same file. Only specifiers that resolve to that
 * loader from lib/ change.
 */
function retargetBindingImports() {
  let rewritten = 0
  for (const file of filesUnder(cjs).filter((name) => /\.(js|d\.ts)$/.test(name))) {
    const source = readFileSync(file, 'utf8')
    const output = source.replace(/(require\(|from )(["'])(\.[^"']*)\2/g, (text, lead, quote, specifier) => {
      // Resolved from the source file's folder in lib/, where the specifier was written.
      const sourceDir = join(root, 'lib', relative(cjs, dirname(file)))
      if (resolve(sourceDir, specifier) !== esmLoader) return text
      rewritten++
      const target = relative(dirname(file), join(root, cjsLoaderName)).split(sep).join('/')
      return `${lead}${quote}${target}${quote}`
    })
    if (output !== source) writeFileSync(file, output)
  }
  if (rewritten === 0) fail('dist/cjs never imports the addon loader: has lib/native.ts moved?')
}

rmSync(dist, { recursive: true, force: true })
tsc('tsconfig.build.json')
tsc('tsconfig.cjs.json')
writeFileSync(join(cjs, 'package.json'), '{ "type": "commonjs" }\n')
await writeCommonJsLoader()
retargetBindingImports()
// npm makes bin targets executable on install; this keeps `./dist/cli/index.js` runnable in a checkout.
if (process.platform !== 'win32') chmodSync(join(dist, 'cli', 'index.js'), 0o755)
