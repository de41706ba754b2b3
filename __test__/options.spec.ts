import path from 'node:path'
import vm from 'node:vm'

import test from 'ava'
import ts from 'typescript'

import {
  AbortError,
  ConfigError,
  createFilesystem,
  createHttp,
  createPermissions,
  createTime,
  Engine,
  hostInterfaces,
  loadComponent,
  loadManifest,
  WasmError,
  WasmTypeError,
  type InstantiateOptions,
} from '../lib/index.js'
import { MAX_TIMEOUT_MS } from '../lib/options.js'
import { MiB, root } from './helpers.js'

/** Numbers that must never reach the addon (a string too): each is a ConfigError for every numeric option. */
const INVALID: unknown[] = [1e300, Number.NaN, -1, Number.POSITIVE_INFINITY, 2 ** 64, '5']
const label = (value: unknown) => (typeof value === 'string' ? JSON.stringify(value) : String(value))

const ADD = '(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
const engine = new Engine({ fuel: true })
const addModule = engine.compileModuleSync(ADD)
// Tests that call it are serial: one's call() would make another's callSync a BusyError.
const instance = addModule.instantiateSync({ limits: { memoryBytes: MiB } })
const hello = path.join(root, 'examples', 'hello')
test.after.always(() => engine.close())

/** `run` throws a ConfigError for `option`, with the offending value. */
function configError(t: import('ava').ExecutionContext, run: () => unknown, option: string, value: unknown) {
  const error = t.throws(run, { instanceOf: ConfigError }, `${option}: ${label(value)}`)
  t.is(error?.code, 'ERR_WASM_CONFIG')
  t.is(error?.path, option)
  t.true(Object.is(error?.value, value), `value of ${option}`)
  t.regex(error?.message ?? '', new RegExp(`^${option.replace('.', '\\.')}: `))
}

async function configErrorAsync(
  t: import('ava').ExecutionContext,
  run: () => Promise<unknown>,
  option: string,
  value: unknown,
) {
  const error = await t.throwsAsync(run, { instanceOf: ConfigError }, `${option}: ${label(value)}`)
  t.is(error?.code, 'ERR_WASM_CONFIG')
  t.is(error?.path, option)
  t.true(Object.is(error?.value, value), `value of ${option}`)
}

const ENGINE_OPTIONS: Record<string, (value: unknown) => unknown> = {
  epochTickMs: (value) => ({ epochTickMs: value }),
  maxWasmStackBytes: (value) => ({ maxWasmStackBytes: value }),
  'pooling.maxInstances': (value) => ({ pooling: { maxInstances: value } }),
  'pooling.maxMemoryBytes': (value) => ({ pooling: { maxMemoryBytes: value } }),
  'compileLimits.timeoutMs': (value) => ({ compileLimits: { timeoutMs: value } }),
  'compileLimits.memoryBytes': (value) => ({ compileLimits: { memoryBytes: value } }),
  'compileLimits.concurrency': (value) => ({ compileLimits: { concurrency: value } }),
}

test('every numeric Engine option refuses huge, NaN, negative, infinite and string values with a ConfigError', (t) => {
  for (const [option, options] of Object.entries(ENGINE_OPTIONS)) {
    for (const value of INVALID) configError(t, () => new Engine(options(value) as never), option, value)
  }
  // Past the limits that the addon used to check itself.
  configError(t, () => new Engine({ epochTickMs: 1001 }), 'epochTickMs', 1001)
  configError(t, () => new Engine({ maxWasmStackBytes: 4 * MiB }), 'maxWasmStackBytes', 4 * MiB)
  configError(
    t,
    () => new Engine({ pooling: { maxMemoryBytes: 2 ** 33 } }),
    'pooling.maxMemoryBytes',
    2 ** 33,
  )
  using fine = new Engine({ epochTickMs: 1000, maxWasmStackBytes: 2 * MiB })
  t.is(
    fine
      .compileModuleSync(ADD)
      .instantiateSync({ limits: { memoryBytes: 0 } })
      .callSync('add', [1, 2]),
    3,
  )
})

