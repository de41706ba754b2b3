/**
 * A synchronous call into wasm: `callSync('add', [2, 3])` and the bound `function('add')` next to Node
 * calling the same export from JS.
 */
import { Engine } from '../lib/index.js'
import { expectEqual, KiB, type Scenario } from './harness.js'
import { coreModuleBytes } from './wasm.js'

const WASI_ADD = `(module
  (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))`

export const call: Scenario = {
  name: 'call',
  title: 'Synchronous call (core add)',
  async setup() {
    const engine = new Engine()
    const instance = engine
      .compileModuleSync(coreModuleBytes)
      .instantiateSync({ limits: { memoryBytes: 64 * KiB } })
    const node = new WebAssembly.Instance(new WebAssembly.Module(coreModuleBytes)).exports as {
      add: (a: number, b: number) => number
    }
    const add = instance.function('add')
    // The same add in a module that imports WASI: with WASI linked every call runs as a future on a
    // pool thread, so that waits in WASI end at the deadline (callSync waits for it).
    const wasi = engine
      .compileModuleSync(WASI_ADD)
      .instantiateSync({ limits: { memoryBytes: 64 * KiB }, wasi: { stdout: 'ignore', stderr: 'ignore' } })
    expectEqual('WASI module callSync add(2, 3)', wasi.callSync('add', [2, 3]), 5)
    expectEqual('callSync add(2, 3)', instance.callSync('add', [2, 3]), 5)
    expectEqual("function('add')(2, 3)", add(2, 3), 5)
    expectEqual('Node add(2, 3)', node.add(2, 3), 5)

    return {
      rows: [
        {
          id: 'node-add',
          title: 'Node: exports.add(2, 3)',
          note: 'Baseline. A JS -> wasm call of add(i32, i32) on V8, the same bytes.',
          run: () => {
            node.add(2, 3)
          },
        },
        {
          id: 'callsync-add',
          title: "callSync('add', [2, 3])",
          note:
            'The same export through airssys-wasm on the JS thread: argument array, name lookup, ' +
            'N-API crossing, store lock, per-call budget setup, wasmtime call, result conversion. Ratio: to V8.',
          baselines: ['node-add'],
          run: () => {
            instance.callSync('add', [2, 3])
          },
        },
        {
          id: 'function-add',
          title: "const add = function('add'); add(2, 3)",
          note:
            'The export bound once with instance.function(name) and called like a JS function: no ' +
            'argument array and no name lookup per call. Ratio: to V8.',
          baselines: ['node-add'],
          run: () => {
            add(2, 3)
          },
        },
        {
          id: 'callsync-add-wasi',
          title: "callSync('add', [2, 3]) with WASI linked",
          note:
            'The same add in a module that imports a WASI function (not called): the call runs as a ' +
            'wasmtime future on a pool thread while the JS thread waits, the price of WASI waits that ' +
            'end at the deadline. Ratio: to the same call without WASI.',
          baselines: ['callsync-add'],
          run: () => {
            wasi.callSync('add', [2, 3])
          },
        },
        {
          id: 'call-add-wasi',
          title: "await call('add', [2, 3]) with WASI linked",
          note: 'The same through the async call (pool thread, future). Absolute.',
          runAsync: async () => {
            await wasi.call('add', [2, 3])
          },
        },
      ],
      teardown: () => {
        wasi.dispose()
        instance.dispose()
        engine.close()
      },
    }
  },
}
