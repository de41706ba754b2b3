/**
 * TypeScript declarations of a component (lib/dts.ts): generated for the fixtures, compiled with
 * `tsc --strict` against typed usage (mistakes marked `@ts-expect-error` must be errors), run, and
 * compared with the real `instance.exports`.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'

import test from 'ava'
import ts from 'typescript'

import { helloWasm, resourcesWasm, root, typesImports, typesWasm } from '../fixtures/index.js'
import { declarations, type ComponentListings } from '../lib/dts.js'
import { Engine, type ComponentItem, type Instance, type WitType } from '../lib/index.js'
import { PROTOTYPE_STATIC_WAT, ROOT_COUNTER_WAT } from './helpers.js'

const engine = new Engine()
const fixtures = {
  resources: await engine.compileComponent(resourcesWasm),
  types: await engine.compileComponent(typesWasm),
  hello: await engine.compileComponent(helloWasm),
}
test.after.always(() => engine.close())

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-dts-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

/** The package's types, as a user's code imports them (from the sources: no build needed). */
const lib = JSON.stringify(path.join(root, 'lib/index.js'))

/**
 * Typed usage of each fixture's declarations. Each `use` runs (the test calls it); each `mistakes`
 * is only compiled: every line after `@ts-expect-error` must be a type error.
 */
