/**
 * The worker threads' code as plain JavaScript: lib/, fixtures/index.ts and the worker body,
 * transpiled (types removed, nothing checked) once at the start of the run into
 * node_modules/.cache/airssys-soak-<pid>/ (inside the repository, so `smol-toml` resolves as usual).
 *
 * Why not tsx in each worker, as the test suite does: registering tsx in a worker leaves about
 * 1.4 KB of V8 heap and 12 KiB of RSS behind in the process for every worker that starts and
 * ends (measured with workers that only register tsx and import one line of TypeScript), which a
 * soak that starts a thousand workers would report as our leak. A snapshot also means that an
 * edit to lib/ during the run cannot reach half of the workers.
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { root } from '../fixtures/index.js'

/**
 * Transpiles in a child process, so that TypeScript's compiler (about 35 MiB of heap and external
 * memory once loaded) does not sit in the measured process, and returns the worker entry. The
 * folder is this process's own (two runs at once must not replace each other's), removed at exit.
 */
export function buildWorker(): URL {
  const out = path.join(root, 'node_modules/.cache', `airssys-soak-${process.pid}`)
  process.once('exit', () => rmSync(out, { recursive: true, force: true }))
  execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--build', out], {
    cwd: root,
    stdio: 'inherit',
  })
  return pathToFileURL(path.join(out, 'soak/worker-body.js'))
}

/** Every .ts file under `dir` (recursively), relative to the repository root. */
function typescriptFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name)
    if (entry.isDirectory()) return typescriptFiles(relative)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [relative] : []
  })
}

async function transpile(out: string): Promise<void> {
  const { default: ts } = await import('typescript')
  rmSync(out, { recursive: true, force: true })
  const sources = [...typescriptFiles('lib'), 'fixtures/index.ts', 'soak/guests.ts', 'soak/worker-body.ts']
  for (const source of sources) {
    const { outputText } = ts.transpileModule(readFileSync(path.join(root, source), 'utf8'), {
      fileName: source,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        useDefineForClassFields: true,
      },
    })
    const target = path.join(out, source.replace(/\.ts$/, '.js'))
    mkdirSync(path.dirname(target), { recursive: true })
    writeFileSync(target, outputText)
  }
  // The generated loader is JavaScript already; it loads the addon named by
  // NAPI_RS_NATIVE_LIBRARY_PATH (see addon-snapshot.ts).
  mkdirSync(path.join(out, 'lib/binding'), { recursive: true })
  copyFileSync(path.join(root, 'lib/binding/index.js'), path.join(out, 'lib/binding/index.js'))
  writeFileSync(path.join(out, 'package.json'), '{ "type": "module" }\n')
}

const [script, flag, out] = process.argv.slice(1)
if (script === fileURLToPath(import.meta.url) && flag === '--build' && out !== undefined) await transpile(out)
