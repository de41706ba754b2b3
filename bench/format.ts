/** Number formatting shared by the runner's console table and the BENCHMARKING.md report. */
import type { RowResult } from './harness.js'

const UNITS: [limit: number, divisor: number, unit: string][] = [
  [1e3, 1, 'ns'],
  [1e6, 1e3, 'µs'],
  [1e9, 1e6, 'ms'],
  [Infinity, 1e9, 's'],
]

function unitOf(ns: number): [divisor: number, unit: string] {
  const [, divisor, unit] = UNITS.find(([limit]) => Math.abs(ns) < limit * 0.9995) ?? UNITS[UNITS.length - 1]!
  return [divisor, unit]
}

/** Three significant digits, never in exponent notation: `1.25`, `87.3`, `1030`. */
function significant(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3)
}

/** Three significant digits in the unit that suits the value: `1.25 ms`, `87.3 ns`. */
export function duration(ns: number): string {
  const [divisor, unit] = unitOf(ns)
  return `${significant(ns / divisor)} ${unit}`
}

/** `p10–p90` in the unit of the median. */
export function spread(row: RowResult): string {
  const [divisor, unit] = unitOf(row.medianNs)
  return `${significant(row.p10Ns / divisor)}–${significant(row.p90Ns / divisor)} ${unit}`
}

export function rme(row: RowResult): string {
  return `±${row.rmePercent.toFixed(1)}%`
}

/** `1.23×` for one ratio. */
export function ratio(value: number): string {
  return `${value < 10 ? value.toFixed(2) : value.toPrecision(3)}×`
}

/** Every ratio of a row, each naming its baseline row: `1.23× kernel-unmetered`. */
export function ratios(row: RowResult): string {
  return row.ratios.map(({ baseline, ratio: value }) => `${ratio(value)} ${baseline}`).join(', ')
}
