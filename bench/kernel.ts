/** The compute kernel shared by the compute and limits-overhead scenarios. */
import { expectEqual } from './harness.js'
import { kernelReference } from './wasm.js'

/** Iterations of the LCG loop: about 30 ms on this machine. */
export const KERNEL_ITERATIONS = 30_000_000n

/** A fuel budget no kernel run can exhaust (a run uses 13 units per iteration, 390 million in all). */
export const AMPLE_FUEL = 10_000_000_000

/** A deadline no kernel run reaches: it only makes the epoch ticker run and the deadline checks fire. */
export const FAR_DEADLINE_MS = 60_000

/**
 * Checks one way of running the kernel: a small run against the BigInt reference, then the full
 * run against `expected` (the first way checked sets it). Returns the full run's result.
 */
export function checkKernel(
  what: string,
  kernel: (iterations: bigint) => unknown,
  expected?: bigint,
): bigint {
  expectEqual(`${what}: kernel(1000)`, kernel(1000n), kernelReference(1000))
  const result = kernel(KERNEL_ITERATIONS)
  if (typeof result !== 'bigint') throw new Error(`${what}: kernel returned ${typeof result}, not a bigint`)
  if (expected !== undefined) expectEqual(`${what}: kernel(${KERNEL_ITERATIONS})`, result, expected)
  return result
}
