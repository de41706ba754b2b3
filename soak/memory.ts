/**
 * Samples of retained memory and open handles, and the bounds a soak run must stay within after
 * its warm-up.
 */
import { readFileSync } from 'node:fs'
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'

import { KINDS, type Counts } from './load.js'

const MiB = 1024 * 1024

export interface Sample {
  /** Minutes since the load started. */
  minute: number
  counts: Counts
  rssMiB: number
  heapMiB: number
  /**
   * What the main isolate's heap has reserved (used or not): not bounded, shown beside RSS because
   * V8 sizes its young generation to the allocation rate, which RSS then carries.
   */
  heapTotalMiB: number
  externalMiB: number
  handles: number
  /** Threads of the process (Linux; NaN elsewhere): a pool thread that never ends shows here. */
  threads: number
}

/** A measured quantity, as the bounds name it. */
export type Metric = 'rssMiB' | 'heapMiB' | 'externalMiB' | 'handles' | 'threads'

/**
 * Growth from the end of the warm-up to the last sample, and the slope of a least-squares line
 * through the samples after the warm-up, per hour. The slope is only judged on a run with at least
 * {@link SLOPE_MIN_MINUTES} minutes after its warm-up: over a shorter span, a few MiB of allocator
 * noise already make a steep line.
 */
export interface Bound {
  metric: Metric
  label: string
  unit: string
  growth: number
  slopePerHour?: number
}

/**
 * Why these numbers: after a forced GC, V8's heap and external memory come back to within about
 * 1 MiB, and RSS to within a few MiB (the allocator keeps freed pages, the worker lane's isolates
 * come and go). Twice to four times that noise is the bound, so the run does not fail on noise,
 * while any leak that grows with the number of operations passes it well within 30 minutes:
 * the run prints, per kind, the smallest leak per operation that would have crossed the RSS bound.
 */
export const BOUNDS: readonly Bound[] = [
  { metric: 'rssMiB', label: 'RSS', unit: 'MiB', growth: 24, slopePerHour: 24 },
  { metric: 'heapMiB', label: 'V8 heap used', unit: 'MiB', growth: 4, slopePerHour: 8 },
  { metric: 'externalMiB', label: 'external memory', unit: 'MiB', growth: 4, slopePerHour: 8 },
  { metric: 'handles', label: 'open handles', unit: 'handles', growth: 0 },
  // Idle pool threads end after 30 s, so the count follows the last half minute's concurrency
  // (a few spinning guests of terminated workers, and the like): it moves by a dozen.
  { metric: 'threads', label: 'threads', unit: 'threads', growth: 32 },
]
export const SLOPE_MIN_MINUTES = 10

/** The process's threads, from /proc/self/status; NaN where there is none. */
export function threadCount(): number {
  try {
    return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? Number.NaN)
  } catch {
    return Number.NaN
  }
}

/** Collects garbage until finalizers (which free native memory) have run, then samples. */
export async function sample(minute: number, counts: Counts): Promise<Sample> {
  const gc = globalThis.gc
  if (gc === undefined) throw new Error('the soak needs global.gc: run it with node --expose-gc')
  // N-API finalizers run on a later turn than the collection that found their objects dead, and
  // free what they hold only then: collect, let them run, collect what they released.
  for (let pass = 0; pass < 4; pass++) {
    gc()
    await nextTurn()
    await sleep(25)
  }
  const usage = process.memoryUsage()
  return {
    minute,
    counts: { ...counts },
    rssMiB: usage.rss / MiB,
    heapMiB: usage.heapUsed / MiB,
    heapTotalMiB: usage.heapTotal / MiB,
    externalMiB: usage.external / MiB,
    handles: process.getActiveResourcesInfo().length,
    threads: threadCount(),
  }
}

/** Slope of the least-squares line through (minute, value), per hour. */
export function slopePerHour(samples: readonly Sample[], metric: Metric): number {
  const n = samples.length
  if (n < 2) return 0
  const meanX = samples.reduce((sum, s) => sum + s.minute, 0) / n
  const meanY = samples.reduce((sum, s) => sum + s[metric], 0) / n
  let covariance = 0
  let variance = 0
  for (const s of samples) {
    covariance += (s.minute - meanX) * (s[metric] - meanY)
    variance += (s.minute - meanX) ** 2
  }
  return variance === 0 ? 0 : (covariance / variance) * 60
}

export interface Judgement {
  bound: Bound
  growth: number
  slope: number
  slopeJudged: boolean
  passed: boolean
}

/** Each bound checked against the samples from `baseline` (the end of the warm-up) on. */
export function judge(samples: readonly Sample[], baseline: number): Judgement[] {
  const after = samples.slice(baseline)
  const first = after[0]
  const last = after.at(-1)
  if (first === undefined || last === undefined) throw new Error('no samples after the warm-up')
  const slopeJudged = last.minute - first.minute >= SLOPE_MIN_MINUTES
  return BOUNDS.map((bound) => {
    const growth = last[bound.metric] - first[bound.metric]
    const slope = slopePerHour(after, bound.metric)
    const slopeOk = !slopeJudged || bound.slopePerHour === undefined || slope <= bound.slopePerHour
    // NaN: not measured on this platform.
    const passed = Number.isNaN(growth) || (growth <= bound.growth && slopeOk)
    return { bound, growth, slope, slopeJudged, passed }
  })
}

/** The samples as a Markdown table: cumulative operations per kind, then the memory figures. */
export function table(samples: readonly Sample[], decimals: number): string {
  const header = [
    'minute',
    ...KINDS,
    'RSS MiB',
    'heap MiB',
    'heap total MiB',
    'external MiB',
    'handles',
    'threads',
  ]
  const rows = samples.map((s) => [
    s.minute.toFixed(decimals),
    ...KINDS.map((kind) => String(s.counts[kind])),
    s.rssMiB.toFixed(1),
    s.heapMiB.toFixed(1),
    s.heapTotalMiB.toFixed(1),
    s.externalMiB.toFixed(1),
    String(s.handles),
    String(s.threads),
  ])
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  )
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join(' | ')} |`
  const rule = `|${widths.map((width, column) => (column === 0 ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}
