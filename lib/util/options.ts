/**
 * The capability interfaces' option checks, kept here so that their modules compile unchanged:
 * each applies the rule lib/options.ts holds for that option (bounds included). New code imports
 * lib/options.ts directly.
 */
import { checkOption, type OptionName } from '../options.js'

export { knownKeys, signalSource } from '../options.js'

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
