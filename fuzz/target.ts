/** What every fuzz target provides to the specs, the runner (`npm run fuzz`) and the corpus replay. */
import type fc from 'fast-check'

export interface Target<Input> {
  /** Also the folder of its saved inputs: fixtures/corpus/<name>/. */
  readonly name: string
  readonly arbitrary: fc.Arbitrary<Input>
  /** Throws (an assertion error) when the property does not hold for `input`. */
  check(input: Input): Promise<void>
  /** A corpus file for `input`, and its extension. */
  encode(input: Input): Uint8Array
  readonly extension: string
  /** Reads back a corpus file. */
  decode(bytes: Uint8Array): Input
  /** Releases what the target holds (instances, engines), if anything. */
  close?(): void
}

/** Throws a plain Error with `message` unless `condition` holds: properties need no test framework. */
export function expect(condition: unknown, message: () => string): asserts condition {
  if (!condition) throw new Error(message())
}
