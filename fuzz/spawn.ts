/** Starts fuzz/child.ts in a child process and reads its report, or tells how it died. */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import type { FuzzReport, ReplayReport } from './child.js'

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.ts')

export type ChildResult<Report> =
  | { kind: 'report'; report: Report }
  /** The child died (signal, abort, non-zero exit) or hung: `last` is the input it was running. */
  | { kind: 'crash'; how: string; stderr: string; last?: Uint8Array }

export async function runChild<Report = FuzzReport | ReplayReport>(
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = {},
): Promise<ChildResult<Report>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-fuzz-'))
  const last = path.join(dir, 'last-input')
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args, '--last', last], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('close', (c, s) => resolve([c, s])),
    )
    clearTimeout(timer)
    const line = stdout.trim().split('\n').pop() ?? ''
    if (code === 0 && line.startsWith('{')) return { kind: 'report', report: JSON.parse(line) as Report }
    let input: Uint8Array | undefined
    try {
      input = readFileSync(last)
    } catch {
      input = undefined
    }
    const how = timedOut
      ? `hung (killed after ${timeoutMs} ms)`
      : signal
        ? `killed by ${signal}`
        : `exited with ${code}`
    return { kind: 'crash', how, stderr, ...(input === undefined ? {} : { last: input }) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
