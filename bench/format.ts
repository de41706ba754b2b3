/** Number formatting shared by the runner's console table and the BENCHMARKING.md report. */
import type { RowResult } from './harness.js'

import type { Unit } from './harness.js'

type Scale = [limit: number, divisor: number, unit: string][]

const SCALES: Record<Unit, Scale> = {
  ns: [
    [1e3, 1, 'ns'],
    [1e6, 1e3, 'µs'],
    [1e9, 1e6, 'ms'],
    [Infinity, 1e9, 's'],
  ],
  bytes: [
    [1024, 1, 'B'],
    [1024 ** 2, 1024, 'KiB'],
    [1024 ** 3, 1024 ** 2, 'MiB'],
    [Infinity, 1024 ** 3, 'GiB'],
  ],
}

function unitOf(value: number, unit: Unit): [divisor: number, unit: string] {
  const scale = SCALES[unit]
  const [, divisor, name] =
    scale.find(([limit]) => Math.abs(value) < limit * 0.9995) ?? scale[scale.length - 1]!
  return [divisor, name]
}

/** Three significant digits, never in exponent notation: `1.25`, `87.3`, `1030`. */
function significant(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3)
}

/** Three significant digits in the unit that suits the value: `1.25 ms`, `87.3 ns`, `61.2 KiB`. */
export function amount(value: number, unit: Unit): string {
  const [divisor, name] = unitOf(value, unit)
  return `${significant(value / divisor)} ${name}`
}

/** A row's median. */
export function median(row: RowResult): string {
  return amount(row.median, row.unit)
}

/** `p10–p90` in the unit of the median. */
export function spread(row: RowResult): string {
  const [divisor, name] = unitOf(row.median, row.unit)
  return `${significant(row.p10 / divisor)}–${significant(row.p90 / divisor)} ${name}`
}

/** The p99 in the unit of the median. */
export function p99(row: RowResult): string {
  const [divisor, name] = unitOf(row.median, row.unit)
  return `${significant(row.p99 / divisor)} ${name}`
}

export function rme(row: RowResult): string {
  return `±${row.rmePercent.toFixed(1)}%`
}

/** `1.23×` for one ratio. */
export function ratio(value: number): string {
  if (value < 0.1) return `${value.toPrecision(2)}×`
  return `${value < 10 ? value.toFixed(2) : value.toPrecision(3)}×`
}

/** Every ratio of a row, each naming its baseline row: `1.23× kernel-unmetered`. */
export function ratios(row: RowResult): string {
  return row.ratios.map(({ baseline, ratio: value }) => `${ratio(value)} ${baseline}`).join(', ')
}