const usage: Record<keyof typeof fixtures, string> = {
  resources: `
import { type Engine, type Instance } from ${lib}
import type { Blob, Counter, Exports, Imports, Logger as HostLogger } from './resources.js'

export class Logger {
  lines: string[] = []
  constructor(public prefix: string) {}
  log(msg: string): number {
    this.lines.push(msg)
    return this.lines.length
  }
  count(): number {
    return this.lines.length
  }
  static cloneWith(other: Logger, suffix: string): Logger {
    return new Logger(other.prefix + suffix)
  }
  [Symbol.dispose](): void {}
}

export const imports = {
  'test:resources/host': {
    Logger,
    makeLogger: (prefix: string) => new Logger(prefix),
    logAll: (loggers: HostLogger[], msg: string) => {
      for (const logger of loggers) void logger.log(msg)
    },
  },
} satisfies Imports

export async function use(engine: Engine, wasm: string) {
  const component = await engine.compileComponent(wasm)
  const annotated: Imports = imports
  const inst = await component.instantiate<Exports>({ limits: { memoryBytes: 4 << 20 }, imports: annotated })
  const untyped: Instance = inst
  const { api, usesHost } = inst.exports
  const counter: Counter = new api.Counter(5)
  const after: number = counter.increment(2)
  const snapshot: Float64Array = counter.snapshot()
  const parts: Counter[] = api.Counter.split(10, 3)
  const pair: { left: Counter; right: Counter | undefined } = api.makePair(1, null)
  const blob: Blob = new api.Blob([1, 2, 3])
  const bytes: Uint8Array = blob.bytes()
  const sum: number = api.sum([counter, ...parts])
  const kept: number = usesHost.keepLogger(new Logger('kept'))
  const back: HostLogger = usesHost.roundTrip(new Logger('back'))
  const broadcast: Uint32Array = inst.exports['test:resources/uses-host'].broadcast(['a', 'b'], 'hi')
  const maybe: Counter | undefined = api.maybe(undefined)
  counter[Symbol.dispose]()
  untyped.dispose()
  return { after, snapshot, parts, pair, blob, bytes, sum, kept, back, broadcast, maybe }
}

export function mistakes(inst: Instance<Exports>, counter: Counter) {
  // @ts-expect-error a counter starts at an s32: a number, not a string
  new inst.exports.api.Counter('five')
  // @ts-expect-error counters have no reset method
  counter.reset()
  // @ts-expect-error a blob has no static methods
  inst.exports.api.Blob.split(1, 2)
  // @ts-expect-error a borrowed counter is a Counter object, not a number
  inst.exports.api.sum([1])
  const missingClass = {
    'test:resources/host': { makeLogger: (prefix: string) => new Logger(prefix), logAll: () => {} },
  }
  // @ts-expect-error the host must give the Logger class
  missingClass satisfies Imports
}
`,
  types: `
import type { Engine } from ${lib}
import type { Exports, Imports } from './types.js'

export const imports = {
  double: (x: number) => x * 2,
  'test:types/host@0.1.0': {
    log: (message: string) => {
      void message
    },
    transform: (p: { x: number; y: number }) => ({ x: p.y, y: p.x }),
    // What the guest passes can be handed back: every returned form is an accepted one.
    echo: (value) => value,
    failMaybe: async (x: number) => {
      if (x === 0) throw new Error('zero is not allowed')
      return x + 1
    },
  },
} satisfies Imports

// A host function for a result may also return the result itself, as jco takes it.
const host = imports['test:types/host@0.1.0']
export const resultForms = {
  ...imports,
  'test:types/host@0.1.0': { ...host, failMaybe: (x: number) => (x === 0 ? { tag: 'err', val: 'zero' } : { tag: 'ok', val: x }) },
} satisfies Imports
// @ts-expect-error an err result holds the error type (a string), not a number
export const wrongErr = { ...imports, 'test:types/host@0.1.0': { ...host, failMaybe: () => ({ tag: 'err', val: 5 }) } } satisfies Imports

export async function use(engine: Engine, wasm: string) {
  const component = await engine.compileComponent(wasm)
  const e = component.instantiateSync<Exports>({ limits: { memoryBytes: 4 << 20 }, imports }).exports
  const bool: boolean = e.roundtripBool(true)
  const u64: bigint = e.roundtripU64(2n ** 64n - 1n)
  const char: string = e.roundtripChar('é')
  const listU8: Uint8Array = e.roundtripListU8([1, 2, 3])
  const listS16: Int16Array = e.roundtripListS16(new Int16Array([-1]))
  const listU64: BigUint64Array = e.roundtripListU64([1n])
  const listF32: Float32Array = e.roundtripListF32(new Float32Array([1.5]))
  const strings: string[] = e.roundtripListString(['a'] as const)
  const record: { firstName: string; age: number; tags: string[] } = e.roundtripRecord({
    firstName: 'Ada',
    age: 36,
    tags: ['x'],
  })
  const tuple: [number, string, number] = e.roundtripTuple([1, 'a', 2.5])
  const variant = e.roundtripVariant({ tag: 'rectangle', val: { x: 1, y: 2 } })
  const corner: number = variant.tag === 'rectangle' ? variant.val.x : 0
  const color: 'red' | 'green' | 'blue-ish' = e.roundtripEnum('blue-ish')
  const flags: { read: boolean; write: boolean; execNow: boolean } = e.roundtripFlags({ execNow: true })
  const option: string | undefined = e.roundtripOption(null)
  const nested = e.roundtripOptionOption({ tag: 'some', val: undefined })
  const inner: number | undefined = nested.tag === 'some' ? nested.val : 7
  const results = e.roundtripResults([{ tag: 'ok', val: 1 }, { tag: 'err', val: 'no' }])
  const firstError: string | undefined = results[1]?.tag === 'err' ? results[1].val : undefined
  const unit: [{ tag: 'ok' } | { tag: 'err' }] = e.roundtripResultUnit({ tag: 'err' })
  const deep = e.roundtripNested({ items: [['a', [{ tag: 'nothing' }, { tag: 'circle', val: 1 }]], null] })
  const many: [number, bigint, string, number] = e.manyParams(1, -2n, 'c', 0.5)
  const ok: string = e.fallible(false)
  const sum: number = e.numbers.add(1, 2)
  const greeting: string = e['test:types/numbers@0.1.0'].greet('you')
  const echoed = e.callEcho({
    flag: true, tiny: 1, small: 2, medium: 3, large: 4n, stiny: -1, ssmall: -2, smedium: -3, slarge: -4n,
    single: 1.5, wide: 2.5, letter: 'x', text: 'text', bytes: [1], words: ['w'],
    maybe: { tag: 'none' }, outcome: { tag: 'ok', val: 'fine' }, rank: 'high-ish', rights: {},
    tokens: [{ tag: 'pair', val: [1, 'c'] }, { tag: 'empty' }], pair: [-1, 'p'],
  })
  const echoedBytes: Uint8Array = echoed.bytes
  return {
    bool, u64, char, listU8, listS16, listU64, listF32, strings, record, tuple, corner, color, flags,
    option, inner, firstError, unit, deep, many, ok, sum, greeting, echoedBytes,
  }
}

export function mistakes(e: Exports) {
  // @ts-expect-error a u64 is a bigint, not a number
  e.roundtripU64(1)
  // @ts-expect-error an option of an option takes only its tagged form, so its field is required
  e.callEcho({
    flag: true, tiny: 1, small: 2, medium: 3, large: 4n, stiny: -1, ssmall: -2, smedium: -3, slarge: -4n,
    single: 1.5, wide: 2.5, letter: 'x', text: 'text', bytes: [1], words: ['w'],
    outcome: { tag: 'ok', val: 'fine' }, rank: 'high-ish', rights: {},
    tokens: [], pair: [-1, 'p'],
  })
  // @ts-expect-error purple is not a case of the enum
  e.roundtripEnum('purple')
  // @ts-expect-error record keys are lowerCamelCase
  e.roundtripRecord({ 'first-name': 'Ada', age: 36, tags: [] })
  // @ts-expect-error an export returning a result returns its ok value (an err throws)
  e.fallible(true).tag
  // @ts-expect-error an option of an option is tagged
  e.roundtripOptionOption(5)
  // @ts-expect-error a tuple has exactly its elements
  e.roundtripTuple([1, 'a'])
}
`,
  hello: `
import type { Engine } from ${lib}
import type { Exports } from './hello.js'

export async function use(engine: Engine, wasm: string) {
  const component = await engine.compileComponent(wasm)
  const inst = await component.instantiate<Exports>({ limits: { memoryBytes: 4 << 20 } })
  const greeting: string = inst.exports.greet('world')
  return { greeting }
}

export function mistakes(e: Exports) {
  // @ts-expect-error greet takes a string
  e.greet(42)
  // @ts-expect-error hello exports nothing else
  e.farewell('world')
}
`,
}

