// For worker-threads.spec.ts: a guest that recurses without end, called with callSync from ever
// deeper in a worker's JS recursion. Node gives a worker a 4 MiB stack that JS may nearly fill,
// and wasmtime counts maxWasmStackBytes from where the call enters: without our check the guest
// ran past the thread's real stack and the whole process died of SIGSEGV. Prints one line of JSON:
// each depth's outcome, and what became of a guest resource passed as `own` to a call refused
// there for want of stack (the guest never had it, so it stays usable).
import { isMainThread, parentPort, Worker } from 'node:worker_threads'

if (isMainThread) {
  const worker = new Worker(new URL(import.meta.url))
  const [message] = await new Promise((resolve, reject) => {
    worker.once('message', (message) => resolve([message]))
    worker.once('error', reject)
  })
  console.log(JSON.stringify(message))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  const { Engine } = await import('../../lib/index.ts')
  const guest = new Engine()
    .compileModuleSync(
      `(module (func $r (export "r") (param i64) (result i64) (local i64 i64 i64 i64 i64 i64 i64 i64)
        local.get 0 i64.eqz if (result i64) i64.const 0
        else local.get 0 i64.const 1 i64.sub call $r i64.const 1 i64.add end))`,
    )
    .instantiateSync({ limits: { memoryBytes: 0 } })
  // One function both measures how deep this worker's JS can recurse (with no target) and goes
  // to a depth to call `action` there, so that its frames are the same size either way.
  let deepest = 0
  const descend = (depth, target, action) => {
    deepest = Math.max(deepest, depth)
    if (target === undefined || depth < target) return descend(depth + 1, target, action)
    try {
      return `returned ${action()}`
    } catch (error) {
      return error.code ?? String(error)
    }
  }
  try {
    descend(0, undefined)
  } catch {
    // The JS stack's end: its depth is what was wanted.
  }
  const outcomes = {}
  for (const fraction of [0, 0.5, 0.7, 0.8, 0.9]) {
    try {
      outcomes[fraction] = descend(0, Math.floor(deepest * fraction), () =>
        guest.callSync('r', [10_000_000n]),
      )
    } catch (error) {
      outcomes[fraction] = `JS: ${error.constructor.name}`
    }
  }
  // A guest resource and a function taking it as `own`, in a component without WASI, whose calls
  // stay on this thread (a WASI guest's run on a pool thread, whose stack is never short).
  const api = new Engine()
    .compileComponentSync(
      `(component
        (core module $d (func (export "dtor") (param i32)))
        (core instance $di (instantiate $d))
        (type $r (resource (rep i32) (dtor (core func $di "dtor"))))
        (core func $rnew (canon resource.new $r))
        (core func $rdrop (canon resource.drop $r))
        (core module $m
          (import "h" "rnew" (func $rnew (param i32) (result i32)))
          (import "h" "rdrop" (func $rdrop (param i32)))
          (func (export "ctor") (param i32) (result i32) (call $rnew (local.get 0)))
          (func (export "consume") (param i32) (result i32) (call $rdrop (local.get 0)) (i32.const 1)))
        (core instance $i (instantiate $m (with "h" (instance (export "rnew" (func $rnew)) (export "rdrop" (func $rdrop))))))
        (func $ctor (param "n" u32) (result (own $r)) (canon lift (core func $i "ctor")))
        (func $consume (param "t" (own $r)) (result u32) (canon lift (core func $i "consume")))
        (component $shim
          (import "thing" (type $t (sub resource)))
          (import "ctor" (func $c (param "n" u32) (result (own $t))))
          (import "consume" (func $k (param "t" (own $t)) (result u32)))
          (export $T "thing" (type $t))
          (export "[constructor]thing" (func $c) (func (param "n" u32) (result (own $T))))
          (export "consume" (func $k) (func (param "t" (own $T)) (result u32))))
        (instance $api (instantiate $shim (with "thing" (type $r)) (with "ctor" (func $ctor)) (with "consume" (func $consume))))
        (export "test:x/api" (instance $api)))`,
    )
    .instantiateSync({ limits: { memoryBytes: 0 } }).exports['test:x/api']
  const thing = new api.Thing(7)
  // As deep as JS lets a call be made (frames shrink as V8 optimises `descend`, so the depth
  // measured above is only a start): the stack left is then far below what a call needs.
  let refused
  for (let depth = deepest * 3; refused === undefined || refused.startsWith('RangeError'); depth *= 0.97) {
    try {
      refused = descend(0, Math.floor(depth), () => api.consume(thing))
    } catch (error) {
      refused = error.constructor.name
    }
  }
  let after
  try {
    after = `returned ${api.consume(thing)}`
  } catch (error) {
    after = error.code ?? String(error)
  }
  parentPort.postMessage({ outcomes, own: { refused, after } })
}
