/**
 * Component.toml: `loadManifest` reads the file, parses it with smol-toml, checks every field
 * against the schema (schema.ts) and the host's policy (policy.ts), and returns the typed, frozen
 * manifest that `loadComponent` runs by; all problems are thrown together (messages.ts).
 */
import { statSync } from 'node:fs'
import path from 'node:path'

import { parse, TomlError } from 'smol-toml'

import { ConfigError, WasmTypeError } from '../errors.js'
import { deepFreeze } from '../util/freeze.js'
import { readFileBoundedSync } from '../util/open-beneath.js'
import { knownKeys, shown } from '../options.js'
import { ownOptions } from '../util/own.js'
import { fail, formatBytes } from './messages.js'
import { resolvePolicy, type PolicyOptions } from './policy.js'
import { component, permissions, resources, SECTIONS, type Manifest } from './schema.js'
import { Validator, type Table } from './validator.js'
import { hardLinkProblem, MANIFEST_FILE } from './paths.js'

export { DEFAULT_POLICY, resolvePolicy, type Policy, type PolicyOptions, type Range } from './policy.js'
export type { Manifest } from './schema.js'

export { MANIFEST_FILE } from './paths.js'

/** Options of {@link loadManifest}. */
export interface LoadManifestOptions {
  /** The host's policy; omitted ranges and bounds keep {@link DEFAULT_POLICY}'s. */
  policy?: PolicyOptions | undefined
}

function manifestFile(dirOrFile: string): string {
  // A URL or a Buffer reached path.resolve, whose TypeError is Node's, not ours.
  if (typeof dirOrFile !== 'string') {
    throw new WasmTypeError(
      `dir: expected the path of a directory or of its Component.toml, got ${shown(dirOrFile)}`,
    )
  }
  const resolved = path.resolve(dirOrFile)
  let isDirectory: boolean
  try {
    isDirectory = statSync(resolved).isDirectory()
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error)
    throw new ConfigError(`cannot read ${resolved}: ${reason}`, { cause: error })
  }
  return isDirectory ? path.join(resolved, MANIFEST_FILE) : resolved
}

/** Larger than any real manifest; bounds what a hostile one makes the host read and echo. */
const MAX_MANIFEST_BYTES = 1 << 20

/** Longest line of the manifest a TOML syntax error shows. */
const SHOWN_LINE_CHARS = 200

function readToml(file: string): Table {
  let text: string
  try {
    const bytes = readFileBoundedSync(
      file,
      MAX_MANIFEST_BYTES,
      (stats) =>
        !stats.isFile()
          ? new ConfigError(`${file} is not a file`)
          : stats.nlink > 1
            ? new ConfigError(`${file} ${hardLinkProblem(stats.nlink)}`)
            : undefined,
      () =>
        new ConfigError(
          `${file} is larger than ${formatBytes(MAX_MANIFEST_BYTES)}, more than a manifest may be`,
        ),
    )
    if (bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d) {
      // Not a TOML syntax error with the wasm's bytes escaped in it.
      throw new ConfigError(
        `${file} is a wasm file, not a ${MANIFEST_FILE}: give the directory holding its manifest`,
      )
    }
    text = new TextDecoder().decode(bytes)
  } catch (error) {
    if (error instanceof ConfigError) throw error
    const code = (error as NodeJS.ErrnoException).code
    // The manifest is the directory's own file, as its wasm is: a link could lead anywhere.
    const reason =
      code === 'ENOENT'
        ? `no ${path.basename(file)} in ${path.dirname(file)}`
        : code === 'ELOOP'
          ? `${file} is a symlink, which is not followed: the manifest must be a file in its directory`
          : `cannot read ${file}: ${code}`
    throw new ConfigError(reason, { cause: error })
  }
  try {
    // Integers as bigint tell `1` from `1.0` and keep huge values exact for the range checks.
    return parse(text.replace(/^\uFEFF/, ''), { integersAsBigInt: true })
  } catch (error) {
    if (!(error instanceof TomlError)) throw error
    const reason = error.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? error.message
    const shown = error.codeblock
      .split('\n')
      .map((line) => (line.length > SHOWN_LINE_CHARS ? `${line.slice(0, SHOWN_LINE_CHARS)}…` : line))
      .join('\n')
    const message = `${file}:${error.line}:${error.column}: TOML syntax error: ${reason}\n${shown}`
    throw new ConfigError(message.trimEnd(), { line: error.line, column: error.column, cause: error })
  }
}

const LOAD_MANIFEST_OPTIONS: ReadonlySet<string> = new Set(['policy'])

/**
 * Reads and validates a Component.toml: `dirOrFile` is its directory or the file itself. Every
 * field of the schema is checked (types, ranges from `policy`, the wasm path, permission patterns,
 * unknown keys), and all problems are thrown together as one ConfigError whose `problems` lists
 * each with its `path`, `value`, `allowed` and, for a missing section, a `snippet` to paste.
 * A TOML syntax error is a ConfigError with `line` and `column`.
 */
export function loadManifest(dirOrFile: string, options: LoadManifestOptions = {}): Manifest {
  const own = ownOptions(options)
  knownKeys('loadManifest', own, LOAD_MANIFEST_OPTIONS)
  const policy = resolvePolicy(own.policy)
  const file = manifestFile(dirOrFile)
  const dir = path.dirname(file)
  const root = readToml(file)
  const validator = new Validator(policy)
  validator.knownKeys(root, '', SECTIONS)
  const { fields, wasmPath } = component(validator, root, dir)
  const manifest = {
    file,
    dir,
    wasmPath: wasmPath ?? '',
    component: fields,
    resources: resources(validator, root),
    permissions: permissions(validator, root, file, wasmPath),
  }
  if (validator.count > 0) fail(file, validator.problems, validator.count)
  return deepFreeze(manifest)
}
