/** Checks of option values shared by the host interfaces; each error names its option. */
import { ConfigError } from '../errors.js'
import type { SignalSource } from './signal.js'

/** `value` when it is a positive safe integer, `fallback` when undefined, else a ConfigError. */
export function positiveInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(`${name}: expected a positive integer, got ${String(value)}`, { path: name, value })
  }
  return value
}

/** `value` when it is a non-negative safe integer, `fallback` when undefined, else a ConfigError. */
export function nonNegativeInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ConfigError(`${name}: expected a non-negative integer, got ${String(value)}`, {
      path: name,
      value,
    })
  }
  return value
}

/** `value` when it is an AbortSignal, a function returning one, or undefined; else a ConfigError. */
export function signalSource(name: string, value: unknown): SignalSource | undefined {
  if (value === undefined || value instanceof AbortSignal || typeof value === 'function') {
    return value as SignalSource | undefined
  }
  throw new ConfigError(`${name}: expected an AbortSignal or a function returning one`, { path: name, value })
}
