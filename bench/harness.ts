/**
 * The shared machinery of the benchmark scenarios: what a scenario and a row are, how a row is
 * warmed up and measured with the `benchmark` package, and the statistics each row reports.
 */
import Benchmark from 'benchmark'

/** How long to measure: a full run for the numbers in BENCHMARKING.md, a quick one for CI. */
export interface Mode {
  quick: boolean
  /** Warm-up before Benchmark.js starts: run the body for at least this long... */
  warmupMs: number
  /** ...and at least this many times. */
  warmupRuns: number
  /** Benchmark.js: the shortest timed cycle, in seconds (it picks how many operations a cycle runs)... */
  minTime: number
  /** ...keep sampling until this many seconds have passed... */
  maxTime: number
  /** ...and at least this many samples were taken. */
  minSamples: number
}

export const FULL: Mode = {
  quick: false,
  warmupMs: 300,
  warmupRuns: 5,
  minTime: 0.05,
  maxTime: 3,
  minSamples: 30,
}
export const QUICK: Mode = {
  quick: true,
  warmupMs: 20,
  warmupRuns: 1,
  minTime: 0.02,
  maxTime: 0.1,
  minSamples: 5,
}

/** One measured operation of a scenario. */
export interface Row {
  /** Stable key within the scenario (results.json, baselines). */
  id: string
  /** What is printed in the table. */
  title: string
  /** What one operation is and how to read its numbers (goes into BENCHMARKING.md). */
  note: string
  /** Ids of rows in the same scenario this row is compared with (ratio = this median / theirs). */
  baselines?: string[]
  /** The operation, synchronous... */
  run?: () => void
  /** ...or asynchronous (measured as a deferred benchmark: one operation at a time)... */
  runAsync?: () => Promise<void>
  /**
   * ...or not timed at all: each call returns one sample of a quantity in `unit` (for example
   * bytes of RSS per instance, measured in a fresh process). Taken `SAMPLED_RUNS` times.
   */
  sample?: () => Promise<number>
  /**
   * ...or timed elsewhere (in a child process, say): returns all the samples it took, in `unit`.
   * Reported like `sample` rows.
   */
  samples?: () => number[] | Promise<number[]>
  /** What `sample` or `samples` return. Timed rows are in nanoseconds. */
  unit?: Unit
}

/** Nanoseconds per operation for timed rows; bytes for sampled memory rows. */
export type Unit = 'ns' | 'bytes'

/** How many samples a `sample` row takes (each one is a fresh process, so a few suffice). */
const SAMPLED_RUNS = { full: 7, quick: 1 }

/** What a scenario's setup returns: its rows, ready to time, and how to release what it holds. */
export interface Prepared {
  rows: Row[]
  /** Lines that sum the measured rows up (a geometric mean of ratios, say), printed and recorded. */
  summarize?: (rows: RowResult[]) => string[]
  teardown?: () => void | Promise<void>
}

/** One file under bench/: a name to select it by and a setup that checks results before timing. */
export interface Scenario {
  name: string
  title: string
  /** Compiles, instantiates and checks every row's result; throws if a result is wrong. */
  setup: (mode: Mode) => Promise<Prepared>
}

/** A row's numbers, in `unit`: nanoseconds per operation for timed rows. */
export interface RowResult {
  id: string
  title: string
  note: string
  unit: Unit
  /** Median of the samples (for timed rows, each sample is the mean time of its operations). */
  median: number
  /** 10th, 90th and 99th percentiles of the samples (interpolated; with 30 samples p99 is ~the worst). */
  p10: number
  p90: number
  p99: number
  /** Benchmark.js's relative margin of error of the mean (95% confidence), in percent. */
  rmePercent: number
  /** Samples taken, and (about) how many operations were timed in all. */
  samples: number
  operations: number
  /** Ratio of this row's median to each baseline row's median, measured in the same run. */
  ratios: { baseline: string; ratio: number }[]
}

export interface ScenarioResult {
  name: string
  title: string
  rows: RowResult[]
  /** What the scenario's `summarize` made of its rows. */
  summary?: string[]
  /** Wall-clock time of the whole scenario (setup, warm-up, measuring, teardown), in ms. */
  elapsedMs: number
}

function percentile(sorted: number[], fraction: number): number {
  const position = (sorted.length - 1) * fraction
  const below = Math.floor(position)
  const above = Math.min(below + 1, sorted.length - 1)
  const low = sorted[below] ?? Number.NaN
  const high = sorted[above] ?? Number.NaN
  return low + (high - low) * (position - below)
}

