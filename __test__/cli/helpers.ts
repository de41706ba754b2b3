/** Running the CLI and other scripts as child processes, for the CLI specs. */
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import path from 'node:path'
import type { Readable, Writable } from 'node:stream'

import { root } from '../helpers.js'

/** How a child process ended, and what it printed. */
export interface Outcome {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * At most this many child processes run at once per spec file. Each is a Node compiling the CLI's
 * TypeScript (about a second of CPU): a spec starting dozens at once starved the other spec files'
 * workers on two cores for a minute, past their own wall-clock bounds.
 */
const MOST_AT_ONCE = 4
let running = 0
const queued: (() => void)[] = []

function takeTurn(): Promise<void> {
  if (running < MOST_AT_ONCE) {
    running++
    return Promise.resolve()
  }
  return new Promise((resolve) => queued.push(resolve))
}

/** Hands the turn to the next child waiting for one, if any. */
function endTurn() {
  const next = queued.shift()
  if (next) next()
  else running--
}

/** Runs a script as a child process, as a user's shell would; `input` is written to its stdin. */
export async function spawnNode(args: readonly string[], input?: string): Promise<Outcome> {
  await takeTurn()
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, args, {
        cwd: root,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      }) as ChildProcessByStdio<Writable | null, Readable, Readable>
      child.stdin?.end(input)
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code, stdout, stderr }))
    })
  } finally {
    endTurn()
  }
}

/** Node's arguments that run the CLI with `args`, from its TypeScript source, so the specs never run a stale build. */
export const cliArgs = (...args: readonly string[]) => [
  '--import',
  'tsx',
  path.join(root, 'lib/cli/index.ts'),
  ...args,
]

/** The CLI run to its end; what it printed. */
export const cli = (...args: string[]) => spawnNode(cliArgs(...args))

/** The CLI as a running child process with piped stdout and stderr, for a spec that drives it (signals, readers). */
export function cliProcess(...args: readonly string[]): ChildProcessByStdio<null, Readable, Readable> {
  return spawn(process.execPath, cliArgs(...args), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
}
