/**
 * The capability interfaces' option checks, kept here so that their modules compile unchanged:
 * each applies the rule lib/options.ts holds for that option (bounds included). New code imports
 * lib/options.ts directly.
 */
import { checkOption, reading, type OptionName } from '../options.js'
import { ownOptions } from './own.js'

export { knownKeys, signalSource } from '../options.js'

/**
 * A capability's options as own properties, read once: what the caller's own code throws as
 * they are read (a getter, a Proxy's trap) is a ConfigError, as for every other option.
 */
export function capabilityOptions<T>(given: T): T {
  return reading('options', () => ownOptions(given))
}

/** The rule of each capability option these helpers are called with. */
const CAPABILITY_RULES: Record<string, OptionName> = {
  maxBodyBytes: 'maxBodyBytes',
  maxFileBytes: 'maxFileBytes',
  maxRedirects: 'maxRedirects',
  timeoutMs: 'hostTimeoutMs',
}

/** `value` checked against the rule of the capability option `name`, `fallback` when undefined. */
export function positiveInteger(name: string, value: unknown, fallback: number): number {
  const rule = CAPABILITY_RULES[name]
  if (rule === undefined) throw new Error(`no rule for the capability option "${name}" in lib/options.ts`)
  return checkOption(rule, value, fallback, name)
}

/** The same check, for an option whose rule admits 0. */
export const nonNegativeInteger = positiveInteger
