/**
 * The AbortSignal a host function should honour: a fixed signal, or a function asked on every host
 * call (the sandbox's per-call signal, aborted when the guest's call ends), plus an optional
 * timeout of the host function's own.
 */

/** A signal, or a function returning the signal of the call in progress (or undefined). */
export type SignalSource = AbortSignal | (() => AbortSignal | undefined)

/** The signal `source` stands for right now. */
export function currentSignal(source: SignalSource | undefined): AbortSignal | undefined {
  return typeof source === 'function' ? source() : source
}

/**
 * `source`'s current signal, combined with a timeout of `timeoutMs` when given. Node's timeout
 * signals never keep the process alive.
 */
export function signalWithTimeout(
  source: SignalSource | undefined,
  timeoutMs: number | undefined,
): AbortSignal | undefined {
  const signal = currentSignal(source)
  if (timeoutMs === undefined) return signal
  const timeout = AbortSignal.timeout(timeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}