async function warmUp(row: Row, mode: Mode): Promise<void> {
  const started = performance.now()
  for (let runs = 0; runs < mode.warmupRuns || performance.now() - started < mode.warmupMs; runs++) {
    if (row.run) row.run()
    else await row.runAsync?.()
  }
}

function benchmarkOf(row: Row, mode: Mode, failures: unknown[]): Benchmark {
  const options: Benchmark.Options = {
    minTime: mode.minTime,
    maxTime: mode.maxTime,
    minSamples: mode.minSamples,
  }
  if (row.run) return new Benchmark(row.id, row.run, options)
  const runAsync = row.runAsync
  if (!runAsync) throw new Error(`row ${row.id}: needs run or runAsync`)
  const operation = (deferred: Benchmark.Deferred) => {
    // A deferred cycle cannot fail in Benchmark.js: keep the error and raise it after the run.
    runAsync().then(
      () => deferred.resolve(),
      (error: unknown) => {
        failures.push(error)
        deferred.resolve()
      },
    )
  }
  return new Benchmark(row.id, operation, { ...options, defer: true })
}

function statistics(row: Row, unit: Unit, sorted: number[]) {
  return {
    id: row.id,
    title: row.title,
    note: row.note,
    unit,
    median: percentile(sorted, 0.5),
    p10: percentile(sorted, 0.1),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
  }
}

/** A `sample` row: no warm-up or Benchmark.js, just its samples (rme: their relative spread). */
async function measureSamples(row: Row, sample: () => Promise<number>, mode: Mode): Promise<RowResult> {
  const values: number[] = []
  for (let run = 0; run < (mode.quick ? SAMPLED_RUNS.quick : SAMPLED_RUNS.full); run++) {
    values.push(await sample())
  }
  return fromSamples(row, values)
}

/** The statistics of a `sample` or `samples` row. */
function fromSamples(row: Row, values: number[]): RowResult {
  if (values.length === 0) throw new Error(`row ${row.id}: no samples`)
  values = [...values].sort((a, b) => a - b)
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length
  const deviation = Math.sqrt(values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length)
  return {
    ...statistics(row, row.unit ?? 'bytes', values),
    rmePercent: mean === 0 ? 0 : (100 * deviation) / mean,
    samples: values.length,
    operations: values.length,
    ratios: [],
  }
}

/** Warms `row` up, measures it, and returns its statistics (ratios are filled in by the caller). */
export async function measure(row: Row, mode: Mode): Promise<RowResult> {
  if (row.sample) return measureSamples(row, row.sample, mode)
  if (row.samples) return fromSamples(row, await row.samples())
  await warmUp(row, mode)
  const failures: unknown[] = []
  const benchmark = benchmarkOf(row, mode, failures)
  await new Promise<void>((resolve) => {
    benchmark.on('complete', () => resolve())
    // Cycles are separated by a turn of the event loop, as in a real program: finalizers of
    // native objects (compiled code, instances) run there, so memory stays bounded.
    benchmark.run({ async: true })
  })
  if (benchmark.error) throw benchmark.error
  if (failures.length > 0) throw failures[0]
  const sample = benchmark.stats.sample.map((seconds) => seconds * 1e9).sort((a, b) => a - b)
  return {
    ...statistics(row, 'ns', sample),
    rmePercent: benchmark.stats.rme,
    samples: sample.length,
    operations: benchmark.count * sample.length,
    ratios: [],
  }
}

/** Measures every row of a prepared scenario in order, then computes each row's ratios. */
export async function measureAll(prepared: Prepared, mode: Mode): Promise<RowResult[]> {
  const results: RowResult[] = []
  for (const row of prepared.rows) results.push(await measure(row, mode))
  for (const [index, row] of prepared.rows.entries()) {
    const result = results[index]!
    for (const baseline of row.baselines ?? []) {
      const other = results.find((candidate) => candidate.id === baseline)
      if (!other) throw new Error(`row ${row.id}: unknown baseline ${baseline}`)
      if (other.unit !== result.unit)
        throw new Error(`row ${row.id}: baseline ${baseline} is in another unit`)
      if (!(other.median > 0)) throw new Error(`row ${row.id}: baseline ${baseline} has no positive median`)
      result.ratios.push({ baseline, ratio: result.median / other.median })
    }
  }
  return results
}

/** Throws unless `actual` equals `expected` (benchmarks check their results before timing). */
export function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (!Object.is(actual, expected)) {
    throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`)
  }
}

export const KiB = 1024
export const MiB = 1024 * 1024