const INSTANTIATE_OPTIONS: Record<string, (value: unknown) => InstantiateOptions> = {
  'limits.memoryBytes': (value) => ({ limits: { memoryBytes: value as number } }),
  'limits.tableElements': (value) => ({ limits: { memoryBytes: MiB, tableElements: value as number } }),
  'limits.instances': (value) => ({ limits: { memoryBytes: MiB, instances: value as number } }),
  'limits.tables': (value) => ({ limits: { memoryBytes: MiB, tables: value as number } }),
  'limits.memories': (value) => ({ limits: { memoryBytes: MiB, memories: value as number } }),
  fuel: (value) => ({ limits: { memoryBytes: MiB }, fuel: value as number }),
  timeoutMs: (value) => ({ limits: { memoryBytes: MiB }, timeoutMs: value as number }),
  'wasi.outputLimitBytes': (value) => ({
    limits: { memoryBytes: MiB },
    wasi: { outputLimitBytes: value as number },
  }),
}

test('every numeric instantiate option refuses invalid values with a ConfigError, sync and async', async (t) => {
  for (const [option, options] of Object.entries(INSTANTIATE_OPTIONS)) {
    for (const value of INVALID) {
      configError(t, () => addModule.instantiateSync(options(value)), option, value)
      await configErrorAsync(t, () => addModule.instantiate(options(value)), option, value)
    }
  }
  configError(
    t,
    () => addModule.instantiateSync(INSTANTIATE_OPTIONS.timeoutMs!(2 ** 31)),
    'timeoutMs',
    2 ** 31,
  )
  configError(t, () => addModule.instantiateSync(INSTANTIATE_OPTIONS.fuel!(2 ** 53)), 'fuel', 2 ** 53)
  configError(t, () => addModule.instantiateSync(INSTANTIATE_OPTIONS.fuel!(1.5)), 'fuel', 1.5)
  const fresh = await addModule.instantiate({ limits: { memoryBytes: MiB }, fuel: 1e6, timeoutMs: 1000 })
  t.is(await fresh.call('add', [2, 3]), 5)
})

test.serial(
  'per-call fuel and timeoutMs refuse invalid values with a ConfigError in call and callSync',
  async (t) => {
    for (const option of ['fuel', 'timeoutMs'] as const) {
      for (const value of [...INVALID, option === 'fuel' ? 0.5 : 0]) {
        configError(t, () => instance.callSync('add', [1, 2], { [option]: value }), option, value)
        await configErrorAsync(t, () => instance.call('add', [1, 2], { [option]: value }), option, value)
      }
    }
    // The process lives on, the instance too.
    t.is(instance.callSync('add', [1, 2]), 3)
    t.is(await instance.call('add', [1, 2], { fuel: 1000, timeoutMs: 1000 }), 3)
  },
)

test.serial(
  'the largest allowed fuel and timeoutMs are accepted, and reach the addon without overflowing',
  async (t) => {
    const options = { fuel: Number.MAX_SAFE_INTEGER, timeoutMs: MAX_TIMEOUT_MS }
    t.is(instance.callSync('add', [20, 22], options), 42)
    t.is(await instance.call('add', [20, 22], options), 42)
    const patient = addModule.instantiateSync({ limits: { memoryBytes: MiB }, ...options })
    t.is(patient.callSync('add', [1, 1]), 2)
    patient.dispose()
  },
)