/** A function of a synthetic listing. */
function func(name: string, params: [string, WitType][], result?: WitType): ComponentItem {
  return {
    name,
    kind: 'func',
    type: 'func(...)',
    func: { params: params.map(([param, type]) => ({ name: param, type })), ...(result && { result }) },
  }
}

const own = (resource: string, iface: string, imported = false) =>
  ({ kind: 'own', resource, interface: iface, imported }) as const

/** A component whose names collide: two `thing` resources, two `things` interfaces, a `promise`. */
const synthetic: ComponentListings = {
  exports: [
    {
      name: 'a:x/things',
      kind: 'instance',
      type: 'instance',
      exports: [
        { name: 'thing', kind: 'resource', type: 'resource' },
        { name: 'promise', kind: 'resource', type: 'resource' },
        func('[constructor]thing', [['in', { kind: 'u8' }]], own('thing', 'a:x/things')),
        func('[static]thing.new', [['class', { kind: 'string' }]], own('thing', 'a:x/things')),
        func('[method]promise.then', [
          ['self', { kind: 'borrow', resource: 'promise', interface: 'a:x/things' }],
        ]),
        func('take', [['t', own('thing', 'b:y/things', true)]], own('promise', 'a:x/things')),
      ],
    },
    { name: 'b:z/things', kind: 'instance', type: 'instance', exports: [func('nothing', [])] },
  ],
  imports: [
    {
      name: 'b:y/things',
      kind: 'instance',
      type: 'instance',
      exports: [
        { name: 'thing', kind: 'resource', type: 'resource' },
        func('[method]thing.poke', [
          ['self', { kind: 'borrow', resource: 'thing', interface: 'b:y/things', imported: true }],
        ]),
      ],
    },
    {
      name: 'wasi:io/streams@0.2.0',
      kind: 'instance',
      type: 'instance',
      exports: [func('read', [])],
      providedByRuntime: true,
    },
  ],
}

for (const [name, component] of Object.entries(fixtures)) {
  writeFileSync(path.join(scratch, `${name}.d.ts`), declarations(component, { source: `${name}.wasm` }))
  writeFileSync(path.join(scratch, `use-${name}.ts`), usage[name as keyof typeof fixtures])
}
writeFileSync(path.join(scratch, 'synthetic.d.ts'), declarations(synthetic))

const execFileAsync = promisify(execFile)

/** `tsc --noEmit --strict` over `files` in the scratch directory, as a user's project would run it. */
async function typeCheck(files: readonly string[]): Promise<{ ok: boolean; output: string }> {
  const options = [
    ...['--noEmit', '--strict', '--target', 'es2022', '--module', 'preserve'],
    ...['--moduleResolution', 'bundler', '--lib', 'es2023,esnext.disposable,dom'],
    ...['--types', 'node', '--typeRoots', path.join(root, 'node_modules/@types')],
  ]
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc')
  try {
    await execFileAsync(process.execPath, [tsc, ...options, ...files], { cwd: scratch })
    return { ok: true, output: '' }
  } catch (error) {
    const { stdout, stderr } = error as { stdout: string; stderr: string }
    return { ok: false, output: `${stdout}${stderr}` }
  }
}

test('typed usage of the fixtures’ declarations compiles with tsc --strict; each marked mistake is an error', async (t) => {
  const files = [...Object.keys(fixtures).map((name) => `use-${name}.ts`), 'synthetic.d.ts']
  const { ok, output } = await typeCheck(files)
  t.true(ok, output)
})

