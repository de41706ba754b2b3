/**
 * Exit codes: 0 success, 1 any other failure, 2 usage or configuration (including a bad argument
 * value), 3 compile or link, 4 trap (timeout, fuel and memory limits included), another limit the
 * guest hit (HostLimitError) or abort; a run
 * stopped by SIGINT or SIGTERM, 128 + the signal's number (130, 143), as the shell reports a
 * process the signal killed.
 */
import { constants } from 'node:os'

import {
  AbortError,
  CompileError,
  ConfigError,
  HostLimitError,
  LinkError,
  TrapError,
  WasiExitError,
  WasmTypeError,
  type ConfigProblem,
} from '../errors.js'
import { UsageError } from './args.js'

/**
 * `readerGone`: the run was stopped because stdout's reader closed it, the status of a process
 * killed by SIGPIPE (128 + 13), as `yes | head` leaves `yes`.
 */
export const EXIT = { success: 0, failure: 1, usage: 2, compile: 3, trap: 4, readerGone: 141 } as const

/** A run stopped because the process was asked to stop: it exits as one killed by `signal` would. */
export class RunInterrupted extends AbortError {
  constructor(
    readonly signal: NodeJS.Signals,
    cause: unknown,
  ) {
    super(`the run was stopped by ${signal}`, { cause })
  }
}

/** The `code` of a thrown value, as the CLI prints it. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'ERR_UNKNOWN'
}

/** The message of a thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * A thrown value as `--json` prints it: its code and message, as on stderr, for a ConfigError
 * each problem with its path, value and what is allowed, for a tool to point at, and for a guest's
 * exit its code.
 */
export function errorFields(error: unknown): {
  code: string
  message: string
  problems?: readonly ConfigProblem[]
  exitCode?: number
} {
  const fields = { code: errorCode(error), message: errorMessage(error) }
  if (error instanceof ConfigError) return { ...fields, problems: error.problems }
  if (error instanceof WasiExitError) return { ...fields, exitCode: error.exitCode }
  return fields
}

/** The exit code for a thrown value. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof RunInterrupted) return 128 + (constants.signals[error.signal] ?? 0)
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof WasmTypeError)
    return EXIT.usage
  if (errorCode(error) === 'ERR_USAGE') return EXIT.usage
  if (error instanceof CompileError || error instanceof LinkError) return EXIT.compile
  if (error instanceof TrapError || error instanceof HostLimitError || error instanceof AbortError)
    return EXIT.trap
  return EXIT.failure
}
