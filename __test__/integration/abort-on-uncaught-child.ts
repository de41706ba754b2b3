/**
 * Run with `node --abort-on-uncaught-exception`: every failure below is caught by a `try` here,
 * so the process must print each one's code and exit 0. Spawned by crash-isolation.spec.ts.
 */
import { resourcesWasm, typesImports, typesWasm } from '../../fixtures/index.js'
import { Engine } from '../../lib/index.js'
import { disposingLoggerImports } from '../helpers.js'

const engine = new Engine()
const wat = `(module
  (import "env" "h" (func $h))
  (func (export "unreachable") unreachable)
  (func (export "host") call $h)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "spin") (loop br 0)))`
const module = engine.compileModuleSync(wat)
const limits = { memoryBytes: 1 << 16 }
const throwing = {
  env: {
    h: () => {
      throw new Error('host')
    },
  },
}
const inst = module.instantiateSync({ limits, imports: throwing })
const types = engine.compileComponentSync(typesWasm)
const failingDouble = {
  ...typesImports(),
  double: () => {
    throw new Error('host')
  },
}
const component = types.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: failingDouble })

const { proxy: revoked, revoke } = Proxy.revocable({}, {})
revoke()
const hostile = (h: () => unknown) => module.instantiateSync({ limits, imports: { env: { h } } })
/** The types fixture with a `result<u32, string>` import (`fail-maybe`) that throws `thrown`. */
const failing = (thrown: unknown) =>
  types.instantiateSync({
    limits: { memoryBytes: 4 << 20 },
    imports: {
      ...typesImports(),
      'test:types/host@0.1.0': {
        ...(typesImports()['test:types/host@0.1.0'] as object),
        failMaybe: () => {
          throw thrown
        },
      },
    },
  })
/** The resources fixture with a host `logger` whose `[Symbol.dispose]` is `dispose`. */
const resources = engine.compileComponentSync(resourcesWasm)
const disposing = (dispose: PropertyDescriptor) =>
  resources.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: disposingLoggerImports(dispose) })

const cases: Record<string, () => unknown> = {
  callSync: () => inst.callSync('unreachable', []),
  function: () => inst.function('unreachable')(),
  exports: () => (inst.exports as Record<string, () => unknown>).unreachable!(),
  timeout: () => inst.callSync('spin', [], { timeoutMs: 10 }),
  hostThrows: () => inst.callSync('host', []),
  badArgument: () => inst.callSync('add', [1]),
  compile: () => engine.compileModuleSync('(module (func (export "x") i32.add))'),
  link: () => module.instantiateSync({ limits }),
  disposed: () => {
    const gone = module.instantiateSync({ limits, imports: throwing })
    gone.dispose()
    return gone.callSync('add', [1, 2])
  },
  componentTrap: () => component.callSync('trap-unreachable', []),
  componentHostThrows: () =>
    types
      .instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: failingDouble })
      .callSync('call-double', [2]),
  componentBadArgument: () =>
    types
      .instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })
      .callSync('roundtrip-u8', [300]),
  asyncHostThrows: () => module.instantiateSync({ limits, imports: throwing }).call('host', []),
  asyncLink: () => module.instantiate({ limits }),
  // What a host function throws is read in JS, where its getters' throws meet a try.
  throwsRevokedProxy: () =>
    hostile(() => {
      throw revoked
    }).call('host', []),
  rejectsWithThrowingGetter: () =>
    hostile(() =>
      Promise.reject({
        get name(): string {
          throw new Error('name getter')
        },
      }),
    ).call('host', []),
  // What it throws for a `result` import's err is read in JS too.
  errPayloadGetterThrows: () =>
    failing(
      Object.defineProperty(new Error('err'), 'payload', {
        get() {
          throw new Error('payload getter')
        },
      }),
    ).call('call-fail-maybe', [0]),
  errRevokedProxy: () => failing(revoked).call('call-fail-maybe', [0]),
  // A host resource's dispose, run when the guest drops its handle, is read and called in JS.
  disposeThrows: () =>
    disposing({
      value() {
        throw new Error('dispose')
      },
    }).call('test:resources/uses-host#with-logger', ['x', []]),
  disposeGetterThrows: () =>
    disposing({
      get() {
        throw new Error('dispose getter')
      },
    }).call('test:resources/uses-host#with-logger', ['x', []]),
}

const codes: Record<string, unknown> = {}
for (const [name, run] of Object.entries(cases)) {
  try {
    await run()
    codes[name] = 'no error'
  } catch (error) {
    codes[name] = (error as { code?: unknown }).code
  }
}
console.log(JSON.stringify(codes))
