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
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  localGet: 0x20,
  localSet: 0x21,
  localTee: 0x22,
  i64Const: 0x42,
  i64Eqz: 0x50,
  i64LtU: 0x54,
  i32Add: 0x6a,
  i64Add: 0x7c,
  i64Sub: 0x7d,
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

/**
 * `fib(n)` by iteration, the loop where a per-iteration check weighs most (one i64 add per step):
 *
 *   (func (export "fib") (param $n i64) (result i64) (local $a i64) (local $b i64) (local $t i64)
 *     (local.set $b (i64.const 1))
 *     (block $done (loop $next
 *       (br_if $done (i64.eqz (local.get $n)))
 *       (local.set $t (i64.add (local.get $a) (local.get $b)))
 *       (local.set $a (local.get $b)) (local.set $b (local.get $t))
 *       (local.set $n (i64.sub (local.get $n) (i64.const 1)))
 *       (br $next)))
 *     (local.get $a))
 */
function assembleFib(): Uint8Array<ArrayBuffer> {
  const fib = body(
    [[3, i64]],
    [
      ...[op.i64Const, ...signed64(1n), op.localSet, 2],
      ...[op.block, op.emptyBlockType, op.loop, op.emptyBlockType],
      ...[op.localGet, 0, op.i64Eqz, op.brIf, 1],
      ...[op.localGet, 1, op.localGet, 2, op.i64Add, op.localSet, 3],
      ...[op.localGet, 2, op.localSet, 1, op.localGet, 3, op.localSet, 2],
      ...[op.localGet, 0, op.i64Const, ...signed64(1n), op.i64Sub, op.localSet, 0],
      ...[op.br, 0, op.end, op.end],
      ...[op.localGet, 1],
    ],
  )
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...sectionBytes(section.type, vector([[0x60, ...vector([[i64]]), ...vector([[i64]])]])),
    ...sectionBytes(section.function, vector([[0]])),
    ...sectionBytes(section.export, vector([[...name('fib'), exportKind.func, ...unsigned(0)]])),
    ...sectionBytes(section.code, vector([fib])),
  ])
}

/** The `fib` module's bytes (see the WAT above). */
export const fibModuleBytes: Uint8Array<ArrayBuffer> = assembleFib()

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

/** More opcodes for the large module's function bodies. */
const large = {
  call: 0x10,
  drop: 0x1a,
  i32Load: 0x28,
  i32Store: 0x36,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32Sub: 0x6b,
  i32Mul: 0x6c,
  i32And: 0x71,
  i32Xor: 0x73,
  i32Shl: 0x74,
  i32ShrU: 0x76,
  i32Rotl: 0x77,
  if: 0x04,
  else: 0x05,
}

/**
 * One function of the large module, `(param i32 i32) (result i32)`, body about `bodyBytes` long:
 * rounds of arithmetic, masked loads and stores to memory, a branch and a call to the previous
 * function, so that a compiler meets the usual mix rather than one repeated pattern. `seed` varies
 * the constants from function to function.
 */
function largeBody(index: number, bodyBytes: number): number[] {
  const code: number[] = []
  let seed = index * 2654435761
  const constant = () => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return [large.i32Const, ...signed64(BigInt(seed & 0xffff))]
  }
  while (code.length < bodyBytes) {
    // $a = rotl($a * k1 ^ $b, 5) + k2
    code.push(op.localGet, 0, ...constant(), large.i32Mul, op.localGet, 1, large.i32Xor)
    code.push(large.i32Const, 5, large.i32Rotl, ...constant(), op.i32Add, op.localSet, 0)
    // $b = $b - load(($a & 0xfffc))
    code.push(op.localGet, 1, op.localGet, 0, large.i32Const, ...signed64(0xfffcn), large.i32And)
    code.push(large.i32Load, 2, 0, large.i32Sub, op.localSet, 1)
    // store(($b & 0xfffc), $a >> 3)
    code.push(op.localGet, 1, large.i32Const, ...signed64(0xfffcn), large.i32And)
    code.push(op.localGet, 0, large.i32Const, 3, large.i32ShrU, large.i32Store, 2, 0)
    // if ($a & 1) == 0 then $b = $b << 1 else $a = $a ^ k3
    code.push(op.localGet, 0, large.i32Const, 1, large.i32And, large.i32Eqz, large.if, op.emptyBlockType)
    code.push(op.localGet, 1, large.i32Const, 1, large.i32Shl, op.localSet, 1, large.else)
    code.push(op.localGet, 0, ...constant(), large.i32Xor, op.localSet, 0, op.end)
  }
  if (index > 0) code.push(op.localGet, 0, op.localGet, 1, large.call, ...unsigned(index - 1), large.drop)
  code.push(op.localGet, 0, op.localGet, 1, op.i32Add)
  return body([], code)
}

/**
 * A core module of about `totalBytes` (1 MiB in the benchmarks): one memory and functions of ~500
 * bytes each, the last one exported as `run`. Built here rather than checked in, so that its size
 * and shape are in the source.
 */
export function largeModuleBytes(totalBytes: number): Uint8Array<ArrayBuffer> {
  const BODY_BYTES = 500
  const count = Math.max(1, Math.round(totalBytes / (BODY_BYTES + 30)))
  const types = vector([[0x60, ...vector([[i32], [i32]]), ...vector([[i32]])]])
  const functions = vector(new Array<number[]>(count).fill([0]))
  const memories = vector([[0x00, ...unsigned(1)]])
  const exports = vector([[...name('run'), exportKind.func, ...unsigned(count - 1)]])
  const bodies: number[] = [...unsigned(count)]
  for (let index = 0; index < count; index++) {
    for (const byte of largeBody(index, BODY_BYTES)) bodies.push(byte)
  }
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...sectionBytes(section.type, types),
    ...sectionBytes(section.function, functions),
    ...sectionBytes(section.memory, memories),
    ...sectionBytes(section.export, exports),
  ]
  const code = sectionBytes(section.code, bodies)
  const result = new Uint8Array(bytes.length + code.length)
  result.set(bytes)
  result.set(code, bytes.length)
  return result
}
