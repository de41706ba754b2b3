/**
 * How Component.toml problems read: a TOML value in words, the key a typo most likely meant, sizes
 * in KiB and MiB, and the one ConfigError that lists every problem of a manifest.
 */
import { TomlDate } from 'smol-toml'

import { ConfigError, type ConfigProblem } from '../errors.js'
import { quoted } from '../util/quoted.js'

/** How a TOML value reads in a message: `string "1MiB"`, `float 1.5`, `a table`. */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    return `string ${quoted(value, 80)}`
  }
  if (typeof value === 'bigint') return `integer ${value}`
  if (typeof value === 'number') return `float ${value}`
  if (typeof value === 'boolean') return `boolean ${value}`
  if (value instanceof TomlDate) return `date ${value.toISOString()}`
  return Array.isArray(value) ? 'an array' : 'a table'
}

/** The longest string, and the most characters of JSON, a problem's `value` keeps whole. */
const MAX_REPORTED_CHARS = 1000

/**
 * A problem's `value` as a host prints it: TOML integers (parsed as bigint) as numbers when that
 * loses nothing, and what a manifest could make large (a long string, a deep or wide table or
 * array, printed indented by the CLI's `--json`) in words instead.
 */
export function reported(value: unknown): unknown {
  if (typeof value === 'bigint' && value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER) {
    return Number(value)
  }
  if (typeof value === 'string') return value.length <= MAX_REPORTED_CHARS ? value : quoted(value)
  if (typeof value === 'object' && value !== null && !(value instanceof TomlDate) && !small(value, 4)) {
    return describe(value)
  }
  return value
}

/** Whether a parsed TOML table or array nests at most `depth` deep in a few hundred characters. */
function small(value: object, depth: number): boolean {
  let budget = MAX_REPORTED_CHARS / 10
  const within = (item: unknown, left: number): boolean => {
    if (typeof item === 'string' && item.length > MAX_REPORTED_CHARS / 4) return false
    if (typeof item !== 'object' || item === null || item instanceof TomlDate) return --budget >= 0
    if (left === 0) return false
    return Object.values(item).every((inner) => within(inner, left - 1))
  }
  return within(value, depth)
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution))
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

/** The known key a typo most likely meant, if any is close enough. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined
  for (const candidate of known) {
    const distance = editDistance(key, candidate)
    const tolerance = Math.max(2, Math.floor(candidate.length / 4))
    if (distance <= tolerance && (best === undefined || distance < best.distance))
      best = { key: candidate, distance }
  }
  return best?.key
}

/** `bytes` in the largest unit that divides it: `4 MiB`, `512 KiB`, `1000 bytes`. */
export function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`
  return `${bytes} bytes`
}

/** Renders one problem as a line (plus its snippet, indented) of an error message. */
function render(problem: ConfigProblem): string {
  const where = problem.path === undefined ? '' : `${problem.path}: `
  return `${where}${problem.message}`.replaceAll('\n', '\n    ')
}

/** Problems a manifest's ConfigError lists in its message, and keeps in `problems`. */
const SHOWN_PROBLEMS = 20
export const KEPT_PROBLEMS = 100

/**
 * Throws the ConfigError of a manifest: its problems (the first 100 kept, the first 20 in the
 * message: a megabyte of unknown keys made a message thirteen times its size), the first one's
 * fields on the error itself.
 */
export function fail(file: string, problems: ConfigProblem[], count = problems.length): never {
  const [first] = problems
  if (first === undefined) throw new Error('fail() needs a problem')
  const lines = problems.slice(0, SHOWN_PROBLEMS).map((problem) => `  - ${render(problem)}`)
  if (count > SHOWN_PROBLEMS) lines.push(`  - … and ${count - SHOWN_PROBLEMS} more`)
  const message =
    count === 1 ? `${file}: ${render(first)}` : `${file} has ${count} problems:\n${lines.join('\n')}`
  throw new ConfigError(message, {
    path: first.path,
    value: first.value,
    allowed: first.allowed,
    snippet: first.snippet,
    problems: problems.slice(0, KEPT_PROBLEMS),
  })
}