test('a wrong call that is not marked is a tsc error naming the generated type', async (t) => {
  writeFileSync(
    path.join(scratch, 'wrong.ts'),
    `import type { Exports } from './resources.js'\nexport const f = (e: Exports) => e.api.Counter.split('ten', 3)\n`,
  )
  const { ok, output } = await typeCheck(['wrong.ts'])
  t.false(ok)
  t.regex(
    output,
    /wrong\.ts\(2,\d+\): error TS2345: Argument of type 'string' is not assignable to parameter of type 'number'/,
  )
})

test("a resource imported at the world's root is a class at the top level of Imports", async (t) => {
  // As the runtime takes it (README, Resources): `imports: { Counter }`, not the functions the
  // guest imports for it, which the declarations used to list as untyped keys.
  const rooted = engine.compileComponentSync(ROOT_COUNTER_WAT)
  const text = declarations(rooted)
  t.notRegex(text, /\[constructor\]|\[method\]/)
  writeFileSync(path.join(scratch, 'rooted.d.ts'), text)
  writeFileSync(
    path.join(scratch, 'use-rooted.ts'),
    `import type { Imports } from './rooted.js'
class Counter {
  constructor(public n: number) {}
  bump() {
    return ++this.n
  }
}
export const imports = { Counter } satisfies Imports
// @ts-expect-error bump must return a number
export const wrong = { Counter: class { constructor(_n: number) {} bump() { return 'x' } } } satisfies Imports
`,
  )
  const { ok, output } = await typeCheck(['use-rooted.ts'])
  t.true(ok, output)
})

/** A usage module, run: its values are what the declared types promised. */
async function run(name: keyof typeof fixtures, wasm: string): Promise<Record<string, unknown>> {
  const module = (await import(pathToFileURL(path.join(scratch, `use-${name}.ts`)).href)) as {
    use(engine: Engine, wasm: string): Promise<Record<string, unknown>>
  }
  return module.use(engine, wasm)
}

test('the typed resources usage runs: guest objects, typed arrays and the host’s own objects as declared', async (t) => {
  const values = await run('resources', resourcesWasm)
  t.is(values.after, 7)
  t.true(values.snapshot instanceof Float64Array)
  t.deepEqual(values.snapshot, new Float64Array([5, 7]))
  t.is((values.parts as unknown[]).length, 3)
  t.is((values.pair as { right: unknown }).right, undefined)
  t.true(values.bytes instanceof Uint8Array)
  t.true(values.broadcast instanceof Uint32Array)
  t.is((values.back as { prefix: string }).prefix, 'back')
  t.is(values.maybe, undefined)
})

test('the typed types usage runs: each value has the runtime type its declaration names', async (t) => {
  const values = await run('types', typesWasm)
  t.is(values.u64, 2n ** 64n - 1n)
  t.true(values.listU8 instanceof Uint8Array)
  t.true(values.listS16 instanceof Int16Array)
  t.true(values.listU64 instanceof BigUint64Array)
  t.true(values.listF32 instanceof Float32Array)
  t.deepEqual(values.record, { firstName: 'Ada', age: 36, tags: ['x'] })
  t.deepEqual(values.tuple, [1, 'a', 2.5])
  t.is(values.corner, 1)
  t.deepEqual(values.flags, { read: false, write: false, execNow: true })
  t.is(values.option, undefined)
  t.is(values.inner, undefined)
  t.is(values.firstError, 'no')
  t.deepEqual(values.unit, [{ tag: 'err' }])
  t.deepEqual(values.deep, {
    items: [['a', [{ tag: 'nothing' }, { tag: 'circle', val: 1 }]], undefined],
    inner: undefined,
  })
  t.deepEqual(values.many, [1, -2n, 'c', 0.5])
  t.true(values.echoedBytes instanceof Uint8Array)
  t.is(values.greeting, 'Hello, you!')
})

test('the typed hello usage runs', async (t) => {
  t.deepEqual(await run('hello', helloWasm), { greeting: 'Hello, world!' })
})

/**
 * What `Exports` (read from the generated file by the TypeScript compiler) declares: each key, and
 * for an object its members, for a class its statics and its objects' methods.
 */
interface DeclaredShape {
  kind: 'function' | 'class' | 'object'
  members?: Record<string, DeclaredShape>
  statics?: string[]
  methods?: string[]
}

let program: ts.Program | undefined

