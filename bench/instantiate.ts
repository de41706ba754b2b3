/**
 * Instantiating compiled code: the core module with one memory page (ours next to
 * `new WebAssembly.Instance`), and the hello component (absolute). Each of our instances is disposed
 * right away, so the row pays for creating and freeing the store; V8's instances are freed by its GC.
 */
import path from 'node:path'

import { Engine } from '../lib/index.js'
import { builtDir, helloWasm } from '../fixtures/index.js'
import { expectEqual, KiB, MiB, type Scenario } from './harness.js'
import { coreModuleBytes } from './wasm.js'

const fixtures = builtDir
const POOL = { maxInstances: 64, maxMemoryBytes: 4 * MiB }

export const instantiate: Scenario = {
  name: 'instantiate',
  title: 'Instantiate',
  async setup() {
    const engine = new Engine()
    const pooled = new Engine({ pooling: POOL })
    const nodeModule = new WebAssembly.Module(coreModuleBytes)
    const module = engine.compileModuleSync(coreModuleBytes)
    const pooledModule = pooled.compileModuleSync(coreModuleBytes)
    const hello = engine.compileComponentSync(helloWasm)
    const pooledHello = pooled.compileComponentSync(helloWasm)
    const wasiComponent = engine.compileComponentSync(path.join(fixtures, 'wasi-cli.component.wasm'))
    const wasiModule = engine.compileModuleSync(path.join(fixtures, 'wasi-cli.module.wasm'))
    const wasiOptions = {
      limits: { memoryBytes: 16 * MiB },
      wasi: { args: ['wasi-cli', 'echo', 'hi'], stdout: 'pipe' as const, stderr: 'pipe' as const },
    }
    for (const [what, instance] of [
      ['WASI component', wasiComponent.instantiateSync(wasiOptions)],
      ['WASI module', wasiModule.instantiateSync(wasiOptions)],
    ] as const) {
      instance.callSync(what === 'WASI module' ? '_start' : 'wasi:cli/run#run')
      expectEqual(`${what}: stdout`, instance.takeOutput().stdout.split('\n')[0], 'args: hi')
      instance.dispose()
    }
    const coreLimits = { limits: { memoryBytes: 64 * KiB } }
    const helloLimits = { limits: { memoryBytes: 2 * MiB } }

    const nodeExports = new WebAssembly.Instance(nodeModule).exports as {
      add: (a: number, b: number) => number
    }
    expectEqual('Node add(2, 3)', nodeExports.add(2, 3), 5)
    for (const [what, compiled] of [
      ['module', module],
      ['pooled module', pooledModule],
    ] as const) {
      const instance = compiled.instantiateSync(coreLimits)
      expectEqual(`${what}: add(2, 3)`, instance.callSync('add', [2, 3]), 5)
      expectEqual(`${what}: memory`, instance.metrics().memory.currentBytes, 64 * KiB)
      instance.dispose()
    }
    for (const [what, component] of [
      ['hello', hello],
      ['pooled hello', pooledHello],
    ] as const) {
      const instance = component.instantiateSync(helloLimits)
      expectEqual(`${what}: greet("world")`, instance.callSync('greet', ['world']), 'Hello, world!')
      instance.dispose()
    }

    return {
      rows: [
        {
          id: 'node-instance',
          title: 'Node: new WebAssembly.Instance (core, 1 page)',
          note: 'Baseline. V8 instantiating the benchmark module (one 64 KiB memory, no imports).',
          run: () => {
            new WebAssembly.Instance(nodeModule)
          },
        },
        {
          id: 'module-instantiate',
          title: 'instantiateSync + dispose (core, 1 page)',
          note:
            'Our instance of the same module in its own store with a 64 KiB memory limit, then ' +
            'dispose(). Default (on-demand) allocator. Ratio: to V8.',
          baselines: ['node-instance'],
          run: () => module.instantiateSync(coreLimits).dispose(),
        },
        {
          id: 'module-instantiate-pooled',
          title: 'instantiateSync + dispose (core, 1 page, pooling)',
          note: `The same on an engine with the pooling allocator (${POOL.maxInstances} slots of ${POOL.maxMemoryBytes / MiB} MiB). Ratio: to V8.`,
          baselines: ['node-instance'],
          run: () => pooledModule.instantiateSync(coreLimits).dispose(),
        },
        {
          id: 'component-instantiate',
          title: 'instantiateSync + dispose (hello component)',
          note: 'hello.wasm with a 2 MiB memory limit, then dispose(). Absolute: Node has no component model.',
          run: () => hello.instantiateSync(helloLimits).dispose(),
        },
        {
          id: 'component-instantiate-pooled',
          title: 'instantiateSync + dispose (hello component, pooling)',
          note: 'The same on the pooling engine. Absolute.',
          run: () => pooledHello.instantiateSync(helloLimits).dispose(),
        },
        {
          id: 'wasi-component-instantiate',
          title: 'instantiateSync + dispose (WASI command component)',
          note:
            'The Rust WASI command of the test fixtures (wasm32-wasip2) with WASI linked (piped output, ' +
            'no preopens) and a 16 MiB limit. WASI preview 2 registers hundreds of host functions: the ' +
            'linked InstancePre is built at the first instantiation and reused. Absolute.',
          run: () => wasiComponent.instantiateSync(wasiOptions).dispose(),
        },
        {
          id: 'wasi-module-instantiate',
          title: 'instantiateSync + dispose (WASI command module)',
          note: 'The same command built for wasm32-wasip1, linked with WASI preview 1. Absolute.',
          run: () => wasiModule.instantiateSync(wasiOptions).dispose(),
        },
      ],
      teardown: () => {
        engine.close()
        pooled.close()
      },
    }
  },
}
