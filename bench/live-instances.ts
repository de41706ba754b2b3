/**
 * Memory per live instance: RSS growth of a fresh process that creates 1,000 instances of the
 * 1-page benchmark module and keeps them alive, divided by 1,000; ours next to Node's
 * `new WebAssembly.Instance`. Each sample is a new process (this file, run as a script), so one
 * sample's garbage never lands in another's numbers.
 *
 *   node --import tsx --expose-gc bench/live-instances.ts node|airssys|pooled
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { Engine } from '../lib/index.js'
import { expectEqual, KiB, MiB, type Scenario } from './harness.js'
import { coreModuleBytes } from './wasm.js'

const LIVE = 1000
/** Instances made (and kept) before the first reading, so allocator and JIT warm-up is not counted. */
const WARM = 50

type Kind = 'node' | 'airssys' | 'pooled'

/** One instance factory per kind; each instance's `add` is called once, as a check. */
function factory(kind: Kind): () => unknown {
  if (kind === 'node') {
    const module = new WebAssembly.Module(coreModuleBytes)
    return () => {
      const instance = new WebAssembly.Instance(module)
      expectEqual('add(2, 3)', (instance.exports.add as (a: number, b: number) => number)(2, 3), 5)
      return instance
    }
  }
  const engine = new Engine(
    kind === 'pooled' ? { pooling: { maxInstances: LIVE + WARM, maxMemoryBytes: 1 * MiB } } : {},
  )
  const module = engine.compileModuleSync(coreModuleBytes)
  return () => {
    const instance = module.instantiateSync({ limits: { memoryBytes: 64 * KiB } })
    expectEqual('add(2, 3)', instance.callSync('add', [2, 3]), 5)
    return instance
  }
}

function settledRss(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  gc()
  gc()
  return process.memoryUsage.rss()
}

/** The child's work: RSS bytes per live instance. */
function bytesPerInstance(kind: Kind): number {
  const create = factory(kind)
  const kept: unknown[] = []
  for (let index = 0; index < WARM; index++) kept.push(create())
  const before = settledRss()
  for (let index = 0; index < LIVE; index++) kept.push(create())
  const after = settledRss()
  expectEqual('live instances', kept.length, LIVE + WARM)
  return (after - before) / LIVE
}

const self = fileURLToPath(import.meta.url)

function sampleIn(kind: Kind): () => Promise<number> {
  return async () => {
    const output = execFileSync(process.execPath, ['--import', 'tsx', '--expose-gc', self, kind], {
      encoding: 'utf8',
    })
    const value = Number(output.trim())
    if (!Number.isFinite(value)) throw new Error(`live-instances ${kind}: unexpected output ${output}`)
    return value
  }
}

export const liveInstances: Scenario = {
  name: 'live-instances',
  title: `Memory per live instance (${LIVE.toLocaleString('en')} instances of a 1-page module)`,
  async setup() {
    const common =
      `RSS growth of a fresh process while it creates ${LIVE.toLocaleString('en')} instances of the ` +
      `benchmark module (one 64 KiB memory, not written to) and keeps them alive, after ${WARM} ` +
      'warm-up instances and a full GC before each reading, divided by the count; one process per sample.'
    return {
      rows: [
        {
          id: 'node-instances',
          title: 'Node: new WebAssembly.Instance, kept alive',
          note:
            `Baseline. ${common} V8 keeps an instance's objects on its JS heap, which has committed ` +
            'room to spare after start-up: its RSS barely moves (between runs we saw -0.2 to +0.3 KiB ' +
            'per instance). Context only, not a ratio baseline: a ratio to ~0 says nothing.',
          unit: 'bytes',
          sample: sampleIn('node'),
        },
        {
          id: 'instances',
          title: 'module.instantiateSync, kept alive',
          note: `${common} Each instance is a wasmtime Store with its limiter, on-demand allocation. Target: ≤ 200 KiB.`,
          unit: 'bytes',
          sample: sampleIn('airssys'),
        },
        {
          id: 'pooled-instances',
          title: 'module.instantiateSync on a pooling engine, kept alive',
          note: `${common} The engine pools ${LIVE + WARM} slots of at most 1 MiB memory.`,
          unit: 'bytes',
          sample: sampleIn('pooled'),
        },
      ],
    }
  },
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const kind = process.argv[2] as Kind
  if (!['node', 'airssys', 'pooled'].includes(kind)) throw new Error(`unknown kind ${kind}`)
  console.log(bytesPerInstance(kind))
}