test("a refused value is shown by its kind, never whole and never through the caller's own toString", (t) => {
  // [5] and new Number(5) read as an in-range "got 5"; ten million characters were repeated whole
  // (probe H30).
  const cases: [unknown, string][] = [
    [[5], 'an array'],
    [new Number(5), 'a boxed primitive'],
    [{ toString: () => 'looks fine' }, 'an object'],
    [Object.create(null), 'an object'],
    ['x'.repeat(10_000_000), `string "${'x'.repeat(80)}"… (10000000 characters)`],
    [() => 5, 'a function'],
    [null, 'null'],
  ]
  for (const [fuel, shown] of cases) {
    const error = t.throws(() => instance.callSync('add', [1, 2], { fuel } as never), {
      instanceOf: ConfigError,
    })
    t.is(error?.message, `fuel: expected an integer from 0 to ${Number.MAX_SAFE_INTEGER}, got ${shown}`)
  }
})

test('an unknown key of a megabyte is named by its length, in the message and the path', (t) => {
  const key = 'k'.repeat(1 << 20)
  const error = t.throws(() => new Engine({ [key]: 1 } as never), { instanceOf: ConfigError })
  t.is(error?.path, '(a string of 1048576 UTF-16 units)')
  t.true((error?.message.length ?? Infinity) < 400, `${error?.message.length}`)
})

test('limits of the wrong kind are named as such, not as a missing memory limit', async (t) => {
  // A number, a Map or an array was "limits.memoryBytes is required" (probe Z25).
  for (const limits of [5, 'x', [], new Map([['memoryBytes', MiB]]), null]) {
    const options = { limits } as unknown as InstantiateOptions
    const sync = t.throws(() => addModule.instantiateSync(options), { instanceOf: ConfigError })
    t.like(sync, { path: 'limits', message: 'limits must be an object' }, String(limits))
    await t.throwsAsync(addModule.instantiate(options), {
      instanceOf: ConfigError,
      message: 'limits must be an object',
    })
  }
  const missing = t.throws(() => addModule.instantiateSync({ limits: {} } as InstantiateOptions), {
    instanceOf: ConfigError,
  })
  t.is(missing?.path, 'limits.memoryBytes')
})

