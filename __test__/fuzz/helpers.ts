import { spawnSync } from 'node:child_process'

import fc from 'fast-check'

import { root } from '../../fixtures/index.js'
import type { Target } from '../../fuzz/target.js'

/**
 * A fixed seed keeps the suite deterministic; FUZZ_SEED explores others, and `npm run fuzz`
 * runs the same properties for longer with random seeds.
 */
export const SEED = Number(process.env.FUZZ_SEED ?? 20_260_313)

/** Runs `target`'s property `numRuns` times; fast-check's error names the seed and the counterexample. */
export async function assertProperty<Input>(target: Target<Input>, numRuns: number): Promise<void> {
  try {
    await fc.assert(
      fc.asyncProperty(target.arbitrary, (input) => target.check(input)),
      { seed: SEED, numRuns },
    )
  } finally {
    target.close?.()
  }
}

/** Runs ES module `code` (which may import the repo's .ts files by absolute path) in a fresh Node. */
export function runScript(code: string, timeoutMs = 60_000) {
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: root,
    encoding: 'utf8',
    timeout: timeoutMs,
  })
}
