/**
 * What a guest's small writes to its stdout cost: a WASI preview 1 module making 1,000 `fd_write`
 * calls of 13 bytes, its stdout piped (dropping the oldest bytes, or waiting for a take past the
 * cap) or inherited (the process's own stdout: /dev/null, or a socket this process reads; timed in
 * a child process whose stdout that is), against the same guest with stdout ignored.
 */
import { spawn } from 'node:child_process'

import { Engine, type Instance } from '../lib/index.js'
import { type Mode, type Scenario } from './harness.js'

const WRITES = 1_000
const LINE = 'line of text\n'
const GUEST = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "${LINE.replace('\n', '\\n')}")
  (func (export "write") (local $i i32)
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const ${LINE.length}))
    (loop $next
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (i32.const ${WRITES}))))))`

/**
 * Nanoseconds per `rounds` callSync of GUEST with stdout inherited, timed in a child Node whose
 * stdout is /dev/null or a socket drained here, after as many rounds of warm-up.
 */
function inheritedSamples(target: 'null' | 'socket', rounds: number): Promise<number[]> {
  const script = `
    import { Engine } from ${JSON.stringify(new URL('../lib/index.ts', import.meta.url).href)}
    const guest = new Engine().compileModuleSync(${JSON.stringify(GUEST)})
    const instance = guest.instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: { stdout: 'inherit' } })
    const samples = []
    for (let round = 0; round < ${2 * rounds}; round++) {
      const started = process.hrtime.bigint()
      instance.callSync('write')
      if (round >= ${rounds}) samples.push(Number(process.hrtime.bigint() - started))
    }
    process.stderr.write(JSON.stringify(samples))`
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', target === 'null' ? 'ignore' : 'pipe', 'pipe'],
    })
    let written = 0
    let report = ''
    child.stdout?.on('data', (chunk: Buffer) => (written += chunk.length))
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (report += chunk))
    child.on('error', reject)
    child.on('close', (code) => {
      const expected = 2 * rounds * WRITES * LINE.length
      if (code !== 0) return reject(new Error(`wasi-output child: exit ${code}: ${report}`))
      if (target === 'socket' && written !== expected) {
        return reject(new Error(`wasi-output child: ${written} of ${expected} bytes arrived`))
      }
      resolve(JSON.parse(report) as number[])
    })
  })
}

export const wasiOutput: Scenario = {
  name: 'wasi-output',
  title: `A guest's ${WRITES.toLocaleString('en')} small stdout writes (WASI preview 1)`,
  async setup(mode: Mode) {
    const rounds = mode.quick ? 30 : 300
    const guest = new Engine().compileModuleSync(GUEST)
    const writer = (stdout: 'ignore' | 'pipe', outputOverflow: 'drop' | 'wait' = 'drop'): Instance =>
      guest.instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: { stdout, outputOverflow } })
    const ignored = writer('ignore')
    const dropping = writer('pipe')
    const waiting = writer('pipe', 'wait')
    for (const instance of [dropping, waiting]) {
      instance.callSync('write')
      const taken = instance.takeOutput().stdout
      if (taken !== LINE.repeat(WRITES)) throw new Error(`wasi-output: took ${taken.length} characters`)
    }
    const run = (instance: Instance) => () => {
      instance.callSync('write')
      instance.takeOutput()
    }
    return {
      rows: [
        {
          id: 'ignore',
          title: `${WRITES.toLocaleString('en')} writes, stdout 'ignore'`,
          note: 'Baseline: the same calls into WASI, the bytes going nowhere, then an empty takeOutput().',
          run: run(ignored),
        },
        {
          id: 'pipe',
          title: `${WRITES.toLocaleString('en')} writes, stdout 'pipe'`,
          note: 'One callSync of the guest, then takeOutput() of its 13,000 bytes. Ratio: to the ignored writes.',
          baselines: ['ignore'],
          run: run(dropping),
        },
        {
          id: 'pipe-wait',
          title: `${WRITES.toLocaleString('en')} writes, stdout 'pipe', outputOverflow 'wait'`,
          note: "As 'pipe', with writes that would wait for a take past the cap (the CLI's mode; 1 MiB is never reached here).",
          baselines: ['ignore'],
          run: run(waiting),
        },
        {
          id: 'inherit-null',
          title: `${WRITES.toLocaleString('en')} writes, stdout 'inherit' (/dev/null)`,
          note: `One callSync in a child process whose stdout is /dev/null; ${rounds} samples after as many of warm-up. Ratio: to the ignored writes.`,
          baselines: ['ignore'],
          samples: () => inheritedSamples('null', rounds),
          unit: 'ns',
        },
        {
          id: 'inherit-socket',
          title: `${WRITES.toLocaleString('en')} writes, stdout 'inherit' (a socket)`,
          note: `As above, the child's stdout the socket Node's stdio: 'pipe' makes, which this process reads (and checks: every byte arrives). Ratio: to the ignored writes.`,
          baselines: ['ignore'],
          samples: () => inheritedSamples('socket', rounds),
          unit: 'ns',
        },
      ],
      teardown: () => {
        for (const instance of [ignored, dropping, waiting]) instance.dispose()
      },
    }
  },
}
