/**
 * `npm run soak -- --minutes N [--quick] [--leak-bytes B] [--no-workers]`: a mixed load on the
 * addon for N minutes (default 30; 1 with --quick) that samples retained memory and open handles,
 * and fails (exit 1) when their growth after the warm-up passes a bound (see memory.ts), when a
 * result is wrong or an error is not the expected one, or when the process would not exit by
 * itself afterwards.
 *
 * The load (load.ts) runs rounds of callSync, call, instantiate/dispose, traps with sandbox
 * restarts, async host calls and WASI output on the main thread, while worker threads (workers.ts)
 * start, run guests and end or are terminated, one after another. Every minute (every 5 s with
 * --quick) both stop, the GC runs until finalizers are done, and a sample is taken, so the
 * figures are what is retained, not what is in flight. Runs under `node --expose-gc`.
 * `--leak-bytes B` keeps B bytes per round, to show that the bounds catch a leak of that size.
 * `--no-workers` runs the main-thread load alone, to tell its memory from the worker lane's.
 */
// First: it decides which addon file lib/ loads (see addon-snapshot.ts).
import { addonInfo } from './addon-snapshot.js'

import { execFileSync } from 'node:child_process'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'

import { root } from '../fixtures/index.js'
import { KINDS, Load, type Counts } from './load.js'
import { BOUNDS, SLOPE_MIN_MINUTES, judge, sample, table, threadCount, type Sample } from './memory.js'
import { buildWorker } from './worker-build.js'
import { WorkerLane } from './workers.js'

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'leak-bytes': { type: 'string', default: '0' },
    'no-workers': { type: 'boolean', default: false },
  },
})
/** A self-check of the bounds: keeps this many bytes per round of the load, as a leak would. */
const leakBytes = Number(values['leak-bytes'])
if (!Number.isSafeInteger(leakBytes) || leakBytes < 0) {
  console.error(`--leak-bytes expects a whole number of bytes, got ${values['leak-bytes']}`)
  process.exit(2)
}
const quick = values.quick === true
const withWorkers = values['no-workers'] !== true
const minutes = Number(values.minutes ?? (quick ? 1 : 30))
const sampleEveryMs = quick ? 5_000 : 60_000
const warmupMs = quick ? 30_000 : 60_000
const totalMs = Math.round(minutes * 60_000)
if (!Number.isFinite(minutes) || minutes > 24 * 60 || totalMs < warmupMs + sampleEveryMs) {
  const least = (warmupMs + sampleEveryMs) / 60_000
  console.error(
    `--minutes expects a number from ${least.toFixed(2)} to 1440${quick ? ' with --quick' : ''}, got ${values.minutes}`,
  )
  process.exit(2)
}
if (typeof globalThis.gc !== 'function') {
  console.error('the soak needs global.gc: run it with node --expose-gc (npm run soak does)')
  process.exit(2)
}
// The run ends by itself; this only stops one whose load hangs.
setTimeout(
  () => {
    console.error('soak: still running 5 minutes past its end: a call or a worker hangs')
    process.exit(1)
  },
  totalMs + 5 * 60_000,
).unref()

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

console.log(
  `soak: ${minutes} min${quick ? ' (quick)' : ''}, a sample every ${sampleEveryMs / 1000} s, warm-up ${warmupMs / 1000} s`,
)
if (!withWorkers) console.log('the main-thread load alone: no worker lane')
if (leakBytes > 0) console.log(`self-check: keeping ${leakBytes} bytes per round, as a leak would`)
console.log(`commit ${commit()}; node ${process.version}\naddon: ${addonInfo}`)

const load = await Load.create()
const workers = withWorkers
  ? new WorkerLane(buildWorker(), load.serializeTypes(), load.problems, quick ? 100 : 250)
  : undefined
const counts = (): Counts => ({ ...load.counts, worker: workers?.started ?? 0 })

let rounds = 0
const leaked: Buffer[] = []
async function mainLane(deadline: number): Promise<void> {
  while (performance.now() < deadline) {
    await load.round()
    rounds++
    if (leakBytes > 0) leaked.push(Buffer.alloc(leakBytes, rounds))
    // Lets timers and worker messages in between rounds.
    await nextTurn()
  }
}

function progress(s: Sample): void {
  const kinds = KINDS.map((kind) => `${kind} ${s.counts[kind]}`).join(', ')
  console.log(
    `[${s.minute.toFixed(2)} min] ${kinds}; RSS ${s.rssMiB.toFixed(1)} MiB, heap ${s.heapMiB.toFixed(1)} MiB (of ${s.heapTotalMiB.toFixed(1)}), ` +
      `external ${s.externalMiB.toFixed(1)} MiB, handles ${s.handles}, threads ${s.threads}; problems ${load.problems.count}`,
  )
}

