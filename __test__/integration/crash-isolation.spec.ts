import test from 'ava'

import {
  ArithmeticTrapError,
  Engine,
  InstancePoisonedError,
  MemoryOutOfBoundsError,
  StackOverflowError,
  TrapError,
  UnreachableError,
} from '../../lib/index.js'
import { MiB, typesComponent, typesImports } from '../helpers.js'

test.serial(
  '100 concurrent crashing calls beside healthy ones: every crash typed, every healthy call fine',
  async (t) => {
    const component = typesComponent()
    const crashes: Array<[string, unknown[], new (...args: never[]) => TrapError]> = [
      ['trap-unreachable', [], UnreachableError],
      ['trap-divide', [1, 0], ArithmeticTrapError],
      ['recurse', [100_000_000n], StackOverflowError],
    ]
    const instances = await Promise.all(
      Array.from({ length: 200 }, () =>
        component.instantiate({ limits: { memoryBytes: 4 * MiB }, imports: typesImports() }),
      ),
    )
    const outcomes = await Promise.allSettled(
      instances.map((instance, index) => {
        if (index % 2 === 1) return instance.call('roundtrip-string', [`healthy ${index}`])
        const [name, args] = crashes[(index / 2) % crashes.length]!
        return instance.call(name, args)
      }),
    )
    outcomes.forEach((outcome, index) => {
      if (index % 2 === 1) {
        t.deepEqual(outcome, { status: 'fulfilled', value: `healthy ${index}` })
      } else {
        const [, , Class] = crashes[(index / 2) % crashes.length]!
        t.is(outcome.status, 'rejected')
        t.true(
          outcome.status === 'rejected' && outcome.reason instanceof Class,
          String(outcome.status === 'rejected' && outcome.reason),
        )
      }
    })
    // The crashed instances are poisoned; the healthy ones still answer.
    await t.throwsAsync(instances[0]!.call('roundtrip-u8', [1]), { instanceOf: InstancePoisonedError })
    t.is(await instances[1]!.call('roundtrip-u8', [1]), 1)
  },
)

test.serial(
  'stack overflow in a component is a StackOverflowError on the JS thread and on the pool',
  async (t) => {
    const component = typesComponent()
    const options = { limits: { memoryBytes: 4 * MiB }, imports: typesImports() }
    t.is(component.instantiateSync(options).callSync('recurse', [1000n]), 1000n)
    t.throws(() => component.instantiateSync(options).callSync('recurse', [100_000_000n]), {
      instanceOf: StackOverflowError,
    })
    await t.throwsAsync(component.instantiateSync(options).call('recurse', [100_000_000n]), {
      instanceOf: StackOverflowError,
    })
  },
)

test.serial(
  '10,000 sequential traps (instantiate, trap, drop) leave the process up and memory bounded',
  async (t) => {
    const engine = new Engine()
    const module = engine.compileModuleSync(
      '(module (memory 1) (func (export "oob") (result i32) i32.const 70000 i32.load))',
    )
    const run = (count: number) => {
      for (let i = 0; i < count; i++) {
        const instance = module.instantiateSync({ limits: { memoryBytes: MiB } })
        try {
          instance.callSync('oob')
        } catch (error) {
          if (!(error instanceof MemoryOutOfBoundsError)) throw error
        }
        instance.dispose()
      }
    }
    run(1_000) // warm up allocators before measuring
    global.gc?.()
    const before = process.memoryUsage().rss
    run(10_000)
    global.gc?.()
    const growth = process.memoryUsage().rss - before
    t.log(`RSS growth over 10,000 traps: ${(growth / MiB).toFixed(1)} MiB`)
    t.true(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`)
  },
)
