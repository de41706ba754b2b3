/**
 * `npm run demo`: the three examples, each loaded from its Component.toml with `loadComponent`,
 * and what their limits make of them.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Engine, loadComponent, TimeoutError } from '../lib/index.js'

const examples = path.dirname(fileURLToPath(import.meta.url))
// One engine for all three: loadComponent needs fuel metering for the manifests' max_fuel.
const engine = new Engine({ fuel: true })

const hello = await loadComponent(path.join(examples, 'hello'), { engine })
console.log(`hello       greet("world") returned ${JSON.stringify(await hello.call('greet', ['world']))}`)

const runaway = await loadComponent(path.join(examples, 'runaway'), { engine })
try {
  await runaway.call('run')
  throw new Error('runaway returned, which it never should')
} catch (error) {
  if (!(error instanceof TimeoutError)) throw error
  console.log(
    `runaway     run() was stopped by its ${error.timeoutMs} ms timeout after ${Math.round(error.elapsedMs)} ms ` +
      `(${error.code}); the sandbox replaced the instance (restarts: ${runaway.metrics().restarts})`,
  )
}

const hog = await loadComponent(path.join(examples, 'memory-hog'), { engine })
const wanted = 64
const granted = await hog.call('hog', [wanted])
const { memory } = hog.metrics()
console.log(
  `memory-hog  hog(${wanted}) got ${String(granted)} of ${wanted} pages: growth was denied ${memory.deniedGrowths} ` +
    `time(s) at ${memory.peakBytes} of ${memory.limitBytes} bytes, and the guest kept running`,
)

for (const sandbox of [hello, runaway, hog]) sandbox.dispose()
engine.close()
