#!/usr/bin/env node
/**
 * The `airssys-wasm` command: `run`, `inspect`, `validate` and `types` (one file each), the help texts
 * (help.ts), argument parsing (args.ts) and exit codes (exit.ts). Errors print `CODE: message` on
 * stderr. Everything printed goes through output.ts, which escapes the control characters a
 * guest could use to drive the terminal.
 */
import { fstatSync, readFileSync, realpathSync, writeSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

import { WasmError } from '../errors.js'
import { escapeText } from '../util/quoted.js'
import { UsageError } from './args.js'
import { errorCode, errorMessage, EXIT, exitCodeOf } from './exit.js'
import { HELP, USAGE } from './help.js'
import { inspect } from './inspect.js'
import { terminalOutput, type CliOutput } from './output.js'
import { run } from './run.js'
import { types } from './types.js'
import { validate } from './validate.js'

export type { CliOutput } from './output.js'

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return manifest.version
}

/**
 * Runs the CLI with `argv` (without `node` and the script) and returns the exit code; writes to
 * `io` (the process's streams by default) and never calls `process.exit` itself.
 */
export async function main(argv: readonly string[], output: CliOutput = process): Promise<number> {
  const io = terminalOutput(output)
  const [command, ...rest] = argv
  try {
    switch (command) {
      case undefined:
        io.stderr.write(USAGE)
        return EXIT.usage
      case '-h':
      case '--help':
        io.stdout.write(USAGE)
        return EXIT.success
      case 'help': {
        const topic = rest[0] === undefined ? USAGE : HELP[rest[0]]
        if (topic === undefined) throw new UsageError(`no help for unknown command "${rest[0]}"`)
        io.stdout.write(topic)
        return EXIT.success
      }
      case '-v':
      case '--version':
        io.stdout.write(`${version()}\n`)
        return EXIT.success
      case 'run':
        return await run(rest, io)
      case 'inspect':
        return await inspect(rest, io)
      case 'validate':
        return await validate(rest, io)
      case 'types':
        return await types(rest, io)
      default:
        throw new UsageError(`unknown command "${command}"`)
    }
  } catch (error) {
    const unfinished =
      io.stderr.atLineStart === false || (io.stdout.atLineStart === false && sharesLines(output))
    if (unfinished) io.stderr.write('\n')
    io.stderr.write(`${errorCode(error)}: ${errorMessage(error)}\n`)
    if (error instanceof UsageError) {
      const help =
        error.command === undefined ? 'airssys-wasm --help' : `airssys-wasm ${error.command} --help`
      io.stderr.write(`Run \`${help}\` for usage.\n`)
    }
    // Anything that is not ours (a bug, an fs failure) keeps its stack for the report.
    if (!(error instanceof WasmError || error instanceof UsageError || errorCode(error) === 'ERR_USAGE')) {
      io.stderr.write(`${error instanceof Error ? error.stack : ''}\n`)
    }
    return exitCodeOf(error)
  }
}

/**
 * Whether the process's stdout and stderr are one terminal, file or pipe (an interactive shell,
 * `2>&1`): a line left unfinished on either is then the line the other goes on (probe H53).
 */
function sharesLines(output: CliOutput): boolean {
  if (output.stdout !== process.stdout || output.stderr !== process.stderr) return false
  try {
    const [out, err] = [fstatSync(1), fstatSync(2)]
    return out.dev === err.dev && out.ino === err.ino
  } catch {
    return false
  }
}

/** Whether this file is the process's entry point (also through npm's bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) {
  // A reader that closes early (`| head`) ends what the CLI prints, not the CLI: without a
  // listener, the EPIPE of the next write is an uncaught 'error' event that kills the process
  // with Node's stack trace, whatever the run's outcome.
  const readerGone = new AbortController()
  // Another failed write (a full device: ENOSPC) loses what was printed too: the run stops as for
  // a reader that left, and the CLI says why in one line, not as an uncaught exception's stack.
  let writeFailed: NodeJS.ErrnoException | undefined
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') writeFailed ??= error
      readerGone.abort(new Error('the reader of stdout or stderr closed it'))
    })
  }
  const lostOutput = () => (writeFailed === undefined ? EXIT.readerGone : EXIT.failure)
  // Ctrl-C (or a service manager's SIGTERM) stops `run`'s guest, and the run still reports what
  // it did (its output, its --json document); a second signal ends the process at once, as does
  // the first for the commands that run no guest.
  const interrupted = new AbortController()
  const stop = (signal: NodeJS.Signals) => {
    process.off('SIGINT', stop).off('SIGTERM', stop)
    interrupted.abort(signal)
  }
  if (process.argv[2] === 'run') process.on('SIGINT', stop).on('SIGTERM', stop)
  const io = {
    stdout: process.stdout,
    stderr: process.stderr,
    readerGone: readerGone.signal,
    interrupted: interrupted.signal,
  }
  const code = await main(process.argv.slice(2), io)
  // Some of what it printed was lost, whenever the reader left: as a writer killed by SIGPIPE. A
  // write's EPIPE is emitted on a later tick, which may come after `main` has returned: the exit
  // looks again.
  process.exitCode = readerGone.signal.aborted ? lostOutput() : code
  process.once('exit', () => {
    if (!readerGone.signal.aborted) return
    process.exitCode = lostOutput()
    if (writeFailed !== undefined && !process.stderr.destroyed) {
      // Synchronous at exit; a stderr that fails too loses only this line.
      try {
        const { code = 'EIO', message } = writeFailed
        writeSync(2, `${escapeText(message.startsWith(code) ? message : `${code}: ${message}`)}\n`)
      } catch {
        // Nowhere left to say it: the status says it.
      }
    }
  })
  // A read the file system cannot cancel (of a FIFO whose writer stays) keeps a stopped run from
  // exiting, even by process.exit (libuv joins its threads at exit): once what it printed is out,
  // it ends as the signal would have ended it (its handler is gone).
  if (interrupted.signal.aborted) {
    const signal = interrupted.signal.reason as NodeJS.Signals
    setTimeout(() => process.kill(process.pid, signal), 1000).unref()
  }
}
