/**
 * The host's policy: the ranges a Component.toml's limits must sit in. The manifest is written by
 * the component's author and the policy by the host, so a component cannot raise its own limits.
 */
import { ConfigError } from '../errors.js'
import { RULES, shown } from '../options.js'
import { deepFreeze } from '../util/freeze.js'
import { shownName } from '../util/names.js'
import { isOptionRecord, NONE, ownOptions } from '../util/own.js'

/** An inclusive range of allowed values. */
export interface Range {
  readonly min: number
  readonly max: number
}

/** The host's limits on what a manifest may ask for. */
export interface Policy {
  /** `resources.memory.max_bytes`. Default 512 KiB..4 MiB. */
  readonly memoryBytes: Range
  /** `resources.cpu.max_fuel` (per call). Default 1,000..100,000,000. */
  readonly fuel: Range
  /** `resources.cpu.timeout_ms` (per call); `timeout_seconds` must fit it too. Default 1..300,000. */
  readonly timeoutMs: Range
  /** `resources.memory.max_table_elements`. Default 1..100,000. */
  readonly tableElements: Range
}

/** A policy to apply instead of the default: each bound given widens or narrows that range. */
export type PolicyOptions = {
  readonly [Key in keyof Policy]?:
    { readonly min?: number | undefined; readonly max?: number | undefined } | undefined
}

/** The ranges a host gets unless it passes its own. */
export const DEFAULT_POLICY: Policy = deepFreeze({
  memoryBytes: { min: 512 * 1024, max: 4 * 1024 * 1024 },
  fuel: { min: 1_000, max: 100_000_000 },
  timeoutMs: { min: 1, max: 300_000 },
  tableElements: { min: 1, max: 100_000 },
})

/**
 * What the runtime takes for each limit, and so the widest a policy may allow: a manifest inside
 * the policy must never fail later on a limit the instance refuses (under a path such as
 * `limits.fuel` that its author never wrote). Memory, fuel and timeout are handed to the instance
 * as the sandbox's limits, which must be positive; a table may be empty.
 */
const RUNTIME: { readonly [Key in keyof Policy]: Range & { readonly what: string } } = {
  memoryBytes: { min: 1, max: RULES['limits.memoryBytes'].max, what: 'a memory limit in bytes' },
  fuel: { min: 1, max: RULES.fuel.max, what: 'a per-call fuel budget' },
  timeoutMs: { min: 1, max: RULES.timeoutMs.max, what: 'a per-call timeout in ms' },
  tableElements: {
    min: RULES['limits.tableElements'].min,
    max: RULES['limits.tableElements'].max,
    what: 'a table size',
  },
}

/** `value` moved into `range`. */
export function clamp(value: number, range: Range): number {
  return Math.min(Math.max(value, range.min), range.max)
}

/**
 * Checks a policy option and fills in the default bounds. Each bound must be one the runtime
 * takes for that limit (a fuel `min` of 0 is refused here, not later for the one manifest that
 * uses it).
 */
export function resolvePolicy(policy: PolicyOptions = {}): Policy {
  const options = ownOptions(policy)
  if (!isOptionRecord(options)) {
    throw new ConfigError('policy: expected an object', { path: 'policy', value: options })
  }
  const resolved: Record<string, Range> = {}
  const names = Object.keys(DEFAULT_POLICY)
  for (const key of Object.keys(options)) {
    if (!names.includes(key)) {
      throw new ConfigError(`policy.${shownName(key)}: unknown policy range (known: ${names.join(', ')})`, {
        path: `policy.${shownName(key)}`,
        allowed: names.join(', '),
      })
    }
  }
  for (const key of names as (keyof Policy)[]) {
    const given: unknown = options[key] === undefined ? NONE : options[key]
    const at = `policy.${key}`
    if (!isOptionRecord(given) || Object.keys(given).some((bound) => !['min', 'max'].includes(bound))) {
      throw new ConfigError(`${at}: expected { min?, max? }, got ${shown(given)}`, {
        path: at,
        value: given,
      })
    }
    // A bound given as undefined is the default's, as everywhere an option is.
    const bounds = given as { min?: number; max?: number }
    const range = {
      min: bounds.min === undefined ? DEFAULT_POLICY[key].min : bounds.min,
      max: bounds.max === undefined ? DEFAULT_POLICY[key].max : bounds.max,
    }
    const runtime = RUNTIME[key]
    const allowed = `${runtime.min}..${runtime.max}`
    for (const bound of ['min', 'max'] as const) {
      const value = range[bound]
      const at = `policy.${key}.${bound}`
      if (!Number.isSafeInteger(value)) {
        throw new ConfigError(`${at}: expected an integer in ${allowed}, got ${shown(value)}`, {
          path: at,
          value,
          allowed,
        })
      }
      if (value < runtime.min || value > runtime.max) {
        throw new ConfigError(
          `${at}: ${value} is outside ${allowed}, what the runtime takes as ${runtime.what}`,
          {
            path: at,
            value,
            allowed,
          },
        )
      }
    }
    if (range.min > range.max) {
      throw new ConfigError(`${at}: min ${range.min} is above max ${range.max}`, { path: at, value: range })
    }
    resolved[key] = range
  }
  return deepFreeze(resolved as unknown as Policy)
}
