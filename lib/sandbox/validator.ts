/**
 * The walk over a parsed Component.toml: typed readers for its fields that collect every problem
 * (with its path, value, what is allowed and, for a missing part, a snippet to paste) instead of
 * stopping at the first.
 */
import { TomlDate } from 'smol-toml'

import type { ConfigProblem } from '../errors.js'
import { shownName } from '../util/names.js'
import { closestKey, describe, KEPT_PROBLEMS, reported } from './messages.js'
import type { Policy, Range } from './policy.js'

/** A TOML table as smol-toml parses it. */
export type Table = Record<string, unknown>

/** A TOML table (not an array, a date or a scalar). */
export function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof TomlDate)
}

/** TOML's bare keys: the keys a path shows as they are written. */
const BARE_KEY = /^[A-Za-z0-9_-]+$/

/**
 * The dotted path of `key` under `prefix`, for messages: a bare key as it is; any other quoted as
 * TOML quotes it, with every character outside printable ASCII escaped (a key `"cpu.max_fuel"`
 * under `[resources]` read as the valid field `resources.cpu.max_fuel`, and a zero-width space
 * made `max_bytes\u200b` look like `max_bytes`); a long one by its length (`shownName`).
 */
export function join(prefix: string, key: string): string {
  const shown =
    BARE_KEY.test(key) || key.length > 128
      ? shownName(key)
      : JSON.stringify(key).replace(/[^\x20-\x7e]/gu, (char) => {
          // TOML writes a character beyond U+FFFF as \UXXXXXXXX, not as two surrogates.
          const code = char.codePointAt(0) ?? 0
          return code > 0xffff
            ? `\\U${code.toString(16).padStart(8, '0')}`
            : `\\u${code.toString(16).padStart(4, '0')}`
        })
  return prefix === '' ? shown : `${prefix}.${shown}`
}

/** Collects problems while walking the parsed TOML, so all of them are reported at once. */
export class Validator {
  /** The first problems found (`KEPT_PROBLEMS`), and how many there are in all. */
  readonly problems: ConfigProblem[] = []
  count = 0

  constructor(readonly policy: Policy) {}

  report(problem: ConfigProblem): undefined {
    this.count++
    if (this.problems.length < KEPT_PROBLEMS) {
      this.problems.push('value' in problem ? { ...problem, value: reported(problem.value) } : problem)
    }
    return undefined
  }

  /** Reports keys of `table` that the schema does not know (a typo must not drop a limit silently). */
  knownKeys(table: Table, prefix: string, known: readonly string[]): void {
    for (const key of Object.keys(table)) {
      if (known.includes(key)) continue
      // Past the problems kept, only counted: a megabyte of unknown keys took a second to describe.
      if (this.problems.length >= KEPT_PROBLEMS) {
        this.count++
        continue
      }
      const closest = closestKey(key, known)
      const hint = closest === undefined ? `known keys: ${known.join(', ')}` : `did you mean "${closest}"?`
      this.report({
        path: join(prefix, key),
        message: `unknown key (${hint})`,
        value: table[key],
        allowed: known.join(', '),
      })
    }
  }

  /** A sub-table; reports it when it is missing (with `snippet`) or not a table. */
  section(parent: Table, prefix: string, key: string, snippet?: string): Table | undefined {
    const value = parent[key]
    const at = join(prefix, key)
    if (value === undefined) {
      if (snippet === undefined) return undefined
      return this.report({
        path: at,
        message: `missing section; add:\n${snippet}`,
        allowed: 'a table',
        snippet,
      })
    }
    if (isTable(value)) return value
    return this.report({
      path: at,
      message: `expected a table, got ${describe(value)}`,
      value,
      allowed: 'a table',
    })
  }

  /** A required field: reports it when missing, with what it allows and a line to paste. */
  required(table: Table, prefix: string, key: string, example: string, allowed: string): unknown {
    const value = table[key]
    if (value !== undefined) return value
    const at = join(prefix, key)
    const snippet = `${key} = ${example}`
    const message = `missing (allowed: ${allowed}); add \`${snippet}\` under [${prefix}]`
    return this.report({ path: at, message, allowed, snippet })
  }

  string(value: unknown, at: string, allowed: string): string | undefined {
    if (value === undefined || typeof value === 'string') return value
    return this.report({ path: at, message: `expected a string, got ${describe(value)}`, value, allowed })
  }

  /** An integer inside `range`; TOML floats are refused even when whole, to keep limits exact. */
  integer(value: unknown, at: string, range: Range, unit?: (n: number) => string): number | undefined {
    if (value === undefined) return undefined
    const allowed = rangeText(range)
    if (typeof value !== 'bigint') {
      const message = `expected an integer, got ${describe(value)}`
      return this.report({ path: at, message, value, allowed })
    }
    if (value < BigInt(range.min) || value > BigInt(range.max)) {
      const side = value < BigInt(range.min) ? 'below' : 'above'
      const message = `${value} is ${side} the allowed range ${rangeText(range, unit)}`
      return this.report({ path: at, message, value, allowed })
    }
    return Number(value)
  }

  boolean(value: unknown, at: string): boolean | undefined {
    if (value === undefined || typeof value === 'boolean') return value
    const message = `expected a boolean, got ${describe(value)}`
    return this.report({ path: at, message, value, allowed: 'true or false' })
  }

  /** An array of strings, each checked by `problemOf`. */
  patterns(
    value: unknown,
    at: string,
    allowed: string,
    problemOf: (item: string) => string | undefined,
    most = Number.POSITIVE_INFINITY,
  ): string[] {
    if (value === undefined) return []
    if (!Array.isArray(value)) {
      this.report({
        path: at,
        message: `expected an array of strings, got ${describe(value)}`,
        value,
        allowed,
      })
      return []
    }
    // Refused whole, before each entry's checks (which may read the file system).
    if (value.length > most) {
      this.report({ path: at, message: `at most ${most} entries, got ${value.length}`, value, allowed })
      return []
    }
    const accepted: string[] = []
    value.forEach((item: unknown, index) => {
      const itemAt = `${at}[${index}]`
      if (typeof item !== 'string') {
        const message = `expected a string, got ${describe(item)}`
        this.report({ path: itemAt, message, value: item, allowed })
        return
      }
      const problem = problemOf(item)
      if (problem === undefined) accepted.push(item)
      else this.report({ path: itemAt, message: problem, value: item, allowed })
    })
    return accepted
  }
}

/** A range as messages show it: `1000..100000000`, with `unit` also `524288..4194304 (512 KiB..4 MiB)`. */
export function rangeText(range: Range, unit?: (n: number) => string): string {
  const plain = `${range.min}..${range.max}`
  return unit === undefined ? plain : `${plain} (${unit(range.min)}..${unit(range.max)})`
}
