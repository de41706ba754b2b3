/**
 * The soak's guests that are not built fixtures: a core module in WAT, shared by the main thread
 * and the worker threads, with the expected results of its exports.
 */

export const PAGE = 64 * 1024

/**
 * Exports a plain call (`add`), a call through a host import (`viaHost`), a loop over linear
 * memory (`checksum`), three traps (`trap`, `oob`, `spin` without a deadline) and a guest that
 * tells the host it runs before it loops (`announceAndSpin`, so a worker is terminated while wasm
 * executes, not before).
 */
export const CORE_WAT = `(module
  (import "env" "host" (func $host (param i32) (result i32)))
  (memory (export "memory") 1 4)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "viaHost") (param i32) (result i32) local.get 0 call $host i32.const 1 i32.add)
  (func (export "checksum") (param $n i32) (result i32) (local $i i32) (local $sum i32)
    (block $done
      (loop $next
        local.get $i local.get $n i32.ge_u br_if $done
        local.get $i local.get $i i32.store8
        local.get $sum local.get $i i32.load8_u i32.add local.set $sum
        local.get $i i32.const 1 i32.add local.set $i
        br $next))
    local.get $sum)
  (func (export "trap") unreachable)
  (func (export "oob") (result i32) i32.const -1 i32.load)
  (func (export "spin") (loop br 0))
  (func (export "announceAndSpin") i32.const 0 call $host drop (loop br 0)))`

/** What `checksum(n)` returns: the sum of the low bytes of 0..n-1. */
export function checksum(n: number): number {
  let sum = 0
  for (let i = 0; i < n; i++) sum += i & 0xff
  return sum
}