function declaredExports(file: string): Record<string, DeclaredShape> {
  // One program for every generated file: loading the standard library takes seconds.
  program ??= ts.createProgram(
    ['resources', 'types', 'hello', 'synthetic'].map((name) => path.join(scratch, `${name}.d.ts`)),
    {
      strict: true,
      lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
    },
  )
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)!
  const exportsSymbol = checker
    .getExportsOfModule(checker.getSymbolAtLocation(source)!)
    .find((s) => s.name === 'Exports')!
  const shape = (type: ts.Type): DeclaredShape => {
    if (type.getCallSignatures().length > 0) return { kind: 'function' }
    const constructs = type.getConstructSignatures()
    const properties = checker.getPropertiesOfType(type)
    const names = (symbols: readonly ts.Symbol[]) => symbols.map((symbol) => symbol.name).sort()
    if (constructs.length > 0 || properties.some((p) => p.name === 'prototype')) {
      const objects =
        constructs[0] === undefined ? [] : checker.getPropertiesOfType(constructs[0].getReturnType())
      const statics = properties.filter((p) => p.name !== 'prototype')
      return { kind: 'class', statics: names(statics), methods: names(objects) }
    }
    return {
      kind: 'object',
      members: Object.fromEntries(properties.map((p) => [p.name, shape(checker.getTypeOfSymbol(p))])),
    }
  }
  return shape(checker.getDeclaredTypeOfSymbol(exportsSymbol)).members ?? {}
}

/** The same description of the real `instance.exports`. */
function runtimeShape(value: unknown): DeclaredShape {
  if (typeof value === 'function') {
    const prototype = (value as { prototype?: object }).prototype
    const isClass = /^class\b/.test(Function.prototype.toString.call(value))
    if (!isClass || prototype === undefined) return { kind: 'function' }
    const methods = Reflect.ownKeys(prototype)
      .filter((key) => key !== 'constructor')
      .map((key) => (key === Symbol.dispose ? '__@dispose' : String(key)))
    // Statics are non-enumerable, like a class's own.
    const statics = Object.getOwnPropertyNames(value).filter(
      (key) =>
        !['length', 'name', 'prototype'].includes(key) &&
        typeof (value as unknown as Record<string, unknown>)[key] === 'function',
    )
    return { kind: 'class', statics: statics.sort(), methods: methods.sort() }
  }
  const members = Object.entries(value as Record<string, unknown>).map(([key, member]) => [
    key,
    runtimeShape(member),
  ])
  return { kind: 'object', members: Object.fromEntries(members) }
}

/** Declared shapes with TypeScript's name for `[Symbol.dispose]` (`__@dispose@123`) made stable. */
function stable(shape: DeclaredShape): DeclaredShape {
  const dispose = (names: string[] | undefined) =>
    names?.map((name) => name.replace(/^__@dispose@\d+$/, '__@dispose')).sort()
  return {
    kind: shape.kind,
    ...(shape.members && {
      members: Object.fromEntries(Object.entries(shape.members).map(([k, v]) => [k, stable(v)])),
    }),
    ...(shape.statics && { statics: dispose(shape.statics) }),
    ...(shape.methods && { methods: dispose(shape.methods) }),
  }
}

const instances: Record<keyof typeof fixtures, () => Instance> = {
  resources: () => {
    class Logger {
      log() {
        return 0
      }
      count() {
        return 0
      }
      static cloneWith() {
        return new Logger()
      }
    }
    return fixtures.resources.instantiateSync({
      limits: { memoryBytes: 4 << 20 },
      imports: { 'test:resources/host': { Logger, makeLogger: () => new Logger(), logAll: () => {} } },
    })
  },
  types: () => fixtures.types.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() }),
  hello: () => fixtures.hello.instantiateSync({ limits: { memoryBytes: 4 << 20 } }),
}

for (const name of Object.keys(fixtures) as (keyof typeof fixtures)[]) {
  test(`the declared Exports of ${name} is the shape of the real instance.exports: the same keys, functions and classes`, (t) => {
    const declared = stable({ kind: 'object', members: declaredExports(path.join(scratch, `${name}.d.ts`)) })
    const inst = instances[name]()
    t.deepEqual(declared, runtimeShape(inst.exports))
    inst.dispose()
  })
}

test('the resources declarations name the classes, methods and statics of both sides', (t) => {
  const exports = declaredExports(path.join(scratch, 'resources.d.ts'))
  const counter = stable(exports.api!.members!.Counter!)
  t.deepEqual(counter, {
    kind: 'class',
    statics: ['split'],
    methods: ['__@dispose', 'increment', 'merge', 'snapshot', 'value'],
  })
  const text = declarations(fixtures.resources)
  t.regex(
    text,
    /\nexport interface LoggerClass \{\n.*\n {2}new \(prefix: string\): Logger\n.*\n {2}cloneWith\(other: Logger, suffix: string\): Awaitable<Logger>\n\}/,
  )
  t.regex(
    text,
    /\n {2}keepLogger\(l: Logger\): number\n/,
    'a host resource an export takes is the host class’s object',
  )
  t.regex(text, /\n {2}\[Symbol\.dispose\]\?\(\): void\n/, 'a host object may define [Symbol.dispose]')
})

