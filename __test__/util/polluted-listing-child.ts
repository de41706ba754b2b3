// Child process for own.spec.ts: what the package does with its own listings (a component's or
// module's imports and exports, with their WIT types) when Object.prototype holds every field a
// listing may leave out. Run with `pollute` and without: the two printed results must be equal.
import { readFileSync } from 'node:fs'

import {
  resourcesWasm,
  root,
  typesEverything,
  typesImports,
  typesWasm,
  wasiModuleWasm,
} from '../../fixtures/index.js'
import { inspect } from '../../lib/cli/inspect.js'
import { declarations } from '../../lib/dts.js'
import { Engine, type ComponentItem, type Instance } from '../../lib/index.js'

const engine = new Engine()
const types = engine.compileComponentSync(readFileSync(typesWasm))
const resources = engine.compileComponentSync(readFileSync(resourcesWasm))
const module = engine.compileModuleSync(readFileSync(wasiModuleWasm))

if (process.argv[2] === 'pollute') {
  const listingType = { kind: 'u8' }
  Object.assign(Object.prototype, {
    module: 'env',
    func: { params: [{ name: 'x', type: listingType }], result: listingType },
    exports: 'POLLUTED-EXPORTS',
    members: { constructor: '[constructor]x', methods: ['[method]x.y'], statics: [] },
    result: listingType,
    type: listingType,
    element: listingType,
    length: 2,
    key: listingType,
    ok: listingType,
    err: listingType,
    resource: 'counter',
    interface: 'test:resources/api',
    imported: true,
    cause: 'POLLUTED-CAUSE',
  })
}

/** An item with what does not print (`func`, `members`) spelled out, read by own fields only. */
function described(items: readonly ComponentItem[]): unknown[] {
  const own = <K extends keyof ComponentItem>(item: ComponentItem, key: K) =>
    Object.hasOwn(item, key) ? item[key] : undefined
  return items.map((item) => {
    const exports = own(item, 'exports')
    return {
      ...item,
      func: own(item, 'func'),
      members: own(item, 'members'),
      exports: exports === undefined ? undefined : described(exports),
    }
  })
}

function outcome(run: () => unknown): string {
  try {
    return `ok ${JSON.stringify(run(), (_, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value))}`
  } catch (error) {
    const { name, code, message } = error as { name?: string; code?: string; message?: string }
    return `${name} ${code} ${message}`
  }
}

const results: Record<string, string> = {}
for (const [name, component] of [
  ['types', types],
  ['resources', resources],
] as const) {
  results[`${name}Exports`] = outcome(() => described(component.exports))
  results[`${name}Imports`] = outcome(() => described(component.imports))
  results[`${name}Declarations`] = outcome(() => declarations(component))
}
results.moduleListing = outcome(() => [module.exports, module.imports])

let inst: Instance | undefined
results.instantiate = outcome(() => {
  inst = types.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })
})
const calls: [string, unknown[]][] = [
  ['call-echo', [typesEverything]],
  ['roundtrip-variant', [{ tag: 'circle', val: 1.5 }]],
  ['roundtrip-result-unit', [{ tag: 'err', val: undefined }]],
  ['roundtrip-option-option', [{ tag: 'some', val: undefined }]],
  [
    'roundtrip-results',
    [
      [
        { tag: 'ok', val: 1 },
        { tag: 'err', val: 'e' },
      ],
    ],
  ],
  ['roundtrip-list-u8', [new Uint8Array([1, 2])]],
  ['no-result', []],
  ['fallible', [true]],
]
for (const [name, args] of calls) results[name] = outcome(() => inst!.callSync(name, args))

class Logger {
  readonly lines: string[] = []
  constructor(readonly prefix: string) {}
  log(message: string) {
    this.lines.push(message)
    return this.lines.length
  }
  count() {
    return this.lines.length
  }
  static cloneWith(other: Logger, suffix: string) {
    return new Logger(other.prefix + suffix)
  }
}
results.resources = outcome(() => {
  const withResources = resources.instantiateSync({
    limits: { memoryBytes: 4 << 20 },
    imports: {
      'test:resources/host': {
        Logger,
        makeLogger: (prefix: string) => new Logger(prefix),
        logAll: (loggers: Logger[], message: string) => loggers.forEach((logger) => logger.log(message)),
      },
    },
  })
  const api = withResources.exports['test:resources/api'] as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
  const counter = new api.Counter(5)
  return [
    counter.increment(3),
    Array.from(counter.snapshot() as Float64Array),
    api.Counter.split(10, 3).map((part: { value(): number }) => part.value()),
    Object.keys(withResources.exports),
    Object.keys(api),
  ]
})
results.errorCause = outcome(() => {
  try {
    types.instantiateSync({ limits: { memoryBytes: 4 << 20 } })
  } catch (error) {
    return [(error as Error).name, Object.hasOwn(error as object, 'cause')]
  }
})
let inspected = ''
const io = { stdout: { write: (text: string) => (inspected += text) }, stderr: { write: () => true } }
await inspect([wasiModuleWasm], io)
await inspect([typesWasm], io)
results.inspect = inspected.replaceAll(root, '<root>')
process.stdout.write(`RESULT ${JSON.stringify(results)}\n`)
