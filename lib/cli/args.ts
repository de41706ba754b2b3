/** Command-line parsing shared by the commands, and the error for a command line they cannot act on. */
import { parseArgs, type ParseArgsConfig } from 'node:util'

/** A command line the CLI cannot act on; `command` names the help that explains it. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE'

  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message)
  }
}

type Options = NonNullable<ParseArgsConfig['options']>

/** What {@link parse} returns for `options`: their values and the positionals. */
export type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
>

/** `args` parsed by node:util against `options`; its errors are usage errors of `command`. */
export function parse<T extends Options>(args: readonly string[], options: T, command: string): Parsed<T> {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true })
  } catch (error) {
    // node:util's errors (ERR_PARSE_ARGS_UNKNOWN_OPTION, ...) are usage errors of this command.
    throw new UsageError((error as Error).message, command)
  }
}

/** The one positional argument of `command`; `missing` says what it needs when there is none. */
export function onlyTarget(positionals: readonly string[], command: string, missing: string): string {
  const [target, ...extra] = positionals
  if (target === undefined) throw new UsageError(missing, command)
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`, command)
  return target
}

/**
 * Whether `--json` is among `args` (before a `--`): read from the words themselves, so that a
 * command line that fails to parse still gets its error as JSON.
 */
export function jsonRequested(args: readonly string[]): boolean {
  const end = args.indexOf('--')
  return (end === -1 ? args : args.slice(0, end)).includes('--json')
}

/** A flag holding a positive integer (`1000000` or `1_000_000`), or undefined when absent. */
export function integerFlag(
  flag: string,
  text: string | undefined,
  command: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (text === undefined) return undefined
  // Underscores only between digits, one at a time, as TOML and JS numbers take them.
  const value = /^\d+(?:_\d+)*$/.test(text) ? Number(text.replaceAll('_', '')) : Number.NaN
  if (value > max) throw new UsageError(`${flag} may be at most ${max}, got "${text}"`, command)
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${flag} expects a positive integer, got "${text}"`, command)
  }
  return value
}
