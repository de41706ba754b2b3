/** Engine creation: `new Engine()` then `close()`. Node's WebAssembly has no engine object to compare. */
import { Engine } from '../lib/index.js'
import { expectEqual, type Scenario } from './harness.js'

export const engine: Scenario = {
  name: 'engine',
  title: 'Engine creation',
  async setup() {
    const probe = new Engine()
    probe.close()
    expectEqual('engine.closed after close()', probe.closed, true)
    return {
      rows: [
        {
          id: 'engine-create-close',
          title: 'new Engine() + close()',
          note:
            'Creating a wasmtime engine with the default options (Cranelift, epoch interruption on, ' +
            'no pooling) and closing it. The epoch ticker thread starts lazily, at the first call with a ' +
            'deadline, so it is not part of this. Absolute: Node has no equivalent.',
          run: () => new Engine().close(),
        },
      ],
    }
  },
}
