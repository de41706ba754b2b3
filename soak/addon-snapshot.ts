/**
 * Makes this process (and its workers, which inherit the environment) load a private copy of the
 * built addon. A rebuild rewrites lib/binding/*.node in place, and a process that has the file
 * mapped then dies of SIGBUS ("Bus error") the next time it pages in code from it; a long soak
 * must not end that way, and must run one build throughout. Import this module before anything
 * that loads lib/ (the generated loader reads NAPI_RS_NATIVE_LIBRARY_PATH once, when loaded).
 */
import { createHash } from 'node:crypto'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import { root } from '../fixtures/index.js'

function snapshot(): string {
  const given = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (given !== undefined) return `${given} (NAPI_RS_NATIVE_LIBRARY_PATH as given)`
  const bindingDir = path.join(root, 'lib/binding')
  const built = readdirSync(bindingDir).filter((name) => name.endsWith('.node'))
  if (built.length !== 1 || built[0] === undefined) {
    return `not copied: ${built.length} .node files in lib/binding/ (the loader picks one)`
  }
  const source = path.join(bindingDir, built[0])
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-soak-addon-'))
  const copy = path.join(dir, built[0])
  copyFileSync(source, copy)
  process.env.NAPI_RS_NATIVE_LIBRARY_PATH = copy
  // Loaded code stays mapped after the file is unlinked.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  const digest = createHash('sha256').update(readFileSync(copy)).digest('hex').slice(0, 16)
  const modified = statSync(source).mtime.toISOString()
  return `a copy of lib/binding/${built[0]} (modified ${modified}, sha256 ${digest}...)`
}

/** Which addon this run loads, for the report. */
export const addonInfo = snapshot()
