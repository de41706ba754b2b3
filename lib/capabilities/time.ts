/**
 * `airssys:host/time.sleep(ms)`: a real, asynchronous wait (the guest's pool thread waits; the JS
 * thread does not). The call's deadline and AbortSignal are enforced natively while it is pending,
 * and the `signal` option clears the timer once the call is over. The timer never keeps the
 * process alive.
 *
 * `sleep` returns nothing, so a denial cannot be an `err`: when sleeping is not granted it returns
 * at once (nothing is done) and the host sees the CapabilityDeniedError as for any denial.
 */
import { setTimeout as delay } from 'node:timers/promises'

import { capabilityOptions, knownKeys, signalSource } from '../util/options.js'
import { currentSignal, type SignalSource } from '../util/signal.js'
import type { Permissions } from './permissions.js'

/** Options of {@link createTime}. */
export interface TimeOptions {
  /**
   * Ends pending sleeps when it aborts: an AbortSignal, or a function returning the signal of the
   * call in progress (the sandbox's, aborted when the guest's call ends).
   */
  signal?: SignalSource | undefined
}

/** The functions of `airssys:host/time@0.1.0`. */
export interface TimeInterface {
  /** Resolves after `ms` milliseconds; rejects when the signal aborts first. */
  sleep(ms: number): Promise<void>
}

/** Node's timers fire at once (with a warning) beyond this; a deadline ends any longer sleep anyway. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The keys of {@link TimeOptions}. */
export const TIME_OPTIONS: ReadonlySet<string> = new Set(['signal'])

/** `airssys:host/time@0.1.0` checked against `permissions`. */
export function createTime(permissions: Permissions, options: TimeOptions = {}): TimeInterface {
  const own = capabilityOptions(options)
  knownKeys('createTime', own, TIME_OPTIONS)
  const source = signalSource('signal', own.signal)
  return {
    async sleep(ms: number): Promise<void> {
      if (!permissions.timeSleep) {
        permissions.deny('time.sleep', `${ms} ms`, `sleeping is not granted (asked for ${ms} ms)`)
        return
      }
      if (ms === 0) return
      await delay(Math.min(ms, MAX_TIMER_MS), undefined, { signal: currentSignal(source), ref: false })
    },
  }
}