test('names stay distinct and shadow nothing: same-named resources are qualified, globals and keywords avoided', (t) => {
  const text = declarations(synthetic)
  // Two `thing`s: neither takes the bare name; `promise` cannot be `Promise`.
  t.regex(text, /\nexport interface AXThingsThing \{/)
  t.regex(
    text,
    /\nexport interface AXThingsThingClass \{\n.*\n {2}new \(in_: number\): AXThingsThing\n.*\n {2}'new'\(class_: string\): AXThingsThing\n\}/,
  )
  t.regex(text, /\nexport interface BYThingsThing \{/, 'the host’s thing is qualified by its package')
  t.regex(text, /\n {2}take\(t: BYThingsThing\): ThingsPromise\n/)
  t.regex(text, /\nexport interface ThingsPromiseClass \{\n.*\n {2}readonly prototype: ThingsPromise\n\}/)
  t.notRegex(text, /interface Promise\b/)
  // Two interfaces called `things`: no short key for either; WASI imports are the runtime's.
  t.regex(
    text,
    /export type Exports = \{\n {2}'a:x\/things': AXThingsExports\n {2}'b:z\/things': BZThingsExports\n\}/,
  )
  t.notRegex(text, /wasi:io/)
  t.regex(text, /\nexport type Imports = \{\n {2}'b:y\/things': ThingsImports\n\}/)
  t.regex(text, /\nexport interface ThingsImports \{\n.*\n {2}Thing: BYThingsThingClass\n\}/)
  t.regex(
    text,
    /\nexport interface BYThingsThingClass \{\n {2}new \(\.\.\.args: never\[\]\): BYThingsThing\n\}/,
  )
})

test('a guest static named prototype, which its class cannot hold, is not declared on the class', (t) => {
  // Probe Z60: the class's own `prototype` stays (the static is reached by its path only), and a
  // declared `prototype(): number` compiled and then threw "not a function".
  const guest = engine.compileComponentSync(PROTOTYPE_STATIC_WAT)
  const text = declarations(guest)
  t.regex(text, /\n {2}length\(\): number\n/)
  t.notRegex(text, /prototype\(/)
  t.regex(text, /\n {2}readonly prototype: Thing\n/, 'the class without a constructor has its prototype')
})

test('a host function for a result may return the result itself only with the tags its ok value cannot carry', (t) => {
  // `{ tag: 'err', val }` for `result<result<u32, u32>, u32>` is the ok value (jco and the addon
  // take it so): the type offered it as the result itself too.
  const u32: WitType = { kind: 'u32' }
  const inner: WitType = { kind: 'result', ok: u32, err: u32 }
  const variant: WitType = { kind: 'variant', cases: [{ name: 'err', type: u32 }, { name: 'x' }] }
  const text = declarations({
    exports: [],
    imports: [
      func('rr', [], { kind: 'result', ok: inner, err: u32 }),
      func('rv', [], { kind: 'result', ok: variant, err: u32 }),
      func('plain', [], { kind: 'result', ok: u32, err: { kind: 'string' } }),
    ],
  })
  t.regex(text, /\n {2}rr\(\): Awaitable<\{ tag: 'ok'; val: number \} \| \{ tag: 'err'; val: number \}>\n/)
  // Its doc says so too: only what the type takes.
  t.regex(text, /\. Return the ok value; throwing means err[^\n]*\*\/\n {2}rr\(\)/)
  t.regex(text, /\. Return the ok value or the result itself tagged 'ok'; throwing[^\n]*\*\/\n {2}rv\(\)/)
  t.regex(text, /\. Return the ok value or the result itself; throwing[^\n]*\*\/\n {2}plain\(\)/)
  t.regex(
    text,
    /\n {2}rv\(\): Awaitable<\{ tag: 'err'; val: number \} \| \{ tag: 'x' \} \| \{ tag: 'ok'; val: \{ tag: 'err'; val: number \} \| \{ tag: 'x' \} \}>\n/,
  )
  t.regex(
    text,
    /\n {2}plain\(\): Awaitable<number \| \{ tag: 'ok'; val: number \} \| \{ tag: 'err'; val: string \}>\n/,
  )
})

test('flags and optional fields named as what every object inherits may be left out, as at run time', async (t) => {
  // TypeScript reads a left-out `constructor` as the inherited Function, which `boolean` refused:
  // `{ read: true }` did not compile where the runtime takes it (probe Y: 416 tsc errors).
  const perms: WitType = { kind: 'flags', names: ['read', 'constructor', 'to-string', 'value-of'] }
  const options: WitType = {
    kind: 'record',
    fields: [
      { name: 'to-locale-string', type: { kind: 'option', element: { kind: 'u32' } } },
      { name: 'x', type: { kind: 'u32' } },
    ],
  }
  writeFileSync(
    path.join(scratch, 'inherited.d.ts'),
    declarations({
      exports: [
        func(
          'set',
          [
            ['p', perms],
            ['o', options],
          ],
          perms,
        ),
      ],
      imports: [func('get', [], perms), func('opts', [], options)],
    }),
  )
  writeFileSync(
    path.join(scratch, 'use-inherited.ts'),
    `import type { Exports, Imports } from './inherited.js'
export const imports = { get: () => ({ read: true }), opts: () => ({ x: 1 }) } satisfies Imports
export function use(e: Exports): boolean {
  const back = e.set({ toString: true }, { x: 2 })
  // What the guest gives is its own booleans.
  const set: boolean = back.constructor && back.toString && back.valueOf && back.read
  // @ts-expect-error a flag is a boolean
  e.set({ read: 1 }, { x: 2 })
  return set
}
`,
  )
  const { ok, output } = await typeCheck(['use-inherited.ts'])
  t.true(ok, output)
})

test('a case whose payload an option takes may leave its val out, as at run time; other payloads may not', async (t) => {
  // Probe Z54: `{ tag: 'some' }` for an option<option<u32>> and `{ tag: 'ok' }` for a
  // result<option<T>, E> in a value both convert (val reads as undefined: none), yet the generated
  // types required `val`, and tsc --strict refused the calls.
  const optional: WitType = { kind: 'option', element: { kind: 'u32' } }
  const nested: WitType = { kind: 'option', element: optional }
  const result: WitType = { kind: 'result', ok: optional, err: { kind: 'u32' } }
  const variant: WitType = {
    kind: 'variant',
    cases: [
      { name: 'maybe', type: optional },
      { name: 'must', type: { kind: 'u32' } },
    ],
  }
  writeFileSync(
    path.join(scratch, 'payloads.d.ts'),
    declarations({
      exports: [
        func(
          'take',
          [
            ['n', nested],
            ['r', { kind: 'list', element: result }],
            ['v', variant],
          ],
          nested,
        ),
      ],
      imports: [],
    }),
  )
  writeFileSync(
    path.join(scratch, 'use-payloads.ts'),
    `import type { Exports } from './payloads.js'
export function use(e: Exports): number | undefined {
  const back = e.take({ tag: 'some' }, [{ tag: 'ok' }, { tag: 'err', val: 1 }], { tag: 'maybe' })
  // @ts-expect-error a payload no option takes must be given
  e.take({ tag: 'none' }, [{ tag: 'err' }], { tag: 'must' })
  // What the guest gives has its val.
  return back.tag === 'some' ? back.val : 0
}
`,
  )
  const { ok, output } = await typeCheck(['use-payloads.ts'])
  t.true(ok, output)
})

test('HostFunctions is Imports without the reference interfaces a sandbox links from its grants', async (t) => {
  // `hostFunctions satisfies Imports` failed for loadComponent: Imports wants airssys:host/http,
  // which the sandbox links itself (probe R).
  const fetchType: WitType = { kind: 'result', ok: { kind: 'string' }, err: { kind: 'string' } }
  writeFileSync(
    path.join(scratch, 'linked.d.ts'),
    declarations({
      exports: [],
      imports: [
        {
          name: 'airssys:host/http@0.1.0',
          kind: 'instance',
          type: 'instance',
          exports: [func('fetch', [['url', { kind: 'string' }]], fetchType)],
        },
        {
          name: 'my:app/kv',
          kind: 'instance',
          type: 'instance',
          exports: [func('get', [['key', { kind: 'string' }]], { kind: 'string' })],
        },
      ],
    }),
  )
  writeFileSync(
    path.join(scratch, 'use-linked.ts'),
    `import type { HostFunctions, Imports } from './linked.js'
const kv = { get: (key: string) => key }
export const hostFunctions = { 'my:app/kv': kv } satisfies HostFunctions
export const overridden = { 'my:app/kv': kv, 'airssys:host/http@0.1.0': { fetch: (url: string) => url } } satisfies HostFunctions
// @ts-expect-error a bare instance has no sandbox to link airssys:host/http
export const imports = { 'my:app/kv': kv } satisfies Imports
// @ts-expect-error the host's own interfaces are still required
export const missing = {} satisfies HostFunctions
`,
  )
  const { ok, output } = await typeCheck(['use-linked.ts'])
  t.true(ok, output)
})

test('an interface both imported and exported has the guest resource in Exports and the host one in Imports', async (t) => {
  // One map held both under one key: the guest's class was typed as the host's (its methods
  // Awaitable, its [Symbol.dispose] optional) and no guest type was written (probe N2).
  const side = (imported: boolean): ComponentItem => ({
    name: 'p:q/r',
    kind: 'instance',
    type: 'instance',
    exports: [
      { name: 'thing', kind: 'resource', type: 'resource' },
      func('[constructor]thing', [['x', { kind: 'u32' }]], own('thing', 'p:q/r', imported)),
      func(
        '[method]thing.get',
        [['self', { kind: 'borrow', resource: 'thing', interface: 'p:q/r', imported }]],
        { kind: 'u32' },
      ),
    ],
  })
  writeFileSync(
    path.join(scratch, 'both.d.ts'),
    declarations({ exports: [side(false)], imports: [side(true)] }),
  )
  writeFileSync(
    path.join(scratch, 'use-both.ts'),
    `import type { Exports, Imports } from './both.js'
export function use(e: Exports): number {
  const thing = new e.r.Thing(1)
  const n: number = thing.get()
  thing[Symbol.dispose]()
  return n
}
class HostThing {
  constructor(public x: number) {}
  async get() {
    return this.x
  }
}
export const imports = { 'p:q/r': { Thing: HostThing } } satisfies Imports
`,
  )
  const { ok, output } = await typeCheck(['use-both.ts'])
  t.true(ok, output)
})

test('an imported interface of resources alone is in Imports, as the linker wants its object', (t) => {
  // It was left out (`Imports = Record<string, never>`) though the instance could not link
  // without its object (probe H15); one whose resources another interface defined needs none.
  const component = new Engine().compileComponentSync(`(component
    (import "a:b/handles" (instance $h (export "handle" (type (sub resource)))))
    (alias export $h "handle" (type $handle))
    (import "a:b/uses" (instance (export "handle" (type (eq $handle)))))
  )`)
  const text = declarations(component)
  t.regex(text, /\n {2}'a:b\/handles': \w+\n/)
  t.notRegex(text, /'a:b\/uses'/)
  // Its classes are optional: a resource with no functions needs none (an empty object links),
  // and one given is taken, as the LinkError asks for it (H16: it was typed Record<string, never>).
  t.regex(text, /\n {2}Handle\?: abstract new \(\.\.\.args: never\[\]\) => \w+\n/)
  const linked = component.instantiateSync({
    limits: { memoryBytes: 1 << 16 },
    imports: { 'a:b/handles': {} },
  })
  t.false(linked.disposed)
  t.throws(() => component.instantiateSync({ limits: { memoryBytes: 1 << 16 } }), { message: /a:b\/handles/ })
})

test('Imports leaves out only the WASI the runtime provides, as the runtime tells', (t) => {
  // Every wasi:* import was left out, wasi:logging and WASI 0.3 too, which the host must give
  // (probe N2: `Imports = Record<string, never>` for a guest that fails to link without them); a
  // runtime interface with a member the runtime lacks was left out too (H14).
  const component = new Engine().compileComponentSync(`(component
    (import "wasi:cli/environment@0.2.0" (instance (export "get-arguments" (func (result (list string))))))
    (import "wasi:random/random@0.2.9" (instance (export "get-random-u64" (func (result u64)))))
    (import "wasi:random/insecure@0.2.3" (instance
      (export "get-insecure-random-u64" (func (result u64)))
      (export "nope" (func (result u32)))))
    (import "wasi:logging/logging@0.1.0-draft" (instance (export "f" (func))))
    (import "wasi:random/random@0.3.0" (instance (export "f" (func))))
    (import "wasi:random/random@0.2.3-rc.1" (instance (export "f" (func))))
    (import "wasi:cli/nope@0.2.3" (instance (export "f" (func))))
  )`)
  const served = component.imports.filter((item) => item.providedByRuntime === true).map((item) => item.name)
  t.deepEqual(served, ['wasi:cli/environment@0.2.0', 'wasi:random/random@0.2.9'])
  const text = declarations(component)
  t.notRegex(text, /'wasi:cli\/environment@0\.2\.0':|'wasi:random\/random@0\.2\.9':/)
  t.regex(text, /'wasi:random\/insecure@0\.2\.3': /, 'a runtime interface with a member it lacks')
  t.regex(text, /\n {2}nope\(\): Awaitable<number>\n/)
  t.regex(text, /'wasi:cli\/nope@0\.2\.3': /, 'an interface WASI 0.2 does not have here')
  t.regex(text, /'wasi:logging\/logging@0\.1\.0-draft': /)
  t.regex(text, /'wasi:random\/random@0\.3\.0': /)
  t.regex(text, /'wasi:random\/random@0\.2\.3-rc\.1': /)
})
