/**
 * The README demo: compile the hello component (built from ./src by `npm run build`), run it
 * under a memory limit and a deadline, and print what it returns.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Engine } from '../../lib/index.js'

const here = path.dirname(fileURLToPath(import.meta.url))

const engine = new Engine()
const component = await engine.compileComponent(path.join(here, 'hello.wasm'))
const instance = await component.instantiate({ limits: { memoryBytes: 2 << 20 }, timeoutMs: 1_000 })
const greeting = await instance.call('greet', ['world'])
console.log(greeting)
console.log(`exports: ${component.exports.map((e) => `${e.name}: ${e.type}`).join(', ')}`)
console.log(
  `memory: ${instance.metrics().memory.currentBytes} of ${instance.metrics().memory.limitBytes} bytes`,
)
instance.dispose()
engine.close()
