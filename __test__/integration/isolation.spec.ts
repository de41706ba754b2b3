import test from 'ava'

import { typesComponent, typesImports, MiB } from '../helpers.js'

test('many instances of one compiled component are isolated from each other', async (t) => {
  const component = typesComponent()
  const instances = await Promise.all(
    Array.from({ length: 20 }, () =>
      component.instantiate({ limits: { memoryBytes: 4 * MiB }, imports: typesImports() }),
    ),
  )
  instances.forEach((instance, index) => instance.callSync('set-counter', [index * 10]))
  t.deepEqual(
    instances.map((instance) => instance.callSync('get-counter')),
    instances.map((_, index) => index * 10),
  )
  const grown = instances[3]!
  t.not(grown.callSync('grow-memory', [1]), -1)
  t.is(grown.callSync('memory-pages'), (instances[4]!.callSync('memory-pages') as number) + 1)
})

test('async calls on different instances run concurrently and each gets its own answer', async (t) => {
  const component = typesComponent()
  const instances = Array.from({ length: 8 }, () =>
    component.instantiateSync({ limits: { memoryBytes: 4 * MiB }, imports: typesImports() }),
  )
  const results = await Promise.all(
    instances.map((instance, index) => instance.call('roundtrip-string', [`#${index}`])),
  )
  t.deepEqual(
    results,
    instances.map((_, index) => `#${index}`),
  )
})