test('an unknown key inside limits (a typo such as tableElement) is a ConfigError naming it, sync and async', async (t) => {
  const options = { limits: { memoryBytes: MiB, tableElement: 5 } } as InstantiateOptions
  const sync = t.throws(() => addModule.instantiateSync(options), { instanceOf: ConfigError })
  t.is(sync?.path, 'limits.tableElement')
  t.regex(sync?.message ?? '', /unknown limits option "tableElement" \(known: .*tableElements/)
  const async = await t.throwsAsync(addModule.instantiate(options), { instanceOf: ConfigError })
  t.is(async?.path, 'limits.tableElement')
})

test('an unknown key inside wasi (a typo such as outputLimitByte) is a ConfigError naming it', async (t) => {
  // It was dropped without a word: a misspelt cap or grant lost.
  for (const key of ['outputLimitByte', 'preopen', 'enviroment']) {
    const options = { limits: { memoryBytes: MiB }, wasi: { [key]: 10 } } as InstantiateOptions
    const sync = t.throws(() => addModule.instantiateSync(options), { instanceOf: ConfigError })
    t.is(sync?.path, `wasi.${key}`)
    t.regex(sync?.message ?? '', /unknown wasi option ".*" \(known: .*outputLimitBytes/)
    const async = await t.throwsAsync(addModule.instantiate(options), { instanceOf: ConfigError })
    t.is(async?.path, `wasi.${key}`)
  }
})

test('an instance fuel budget on an engine without fuel metering is a ConfigError when it is created', async (t) => {
  // It was accepted, left out of the start function (which ran unmetered), then refused at
  // every call.
  const plain = new Engine()
  t.teardown(() => plain.close())
  const looping = plain.compileModuleSync('(module (func $s (loop (br 0))) (start $s))')
  const options = { limits: { memoryBytes: 0 }, fuel: 1000, timeoutMs: 5_000 }
  const sync = t.throws(() => looping.instantiateSync(options), { instanceOf: ConfigError })
  t.regex(sync?.message ?? '', /created without fuel metering/)
  // Named as every other option's problem is.
  t.is(sync?.path, 'fuel')
  const async = await t.throwsAsync(looping.instantiate(options), {
    instanceOf: ConfigError,
    message: /without fuel metering/,
  })
  t.is(async?.path, 'fuel')
  const add = plain.compileModuleSync(ADD)
  t.is(add.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('add', [1, 2]), 3)
})

test.serial('instantiateSync refuses a signal, which could never reach it, as callSync does', async (t) => {
  const signal = AbortSignal.abort()
  // Its type takes no signal (`InstantiateSyncOptions`); a JS caller passes one anyway.
  // @ts-expect-error instantiateSync takes no signal
  const error = t.throws(() => addModule.instantiateSync({ limits: { memoryBytes: MiB }, signal }), {
    instanceOf: ConfigError,
  })
  t.is(error?.path, 'signal')
  t.regex(error?.message ?? '', /use instantiate\(\{ signal \}\)/)
  t.throws(() => instance.callSync('add', [1, 2], { signal } as never), { instanceOf: ConfigError })
  await t.throwsAsync(addModule.instantiate({ limits: { memoryBytes: MiB }, signal }), { name: 'AbortError' })
})

test.serial('a non-signal signal is a ConfigError', async (t) => {
  await configErrorAsync(t, () => instance.call('add', [1, 2], { signal: 'stop' as never }), 'signal', 'stop')
  // `instanceof` holds for an object made from the prototype, on which Node threw a bare TypeError.
  const fake = Object.create(AbortSignal.prototype) as AbortSignal
  await configErrorAsync(t, () => instance.call('add', [1, 2], { signal: fake }), 'signal', fake)
  t.is(await instance.call('add', [1, 2], { signal: new AbortController().signal }), 3)
})

test.serial(
  "a signal is read through AbortSignal's own accessors: what a host defines on it cannot throw out of call() or hide an abort",
  async (t) => {
    const fail = (what: string) => () => {
      throw new Error(what)
    }
    const tampered = (signal: AbortSignal, key: string, throwing: boolean) =>
      Object.defineProperty(signal, key, throwing ? { get: fail(`${key} getter`) } : { value: fail(key) })
    // Not aborted, whatever its own `aborted` says or does; its listener still works.
    const live = new AbortController()
    tampered(live.signal, 'aborted', true)
    tampered(live.signal, 'addEventListener', false)
    t.is(await instance.call('add', [1, 2], { signal: live.signal }), 3)
    // Aborted, with a reason its own getter would hide.
    const stopped = new AbortController()
    stopped.abort('the real reason')
    tampered(stopped.signal, 'reason', true)
    Object.defineProperty(stopped.signal, 'aborted', { value: false })
    let returned: Promise<unknown> | undefined
    t.notThrows(() => {
      returned = instance.call('add', [1, 2], { signal: stopped.signal })
    })
    const error = await t.throwsAsync(returned!, { instanceOf: AbortError })
    t.is(error?.cause, 'the real reason')
    // A sandbox reads the same way.
    using sandbox = await loadComponent(hello)
    await t.throwsAsync(sandbox.call('greet', ['x'], { signal: stopped.signal }), { instanceOf: AbortError })
  },
)

test('every numeric Sandbox limit refuses invalid values with a ConfigError, and the sandbox keeps working', async (t) => {
  for (const option of ['memoryBytes', 'fuel', 'timeoutMs'] as const) {
    for (const value of INVALID) {
      await configErrorAsync(
        t,
        () => loadComponent(hello, { limits: { [option]: value } as never }),
        `limits.${option}`,
        value,
      )
    }
  }
  using sandbox = await loadComponent(hello)
  for (const option of ['fuel', 'timeoutMs'] as const) {
    for (const value of INVALID) {
      configError(t, () => sandbox.callSync('greet', ['x'], { [option]: value }), option, value)
      await configErrorAsync(t, () => sandbox.call('greet', ['x'], { [option]: value }), option, value)
    }
  }
  t.is(sandbox.metrics().restarts, 0)
  t.is(sandbox.callSync('greet', ['sync']), 'Hello, sync!')
  t.is(await sandbox.call('greet', ['async'], { fuel: 1_000_000, timeoutMs: 500 }), 'Hello, async!')
})

test("what the caller's own getters and proxies throw while options, imports or arguments are read is a typed error with it as cause", async (t) => {
  const boom = new Error('the caller threw')
  const throwing = new Proxy(
    {},
    {
      get: () => {
        throw boom
      },
      ownKeys: () => {
        throw boom
      },
    },
  )
  const { proxy: revoked, revoke } = Proxy.revocable([], {})
  revoke()
  const fresh = () => addModule.instantiateSync({ limits: { memoryBytes: MiB } })
  const configErrors: [string, () => unknown][] = [
    ['Engine options', () => new Engine(throwing as never)],
    ['instantiate options', () => addModule.instantiateSync(throwing as never)],
    ['limits', () => addModule.instantiateSync({ limits: throwing } as never)],
    [
      'imports',
      () => addModule.instantiateSync({ limits: { memoryBytes: MiB }, imports: throwing as never }),
    ],
    ['call options', () => fresh().callSync('add', [1, 2], throwing as never)],
  ]
  for (const [what, run] of configErrors) {
    const error = t.throws(run, { instanceOf: ConfigError }, what)
    t.is(error?.cause, boom, what)
  }
  const args = [1, 2]
  Object.defineProperty(args, 0, {
    get() {
      throw boom
    },
  })
  for (const bad of [args, revoked]) {
    const sync = t.throws(() => fresh().callSync('add', bad as never), { instanceOf: WasmTypeError })
    t.true(sync instanceof WasmError)
    await t.throwsAsync(fresh().call('add', bad as never), { instanceOf: WasmTypeError })
  }
  t.throws(() => fresh().function('add')(...args), { is: boom }, 'a spread reads the getter in the caller')
  t.is(fresh().callSync('add', [1, 2]), 3)
})

test('every option accepts an explicit undefined under exactOptionalPropertyTypes, as at run time', (t) => {
  // A project with exactOptionalPropertyTypes passes `{ timeoutMs: maybe }`: an option typed
  // `?: number` alone would refuse it though the package takes it. Keys whose type has no
  // `undefined` come out of `Strict`, and the assignment below names them.
  const source = `
    import type * as api from '../lib/index.js'
    type Strict<T> = { [K in keyof T]-?: undefined extends Required<T>[K] ? never : K }[keyof T]
    type Options = {
      engine: api.EngineOptions
      pooling: Exclude<NonNullable<api.EngineOptions['pooling']>, false>
      instantiate: api.InstantiateOptions
      limits: api.InstantiateOptions['limits']
      wasi: api.WasiOptions
      http: api.WasiHttpOptions
      call: api.CallOptions
      asyncCall: api.AsyncCallOptions
      loadComponent: api.LoadComponentOptions
      sandboxLimits: api.SandboxLimits
      loadManifest: api.LoadManifestOptions
      permissions: api.PermissionOptions
      hooks: api.PermissionHooks
      address: api.ResolvedAddress
      policy: api.PolicyOptions
      fuelPolicy: NonNullable<api.PolicyOptions['fuel']>
      sandboxWasi: Exclude<NonNullable<api.LoadComponentOptions['wasi']>, false>
    }
    // The keys that are required, and so rightly take no undefined; every other key must.
    type RequiredKeys = { instantiate: 'limits'; limits: 'memoryBytes'; address: 'address' }
    type Expected<K> = K extends keyof RequiredKeys ? RequiredKeys[K] : never
    type Loose = {
      [K in keyof Options]: [Strict<Options[K]>] extends [Expected<K>]
        ? [Expected<K>] extends [Strict<Options[K]>]
          ? true
          : Strict<Options[K]>
        : Strict<Options[K]>
    }
    export const loose: Loose = {
      engine: true, pooling: true, instantiate: true, limits: true, wasi: true, http: true,
      call: true, asyncCall: true, loadComponent: true, sandboxLimits: true, loadManifest: true,
      permissions: true, hooks: true, address: true, policy: true, fuelPolicy: true, sandboxWasi: true,
    }
  `
  t.deepEqual(typeErrors(source), [])
})

/** What tsc (strict, exactOptionalPropertyTypes) says of `source`, a module in __test__/. */
function typeErrors(source: string): string[] {
  const file = path.join(root, '__test__', 'typed.generated.ts')
  const host = ts.createCompilerHost({})
  const readFile = host.readFile.bind(host)
  host.readFile = (name) => (path.resolve(name) === file ? source : readFile(name))
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name)
  const program = ts.createProgram(
    [file],
    {
      strict: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Preserve,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules/@types')],
    },
    host,
  )
  return ts
    .getPreEmitDiagnostics(program, program.getSourceFile(file))
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
}

test("read-only arrays and hostInterfaces()'s result type-check where the options take them at run time", (t) => {
  // `wasi.args` and `wasi.http.allow` refused an `as const` array (and the package's own
  // readonly grant lists), and hostInterfaces() could not be passed as `imports` though its doc
  // says so (probe Z3).
  const source = `
    import { createPermissions, hostInterfaces, type InstantiateOptions } from '../lib/index.js'
    const outbound: readonly string[] = createPermissions({ networkOutbound: ['127.0.0.1:8080'] }).networkOutbound
    export const options: InstantiateOptions = {
      limits: { memoryBytes: 1 << 20 },
      imports: hostInterfaces(createPermissions()),
      wasi: { args: ['tool', 'cat'] as const, http: { allow: outbound } },
    }
  `
  t.deepEqual(typeErrors(source), [])
})

test('the capability interfaces, loadManifest and pooling refuse a key no option has', (t) => {
  // `{ maxFilebytes: 4 }` let filesystem.read return a whole file that `maxFileBytes: 4` refuses.
  const permissions = createPermissions()
  const typos: [string, () => unknown, string][] = [
    ['createFilesystem', () => createFilesystem(permissions, { maxFilebytes: 4 } as never), 'maxFilebytes'],
    ['createHttp', () => createHttp(permissions, { maxRedirect: 1 } as never), 'maxRedirect'],
    ['createTime', () => createTime(permissions, { signl: undefined } as never), 'signl'],
    ['hostInterfaces', () => hostInterfaces(permissions, { maxFilebytes: 4 } as never), 'maxFilebytes'],
    ['loadManifest', () => loadManifest(path.join(root, 'examples/hello'), { polcy: {} } as never), 'polcy'],
  ]
  for (const [what, make, key] of typos) {
    const error = t.throws(make, { instanceOf: ConfigError }, what)
    t.is(error?.path, key, what)
    t.regex(error?.message ?? '', new RegExp(`unknown .*"${key}" \\(known: `), what)
  }
  t.throws(() => createFilesystem(permissions, null as never), {
    instanceOf: ConfigError,
    message: 'createFilesystem: expected an options object, got null',
  })
  t.throws(() => createPermissions({}, null as never), {
    instanceOf: ConfigError,
    message: 'permission hooks: expected an object',
  })
  // Each interface's own options, together, are fine.
  t.notThrows(() =>
    hostInterfaces(permissions, { maxFileBytes: 4, maxBodyBytes: 1024, timeoutMs: 10, signal: undefined }),
  )
  t.throws(() => new Engine({ pooling: null } as never), {
    instanceOf: ConfigError,
    message: /pooling: expected an object or false/,
  })
})

test('options inherited from shared defaults are not options, at every entry point, as for a call', async (t) => {
  // Object.create(defaults) gave instantiate a deadline that a call with the same object ignored,
  // and the whole wasi object's env to the guest (probe Z18).
  const spin = engine.compileModuleSync('(module (func (export "spin") (loop $l (br $l))))')
  const defaults = Object.create({ timeoutMs: 30, fuel: 1 }) as InstantiateOptions
  Object.assign(defaults, { limits: { memoryBytes: MiB } })
  const inst = spin.instantiateSync(defaults)
  // No inherited budget (a deadline of 30 ms, 1 unit of fuel): only the caller's abort stops it.
  await t.throwsAsync(inst.call('spin', [], { signal: AbortSignal.timeout(200) }), { instanceOf: AbortError })
  t.throws(
    () =>
      new Engine(Object.create({ fuel: true }) as never)
        .compileModuleSync(ADD)
        .instantiateSync({ limits: { memoryBytes: MiB }, fuel: 10 }),
    {
      instanceOf: ConfigError,
      message: /fuel/,
    },
  )
  const inheritedLimits = Object.create({ memoryBytes: MiB }) as { memoryBytes: number }
  t.throws(() => addModule.instantiateSync({ limits: inheritedLimits }), {
    instanceOf: ConfigError,
    message: /^limits\.memoryBytes is required/,
  })
  // A class instance as the options object is read by its own fields too, as call options are.
  class Options {
    limits = { memoryBytes: MiB }
    get timeoutMs() {
      return 30
    }
  }
  const fromClass = spin.instantiateSync(new Options() as never)
  await t.throwsAsync(fromClass.call('spin', [], { signal: AbortSignal.timeout(200) }), {
    instanceOf: AbortError,
  })
  const sandboxLimits = Object.create({ timeoutMs: 1 }) as { timeoutMs: number }
  await t.notThrowsAsync(async () => {
    using sandbox = await loadComponent(hello, { limits: sandboxLimits })
    t.is(await sandbox.call('greet', ['own']), 'Hello, own!')
  })
})

test('an option of the wrong kind is a ConfigError, never read as no option or a default', async (t) => {
  // Each was accepted (probe Z18): a sandbox spread `wasi: 5` into nothing, `null` and `[]` were
  // no WASI options, a Number object passed as pooling settings, and a null compiler the default.
  for (const wasi of [5, true, () => {}, null, 'x', []]) {
    const error = await t.throwsAsync(loadComponent(hello, { wasi: wasi as never }), {
      instanceOf: ConfigError,
    })
    t.is(error?.path, 'wasi', String(wasi))
  }
  for (const wasi of [null, [], 5]) {
    t.throws(() => addModule.instantiateSync({ limits: { memoryBytes: MiB }, wasi: wasi as never }), {
      instanceOf: ConfigError,
      message: /^wasi: expected an object or false/,
    })
  }
  t.throws(() => new Engine({ pooling: new Number(5) } as never), {
    instanceOf: ConfigError,
    message: /^pooling: expected an object or false/,
  })
  t.throws(() => new Engine({ compiler: null } as never), {
    instanceOf: ConfigError,
    message: /^compiler: expected/,
  })
  // null where an option was omitted, everywhere alike (probe H26).
  const withWasi = (wasi: Record<string, unknown>) => () =>
    addModule.instantiateSync({ limits: { memoryBytes: MiB }, wasi: wasi as never })
  for (const [wasi, path] of [
    [{ args: null }, 'wasi.args'],
    [{ http: null }, 'wasi.http'],
    [{ http: new Number(1) }, 'wasi.http'],
    [{ http: { allow: null } }, 'wasi.http.allow'],
  ] as const) {
    const error = t.throws(withWasi(wasi), { instanceOf: ConfigError }, path)
    t.is(error?.path, path)
  }
  for (const given of [
    { engine: null },
    { wasi: { stdout: null } },
    { policy: { fuel: null } },
    { policy: { fuel: [] } },
  ]) {
    await t.throwsAsync(
      loadComponent(hello, given as never),
      { instanceOf: ConfigError },
      JSON.stringify(given),
    )
  }
  // A Map, a Date or a boxed value where options go: its own keys read as no options at all, so
  // a policy meant to narrow a limit was the default one (probe H27).
  const notOptions = [new Map([['fuel', { max: 1000 }]]), new Date(0), new Number(1)]
  for (const given of notOptions) {
    const label = Object.prototype.toString.call(given)
    t.throws(() => new Engine(given as never), { instanceOf: ConfigError }, label)
    t.throws(withWasi({ env: given }), { instanceOf: ConfigError, message: /^wasi\.env/ }, label)
    t.throws(withWasi({ preopens: given }), { instanceOf: ConfigError, message: /^wasi\.preopens/ }, label)
    t.throws(() => instance.callSync('add', [1, 2], given as never), { instanceOf: ConfigError }, label)
    await t.throwsAsync(instance.call('add', [1, 2], given as never), { instanceOf: ConfigError }, label)
    t.throws(() => addModule.instantiateSync({ limits: given as never }), { instanceOf: ConfigError }, label)
    t.throws(() => addModule.instantiateSync({ limits: { memoryBytes: MiB }, imports: given as never }), {
      instanceOf: ConfigError,
    })
    for (const key of ['policy', 'limits', 'hostFunctions']) {
      await t.throwsAsync(
        loadComponent(hello, { [key]: given }),
        { instanceOf: ConfigError },
        `${key} ${label}`,
      )
    }
  }
  await t.throwsAsync(loadComponent(hello, { policy: [] as never }), { instanceOf: ConfigError })
  // One level down in host code too: a Map of functions was read as none, a LinkError (probe H28).
  const callsF = engine.compileModuleSync('(module (import "env" "f" (func (result i32))))')
  const mapped = t.throws(
    () =>
      callsF.instantiateSync({
        limits: { memoryBytes: 0 },
        imports: { env: new Map([['f', () => 7]]) } as never,
      }),
    { instanceOf: ConfigError },
  )
  t.is(mapped?.path, 'imports.env')
  // What a set of options is, is told by what it is, not by a Symbol.toStringTag: a tagged object
  // and a module namespace are options (probe H28).
  t.true(new Engine({ [Symbol.toStringTag]: 'Settings', fuel: true } as never).fuelEnabled)
  const source: string = 'data:text/javascript,export const env = { f: () => 7 }'
  const namespace = (await import(source)) as object
  t.notThrows(() => callsF.instantiateSync({ limits: { memoryBytes: 0 }, imports: namespace as never }))
  // A Uint8Array of another realm is one (a Proxy of one is not: the addon could not read it).
  const foreign = vm.runInNewContext('new Uint8Array([104, 105])') as Uint8Array
  t.notThrows(withWasi({ stdin: foreign }))
  t.throws(withWasi({ stdin: new Proxy(new Uint8Array(2), {}) }), {
    instanceOf: ConfigError,
    message: /^wasi\.stdin/,
  })
  // An Engine in name only: a Proxy of one, or an object made on its prototype.
  const real = new Engine({ fuel: true })
  for (const fake of [new Proxy(real, {}), Object.create(Engine.prototype) as Engine]) {
    await t.throwsAsync(loadComponent(hello, { engine: fake }), {
      instanceOf: ConfigError,
      message: 'engine: expected an Engine',
    })
  }
  real.close()
  // Not a path: Node's own TypeError came through.
  for (const dir of [5, undefined, new URL('file:///tmp'), Buffer.from('/tmp')]) {
    await t.throwsAsync(loadComponent(dir as never), {
      instanceOf: WasmTypeError,
      message: /^dir: expected the path of a directory or of its Component\.toml, got /,
    })
    t.throws(() => loadManifest(dir as never), { instanceOf: WasmTypeError })
  }
})

test('a policy bound given as undefined is the default, as an undefined option is everywhere', (t) => {
  const manifest = loadManifest(path.join(root, 'examples/hello'), {
    policy: {
      fuel: { min: undefined, max: undefined },
      timeoutMs: { max: undefined },
      memoryBytes: undefined,
    },
  })
  t.is(manifest.resources.cpu.maxFuel, 10_000_000)
})
