/**
 * The core wasm the benchmarks run, assembled byte by byte so that Node's `WebAssembly` (which takes
 * only binary wasm) and airssys-wasm compile the very same `Uint8Array`.
 *
 * The module, in WAT:
 *
 *   (module
 *     (memory (export "memory") 1)
 *     (func (export "add") (param i32 i32) (result i32)
 *       local.get 0  local.get 1  i32.add)
 *     ;; x = x * 6364136223846793005 + 1442695040888963407, n times (n >= 1), starting from x = 1
 *     (func (export "kernel") (param $n i64) (result i64) (local $i i64) (local $x i64)
 *       (local.set $x (i64.const 1))
 *       (loop $next
 *         (local.set $x (i64.add (i64.mul (local.get $x) (i64.const 6364136223846793005))
 *                                (i64.const 1442695040888963407)))
 *         (br_if $next (i64.lt_u (local.tee $i (i64.add (local.get $i) (i64.const 1))) (local.get $n))))
 *       (local.get $x)))
 *
 * The loop is a 64-bit linear congruential generator (Knuth's MMIX constants): one multiply and
 * two adds per iteration on a dependency chain, which no compiler can fold away.
 */

/** Value types. */
const i32 = 0x7f
const i64 = 0x7e

/** Opcodes used below (WebAssembly core spec, §5.4). */
const op = {
  loop: 0x03,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i64Const: 0x42,
  i64LtU: 0x54,
  i32Add: 0x6a,
  i64Add: 0x7c,
  i64Mul: 0x7e,
  emptyBlockType: 0x40,
}

/** Section ids (§5.5.2). */
const section = { custom: 0, type: 1, function: 3, memory: 5, export: 7, code: 10 }

/** Export kinds (§5.5.10). */
const exportKind = { func: 0x00, memory: 0x02 }

/** Unsigned LEB128, the encoding of every count, index and size. */
function unsigned(value: number): number[] {
  const bytes: number[] = []
  do {
    let byte = value & 0x7f
    value >>>= 7
    if (value !== 0) byte |= 0x80
    bytes.push(byte)
  } while (value !== 0)
  return bytes
}

/** Signed LEB128 of a 64-bit integer, the immediate of `i64.const`. */
function signed64(value: bigint): number[] {
  let rest = BigInt.asIntN(64, value)
  const bytes: number[] = []
  for (;;) {
    const byte = Number(rest & 0x7fn)
    rest >>= 7n
    const signBitSet = (byte & 0x40) !== 0
    if ((rest === 0n && !signBitSet) || (rest === -1n && signBitSet)) {
      bytes.push(byte)
      return bytes
    }
    bytes.push(byte | 0x80)
  }
}

function name(text: string): number[] {
  const utf8 = [...new TextEncoder().encode(text)]
  return [...unsigned(utf8.length), ...utf8]
}

/** A vector: its length, then its items. */
function vector(items: number[][]): number[] {
  return [...unsigned(items.length), ...items.flat()]
}

function sectionBytes(id: number, content: number[]): number[] {
  return [id, ...unsigned(content.length), ...content]
}

/** A function body: local declarations (runs of one type), the instructions, `end`. */
function body(locals: [count: number, type: number][], instructions: number[]): number[] {
  const content = [
    ...vector(locals.map(([count, type]) => [...unsigned(count), type])),
    ...instructions,
    op.end,
  ]
  return [...unsigned(content.length), ...content]
}

/** The LCG constants, exported so checks can compute the expected result in JS. */
export const lcg = { multiplier: 6364136223846793005n, increment: 1442695040888963407n, seed: 1n }

/** What `kernel(n)` returns, computed with BigInt (slow: only for small `n`). */
export function kernelReference(n: number): bigint {
  let x = lcg.seed
  for (let i = 0; i < Math.max(n, 1); i++) x = BigInt.asIntN(64, x * lcg.multiplier + lcg.increment)
  return x
}

function assemble(): Uint8Array<ArrayBuffer> {
  // Function types: 0 = (i32, i32) -> i32 for add, 1 = (i64) -> i64 for kernel.
  const types = vector([
    [0x60, ...vector([[i32], [i32]]), ...vector([[i32]])],
    [0x60, ...vector([[i64]]), ...vector([[i64]])],
  ])
  // Function 0 has type 0, function 1 has type 1.
  const functions = vector([[0], [1]])
  // One memory: limits flag 0x00 (no maximum), minimum 1 page (64 KiB).
  const memories = vector([[0x00, ...unsigned(1)]])
  const exports = vector([
    [...name('memory'), exportKind.memory, ...unsigned(0)],
    [...name('add'), exportKind.func, ...unsigned(0)],
    [...name('kernel'), exportKind.func, ...unsigned(1)],
  ])
  const add = body([], [op.localGet, 0, op.localGet, 1, op.i32Add])
  // Locals: 0 = $n (the parameter), 1 = $i, 2 = $x.
  const kernel = body(
    [[2, i64]],
    [
      ...[op.i64Const, ...signed64(lcg.seed), op.localSet, 2],
      ...[op.loop, op.emptyBlockType],
      ...[op.localGet, 2, op.i64Const, ...signed64(lcg.multiplier), op.i64Mul],
      ...[op.i64Const, ...signed64(lcg.increment), op.i64Add, op.localSet, 2],
      ...[op.localGet, 1, op.i64Const, ...signed64(1n), op.i64Add, op.localTee, 1],
      ...[op.localGet, 0, op.i64LtU, op.brIf, 0],
      op.end,
      ...[op.localGet, 2],
    ],
  )
  const code = vector([add, kernel])
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d], // magic "\0asm"
    ...[0x01, 0x00, 0x00, 0x00], // version 1
    ...sectionBytes(section.type, types),
    ...sectionBytes(section.function, functions),
    ...sectionBytes(section.memory, memories),
    ...sectionBytes(section.export, exports),
    ...sectionBytes(section.code, code),
  ])
}

/** The benchmark module's bytes (see the WAT above). */
export const coreModuleBytes: Uint8Array<ArrayBuffer> = assemble()

const NONCE_BYTES = 8

/**
 * `bytes` (a core module or a component) with a custom section named `bench-nonce` appended, plus a
 * function that writes a new 64-bit value into it. Compilers cache by the wasm bytes (V8 keeps a
 * native-module cache keyed by them), so a cold-compile benchmark changes the nonce before each
 * compile; a custom section changes the bytes without changing the code.
 */
export function withNonce(bytes: Uint8Array): { bytes: Uint8Array<ArrayBuffer>; next: () => void } {
  const custom = sectionBytes(section.custom, [
    ...name('bench-nonce'),
    ...new Array<number>(NONCE_BYTES).fill(0),
  ])
  const result = new Uint8Array(bytes.length + custom.length)
  result.set(bytes)
  result.set(custom, bytes.length)
  const view = new DataView(result.buffer, result.length - NONCE_BYTES, NONCE_BYTES)
  let counter = 0n
  return {
    bytes: result,
    next: () => view.setBigUint64(0, ++counter, true),
  }
}