/** How late the lanes may finish after a sample time before the run is called stalled. */
const STALL_MS = 120_000

const started = performance.now()
const elapsedMinutes = () => (performance.now() - started) / 60_000
const samples: Sample[] = [await sample(0, counts())]
progress(samples[0] as Sample)
let stalled = false
for (let next = sampleEveryMs; next <= totalMs; next += sampleEveryMs) {
  const deadline = started + next
  const stall = new AbortController()
  const lanes = Promise.all([mainLane(deadline), workers?.run(deadline)]).then(() => 'done' as const)
  const late = sleep(next + STALL_MS - (performance.now() - started), 'stalled' as const, {
    signal: stall.signal,
  })
  late.catch(() => undefined)
  if ((await Promise.race([lanes, late])) === 'stalled') {
    // A call or a worker that never ends: report what was measured; nothing can be closed.
    stalled = true
    console.log(
      `\nthe load stopped: a call or a worker did not finish within ${STALL_MS / 1000} s of the sample ` +
        `time (threads now ${threadCount()}, open: ${process.getActiveResourcesInfo().join(', ')})`,
    )
    break
  }
  stall.abort()
  const taken = await sample(elapsedMinutes(), counts())
  samples.push(taken)
  progress(taken)
}
if (!stalled) load.close()

const baseline = Math.round(warmupMs / sampleEveryMs)
const judgements = samples.length > baseline ? judge(samples, baseline) : []
const base = samples[Math.min(baseline, samples.length - 1)] as Sample
const last = samples.at(-1) as Sample

console.log(`\n${table(samples, quick ? 2 : 0)}\n`)
console.log(`${rounds} rounds of the main-thread load, ${workers?.started ?? 0} workers.`)
if (judgements.length > 0) {
  console.log(`\nBounds, from the sample at ${base.minute.toFixed(2)} min (end of the warm-up) to the last:`)
}
for (const { bound, growth, slope, slopeJudged, passed } of judgements) {
  const slopeText =
    bound.slopePerHour === undefined
      ? ''
      : `, slope ${slope.toFixed(1)} ${bound.unit}/h (bound ${bound.slopePerHour}${slopeJudged ? '' : `, judged only over ${SLOPE_MIN_MINUTES}+ min`})`
  console.log(
    `  ${passed ? 'ok  ' : 'FAIL'} ${bound.label}: growth ${growth.toFixed(1)} ${bound.unit} (bound ${bound.growth})${slopeText}`,
  )
}

const rssBound = BOUNDS.find((bound) => bound.metric === 'rssMiB')?.growth ?? 0
const heapBound = BOUNDS.find((bound) => bound.metric === 'heapMiB')?.growth ?? 0
if (judgements.length > 0) {
  console.log('\nThe smallest leak per operation that would have crossed a growth bound in this run:')
}
for (const kind of judgements.length > 0 ? KINDS : []) {
  const operations = last.counts[kind] - base.counts[kind]
  if (operations === 0) continue
  const bytes = (bound: number) => ((bound * 1024 * 1024) / operations).toFixed(0).padStart(8)
  console.log(
    `  ${kind.padEnd(11)} ${String(operations).padStart(9)} after the warm-up: ${bytes(rssBound)} bytes of RSS, ${bytes(heapBound)} bytes of heap`,
  )
}

const { problems } = load
if (problems.count > 0) {
  console.log(
    `\n${problems.count} problems (wrong results or unexpected errors); the first ${problems.first.length}:`,
  )
  for (const problem of problems.first) console.log(`  - ${problem}`)
}
const failed = judgements.filter((judgement) => !judgement.passed).map((judgement) => judgement.bound.label)
if (stalled) failed.push('the load stalled')
if (problems.count > 0) failed.push(`${problems.count} problems`)
console.log(`\nverdict: ${failed.length === 0 ? 'PASS' : `FAIL (${failed.join(', ')})`}`)
process.exitCode = failed.length === 0 ? 0 : 1
// A stalled run has calls that will never end: it cannot wait for them.
if (stalled) process.exit(1)

// Everything is closed: nothing may keep the process alive now.
setTimeout(() => {
  console.error(
    `soak: the process did not exit by itself; open: ${process.getActiveResourcesInfo().join(', ')}`,
  )
  process.exit(1)
}, 10_000).unref()
