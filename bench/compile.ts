/**
 * Compiling: a small core module (ours next to `new WebAssembly.Module` on the same bytes) and a small
 * component (hello.wasm, absolute). Cold compiles change a custom section before each compile so
 * that no compiled-code cache can answer; the "same bytes" rows show what a cache does.
 */
import { readFileSync } from 'node:fs'

import { Engine } from '../lib/index.js'
import { helloWasm } from '../fixtures/index.js'
import { expectEqual, type Scenario } from './harness.js'
import { coreModuleBytes, withNonce } from './wasm.js'

export const compile: Scenario = {
  name: 'compile',
  title: 'Compile',
  async setup() {
    const engine = new Engine()
    const winch = new Engine({ compiler: 'winch' })
    const core = withNonce(coreModuleBytes)
    const hello = withNonce(readFileSync(helloWasm))

    const exportsOf = (names: { name: string }[]) => names.map((item) => item.name).join(',')
    expectEqual(
      'our module exports',
      exportsOf(engine.compileModuleSync(core.bytes).exports),
      'memory,add,kernel',
    )
    expectEqual(
      'Node module exports',
      exportsOf(WebAssembly.Module.exports(new WebAssembly.Module(core.bytes))),
      'memory,add,kernel',
    )
    expectEqual('hello exports', exportsOf(engine.compileComponentSync(hello.bytes).exports), 'greet')
    expectEqual('Winch hello exports', exportsOf(winch.compileComponentSync(hello.bytes).exports), 'greet')

    return {
      rows: [
        {
          id: 'node-module-cold',
          title: 'Node: new WebAssembly.Module (core, cold)',
          note:
            `Baseline. V8 compiling the ${core.bytes.length}-byte benchmark module (bench/wasm.ts) with a ` +
            'fresh nonce each time. Node 20 compiles wasm lazily (--wasm-lazy-compilation is on by ' +
            'default): this is mostly decoding and validation; function bodies are compiled by Liftoff ' +
            'at their first call.',
          run: () => {
            core.next()
            new WebAssembly.Module(core.bytes)
          },
        },
        {
          id: 'module-cold',
          title: 'compileModuleSync (core, cold)',
          note:
            'The same bytes through wasmtime (Cranelift, opt-level speed, every function compiled ' +
            'ahead of time), fresh nonce each time. Ratio: to V8 on the same bytes.',
          baselines: ['node-module-cold'],
          run: () => {
            core.next()
            engine.compileModuleSync(core.bytes)
          },
        },
        {
          id: 'node-module-same',
          title: 'Node: new WebAssembly.Module (core, same bytes)',
          note: 'Baseline. V8 compiling bytes it has compiled before: its native-module cache answers.',
          run: () => {
            new WebAssembly.Module(core.bytes)
          },
        },
        {
          id: 'module-same',
          title: 'compileModuleSync (core, same bytes)',
          note: 'The same bytes again through wasmtime: shows whether an in-process compiled-code cache answers.',
          baselines: ['node-module-same'],
          run: () => {
            engine.compileModuleSync(core.bytes)
          },
        },
        {
          id: 'component-cold',
          title: 'compileComponentSync (hello.wasm, cold)',
          note:
            `examples/hello/hello.wasm (${hello.bytes.length} bytes, a Rust component exporting greet), ` +
            'fresh nonce each time. Absolute: Node has no component model.',
          run: () => {
            hello.next()
            engine.compileComponentSync(hello.bytes)
          },
        },
        {
          id: 'module-cold-winch',
          title: "new Engine({ compiler: 'winch' }): compileModuleSync (core, cold)",
          note:
            "The core module through wasmtime's baseline compiler. Most of a small compile is " +
            "wasmtime's fixed cost (Cranelift compiling the trampolines, hand-offs between compile threads, " +
            'the code object): the same compile straight on wasmtime, without the addon ' +
            '(crate/examples/compile_cost.rs), takes as long. Ratio: to V8 and to Cranelift.',
          baselines: ['node-module-cold', 'module-cold'],
          run: () => {
            core.next()
            winch.compileModuleSync(core.bytes)
          },
        },
        {
          id: 'component-cold-winch',
          title: "new Engine({ compiler: 'winch' }): compileComponentSync (hello.wasm, cold)",
          note: 'hello.wasm through Winch (its adapter trampolines are still Cranelift code). Ratio: to Cranelift.',
          baselines: ['component-cold'],
          run: () => {
            hello.next()
            winch.compileComponentSync(hello.bytes)
          },
        },
      ],
      teardown: () => {
        engine.close()
        winch.close()
      },
    }
  },
}
