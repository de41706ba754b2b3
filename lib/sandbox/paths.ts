/**
 * The manifest's paths stay inside its directory: the wasm file and the literal part of each
 * filesystem grant are checked lexically and again through their real paths (a symlink may not
 * lead out).
 */
import { realpathSync, statSync } from 'node:fs'
import path from 'node:path'

import { globBase, globProblem } from '../util/patterns.js'
import type { Validator } from './validator.js'

/** `candidate` is `root` or inside it (both real paths). */
function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate)
  const leaves = relative === '..' || relative.startsWith(`..${path.sep}`)
  return !leaves && !path.isAbsolute(relative)
}

function realDir(dir: string): string {
  try {
    return realpathSync(dir)
  } catch {
    return path.resolve(dir)
  }
}

/** Checks `component.wasm`: relative, inside the manifest's directory even through symlinks, a file. */
export function checkWasmPath(validator: Validator, dir: string, wasm: string): string | undefined {
  const at = 'component.wasm'
  const allowed = "a relative path to a file inside the manifest's directory"
  if (wasm === '') return validator.report({ path: at, message: 'cannot be empty', value: wasm, allowed })
  if (path.isAbsolute(wasm) || path.win32.isAbsolute(wasm)) {
    return validator.report({
      path: at,
      message: `"${wasm}" must be relative, not absolute`,
      value: wasm,
      allowed,
    })
  }
  const resolved = path.resolve(dir, wasm)
  if (!isInside(dir, resolved)) {
    const message = `"${wasm}" leaves the manifest's directory`
    return validator.report({ path: at, message, value: wasm, allowed })
  }
  let real: string
  try {
    real = realpathSync(resolved)
  } catch {
    return validator.report({
      path: at,
      message: `"${wasm}" does not exist (${resolved})`,
      value: wasm,
      allowed,
    })
  }
  if (!isInside(realDir(dir), real)) {
    const message = `"${wasm}" leaves the manifest's directory through a symlink (to ${real})`
    return validator.report({ path: at, message, value: wasm, allowed })
  }
  if (!statSync(real).isFile()) {
    return validator.report({ path: at, message: `"${wasm}" is not a file`, value: wasm, allowed })
  }
  return resolved
}

/** A glob's problem, including a symlink in its literal part that leads outside the directory. */
export function filesystemGlobProblem(dir: string, glob: string): string | undefined {
  const problem = globProblem(glob)
  if (problem !== undefined) return problem
  const base = globBase(glob)
  if (base === '') return undefined
  let real: string
  try {
    real = realpathSync(path.resolve(dir, base))
  } catch {
    // Not there yet. filesystem.read resolves no real path later either: it opens the file below
    // the base directory one name at a time and follows no symlink, so none can lead out.
    return undefined
  }
  return isInside(realDir(dir), real)
    ? undefined
    : `"${base}" leads outside the manifest's directory (to ${real})`
}
