/**
 * Component resources with a wit-bindgen guest (fixtures/resources; what a correct host sees is in
 * fixtures/resources/EXPECTED.md): guest resources as JS objects of a class per type, own moves and
 * borrow lends, deterministic drops, host resources implemented by a JS class, the cap on live
 * handles, and the types the listings give them.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

import test, { type ExecutionContext } from 'ava'

import { resourcesWasm, typesImports, typesWasm, wasiComponentWasm } from '../fixtures/index.js'
import {
  AbortError,
  BusyError,
  ComponentError,
  DisposedError,
  Engine,
  HostError,
  HostLimitError,
  InstancePoisonedError,
  type Instance,
  LinkError,
  TimeoutError,
  UnreachableError,
  WasiExitError,
  WasmTypeError,
  type Component,
  type ComponentItem,
  type WitType,
} from '../lib/index.js'
import { InstanceResources } from '../lib/resources.js'
import {
  BUMP_MEMORY_WAT,
  disposingLoggerImports,
  MiB,
  processWarnings,
  PROTOTYPE_STATIC_WAT,
  ROOT_COUNTER_WAT,
} from './helpers.js'

const engine = new Engine()
const component = await engine.compileComponent(resourcesWasm)
test.after.always(() => engine.close())

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** The host's logger, recording what the guest makes it do. */
function hostImports(events: string[]) {
  class Logger {
    lines: string[] = []
    constructor(public prefix: string) {
      events.push(`new ${prefix}`)
    }
    log(msg: string) {
      events.push(`log ${this.prefix} ${msg}`)
      this.lines.push(`${this.prefix}: ${msg}`)
      return this.lines.length
    }
    count() {
      return this.lines.length
    }
    static cloneWith(other: Logger, suffix: string) {
      events.push(`cloneWith ${other.prefix}`)
      return new Logger(other.prefix + suffix)
    }
    [Symbol.dispose]() {
      events.push(`dispose ${this.prefix}`)
    }
  }
  return {
    Logger,
    imports: {
      'test:resources/host': {
        Logger,
        makeLogger: (prefix: string) => new Logger(prefix),
        logAll: (loggers: Logger[], msg: string) => loggers.forEach((logger) => logger.log(msg)),
      },
    },
  }
}

function instance(events: string[] = []): Instance {
  return component.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: hostImports(events).imports })
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the shape comes from the component */
const api = (inst: Instance) => inst.exports['test:resources/api'] as any
const usesHost = (inst: Instance) => inst.exports['test:resources/uses-host'] as any

test('a guest resource is an object of its class: constructor, methods and statics call the guest', (t) => {
  const inst = instance()
  const { Counter, Blob } = api(inst)
  const counter = new Counter(5)
  t.true(counter instanceof Counter)
  t.is(Counter.name, 'Counter')
  // Not "Class constructor cls": the class carries its resource's name where V8 names it too.
  t.throws(() => Counter(5), {
    instanceOf: TypeError,
    message: /^Class constructors? (Counter )?cannot be invoked/,
  })
  t.is(counter.increment(3), 8)
  t.is(counter.value(), 8)
  t.deepEqual(counter.snapshot(), new Float64Array([5, 8]))
  t.deepEqual(
    Counter.split(10, 3).map((part: any) => part.value()),
    [4, 3, 3],
  )
  t.deepEqual(Counter.split(5, 0), [])
  const blob = new Blob(new Uint8Array([1, 2, 3]))
  t.is(blob.size(), 3)
  t.deepEqual(blob.bytes(), new Uint8Array([1, 2, 3]))
  // The short interface name is the same object.
  t.is(inst.exports.api, inst.exports['test:resources/api'])
})

test('inst.exports also answers to WIT names and to an interface without its @version, without listing them twice', async (t) => {
  const types = await engine.compileComponent(typesWasm)
  const inst = types.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: typesImports() })
  const exports = inst.exports as Record<string, any>
  t.is(exports['roundtrip-u8'], exports.roundtripU8)
  t.is(exports['roundtrip-u8'](7), 7)
  t.is(exports['test:types/numbers'], exports['test:types/numbers@0.1.0'])
  t.is(exports['test:types/numbers'].add(2, 3), 5)
  t.is(exports.numbers, exports['test:types/numbers'])
  // The aliases are not enumerated: the keys stay jco's.
  const keys = Object.keys(exports)
  t.true(keys.includes('roundtripU8'))
  t.false(keys.includes('roundtrip-u8'))
  t.false(keys.includes('test:types/numbers'))
  t.deepEqual(Object.keys(exports.numbers), ['add', 'greet'])
  // Nothing comes through the prototype chain.
  t.false(Object.hasOwn(exports, 'toString'))
  // Frozen, as an ES module namespace is: shared by every user of the instance.
  t.true(Object.isFrozen(exports))
  t.true(Object.isFrozen(exports.numbers))
  t.throws(
    () => {
      exports.numbers.add = () => 0
    },
    { instanceOf: TypeError },
  )
  inst.dispose()
  // A function of an interface too.
  const withResources = instance()
  t.is(api(withResources)['make-pair'], api(withResources).makePair)
  t.false(Object.keys(api(withResources)).includes('make-pair'))
})

test('borrow lends (the object stays usable); own moves (the object is unusable afterwards)', (t) => {
  const inst = instance()
  const { Counter, sum, consume, dropped, live } = api(inst)
  const c = new Counter(8)
  const d = new Counter(2)
  c.merge(d)
  t.is(c.value(), 10)
  t.is(d.value(), 2)
  c.merge(c)
  t.is(c.value(), 20)
  t.is(sum([c, d, d]), 24)
  t.is(live(), 2)
  t.is(consume(d), 2)
  t.is(dropped(), 1, 'the guest dropped the moved counter')
  t.is(live(), 1)
  const error = t.throws(() => d.value(), { instanceOf: DisposedError })
  t.regex(error?.message ?? '', /moved into the guest/)
  t.throws(() => sum([d]), { instanceOf: DisposedError })
})

test('[Symbol.dispose] runs the guest destructor once; use afterwards is a DisposedError', (t) => {
  const inst = instance()
  const { Counter, dropped, live } = api(inst)
  const c = new Counter(1)
  t.is(live(), 1)
  c[Symbol.dispose]()
  t.is(dropped(), 1)
  t.is(live(), 0)
  c[Symbol.dispose]()
  t.is(dropped(), 1, 'a second dispose does nothing')
  t.throws(() => c.value(), { instanceOf: DisposedError, message: /dropped/ })
  {
    using scoped = new Counter(2)
    t.is(scoped.value(), 2)
  }
  t.is(dropped(), 2, '`using` drops at the end of the block')
  t.is(inst.metrics().calls > 0, true)
})

test('a resource a component exports at its root is an object of its class too, dropped by [Symbol.dispose]', (t) => {
  // Probe Z44: a resource exported at the root (not in an interface) came to JS as the bare token,
  // with no class, no methods and no [Symbol.dispose]: the host could never drop it.
  const rooted = engine.compileComponentSync(`(component
    (core module $m
      (global $drops (export "drops") (mut i32) (i32.const 0))
      (func (export "dtor") (param i32) (global.set $drops (i32.add (global.get $drops) (i32.const 1))))
      (func (export "rep") (param i32) (result i32) (local.get 0)))
    (core instance $i (instantiate $m))
    (type $r (resource (rep i32) (dtor (core func $i "dtor"))))
    (core func $new (canon resource.new $r))
    (core module $m2
      (import "" "new" (func $new (param i32) (result i32)))
      (import "" "drops" (global $drops (mut i32)))
      (func (export "make") (param i32) (result i32) (call $new (local.get 0)))
      ;; A borrow of its own resource type reaches the guest as the representation itself.
      (func (export "value") (param i32) (result i32) (local.get 0))
      (func (export "drops") (result i32) (global.get $drops)))
    (core instance $i2 (instantiate $m2 (with "" (instance
      (export "new" (func $new)) (export "drops" (global $i "drops"))))))
    (export $rx "r" (type $r))
    (func (export "make") (param "v" u32) (result (own $rx)) (canon lift (core func $i2 "make")))
    (func (export "[method]r.value") (param "self" (borrow $rx)) (result u32) (canon lift (core func $i2 "value")))
    (func (export "drops") (result u32) (canon lift (core func $i2 "drops"))))`)
  const inst = rooted.instantiateSync({ limits: { memoryBytes: 1 << 20 } })
  const exports = inst.exports as any
  const made = exports.make(7)
  t.is(made.constructor.name, 'R')
  t.is(made.value(), 7)
  t.is(exports.drops(), 0)
  made[Symbol.dispose]()
  t.is(exports.drops(), 1, 'the guest destructor ran')
  t.throws(() => made.value(), { instanceOf: DisposedError })
  inst.dispose()
})

test('a resource object collected without dispose is dropped at the next call', async (t) => {
  const inst = instance()
  const { Counter, dropped, live } = api(inst)
  ;(() => {
    for (let i = 0; i < 5; i++) new Counter(i)
  })()
  t.is(live(), 5)
  for (let round = 0; round < 10 && live() > 0; round++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.is(live(), 0)
  t.is(dropped(), 5)
})

test('resources inside records, options and lists come and go as objects', (t) => {
  const inst = instance()
  const { Counter, makePair, maybe } = api(inst)
  const pair = makePair(1, 2)
  t.true(pair.left instanceof Counter)
  t.is(pair.left.value() + pair.right.value(), 3)
  const single = makePair(3, undefined)
  t.is(single.right, undefined)
  t.deepEqual(single.left.snapshot(), new Float64Array([3]))
  const given = new Counter(7)
  const back = maybe(given)
  t.is(back.value(), 7)
  t.throws(() => given.value(), { instanceOf: DisposedError })
  t.is(maybe(undefined), undefined)
})

test('the path API takes wasmtime names, async and sync, with the same objects', async (t) => {
  const inst = instance()
  const counter = (await inst.call('test:resources/api#[constructor]counter', [5])) as any
  t.is(counter.constructor.name, 'Counter')
  t.is(await inst.call('test:resources/api#[method]counter.increment', [counter, 2]), 7)
  t.is(inst.callSync('test:resources/api#[method]counter.value', [counter]), 7)
  const parts = (await inst.call('test:resources/api#[static]counter.split', [6, 2])) as any[]
  t.deepEqual(
    parts.map((part) => part.value()),
    [3, 3],
  )
  t.is(await inst.call('test:resources/api#consume', [counter]), 7)
  await t.throwsAsync(inst.call('test:resources/api#[method]counter.value', [counter]), {
    instanceOf: DisposedError,
  })
})

test("another instance's resource, or a plain value, is a WasmTypeError naming the parameter", (t) => {
  const one = instance()
  const two = instance()
  const foreign = new (api(two).Counter)(1)
  t.throws(() => api(one).sum([foreign]), { instanceOf: WasmTypeError, message: /another instance/ })
  t.throws(() => api(one).consume(42), { instanceOf: WasmTypeError, message: /param "c"/ })
})

test("a root resource of another type is the caller's WasmTypeError, and poisons nothing", async (t) => {
  // wasmtime refused the handle in the call, as the guest's ABI error, and the instance was
  // poisoned over the caller's mistake (probe Z21). Root resources now have classes (probe Z44),
  // which tell the types apart before the addon's own check does.
  const twoTypes = await engine.compileComponent(`(component
    (type $a (resource (rep i32)))
    (type $b (resource (rep i32)))
    (core func $newA (canon resource.new $a))
    (core func $newB (canon resource.new $b))
    (core module $m
      (import "r" "a" (func $a (param i32) (result i32)))
      (import "r" "b" (func $b (param i32) (result i32)))
      (func (export "make-a") (result i32) (call $a (i32.const 1)))
      (func (export "make-b") (result i32) (call $b (i32.const 2)))
      (func (export "keep") (param i32))
      (func (export "keep-two") (param i32 i32)))
    (core instance $i (instantiate $m (with "r" (instance (export "a" (func $newA)) (export "b" (func $newB))))))
    (export $A "a" (type $a))
    (export $B "b" (type $b))
    (func (export "make-a") (result (own $A)) (canon lift (core func $i "make-a")))
    (func (export "make-b") (result (own $B)) (canon lift (core func $i "make-b")))
    (func (export "keep") (param "x" (borrow $A)) (canon lift (core func $i "keep")))
    (func (export "take") (param "x" (own $A)) (canon lift (core func $i "keep")))
    (func (export "take-lend") (param "x" (own $A)) (param "y" (borrow $A)) (canon lift (core func $i "keep-two")))
    (func (export "take-two") (param "x" (own $A)) (param "y" (own $A)) (canon lift (core func $i "keep-two")))
    (func (export "lend-two") (param "x" (borrow $A)) (param "y" (borrow $A)) (canon lift (core func $i "keep-two"))))`)
  const inst = twoTypes.instantiateSync({ limits: { memoryBytes: 1 << 20 } })
  const b = inst.callSync('make-b')
  const wrongType = { instanceOf: WasmTypeError, message: /param "x": expected an A, got a B/ }
  t.throws(() => inst.callSync('keep', [b]), wrongType)
  await t.throwsAsync(inst.call('keep', [b]), wrongType)
  t.throws(() => inst.callSync('take', [b]), wrongType)
  t.false(inst.poisoned)
  t.is(inst.callSync('keep', [inst.callSync('make-a')]), undefined)
  // One handle moved twice, or moved and lent, in one call: the caller's mistake too (probe H29).
  const a = inst.callSync('make-a')
  t.throws(() => inst.callSync('take-two', [a, a]), {
    instanceOf: WasmTypeError,
    message: /take-two: param "y": expected an A not also passed elsewhere in this call/,
  })
  await t.throwsAsync(inst.call('take-lend', [a, a]), {
    instanceOf: WasmTypeError,
    message: /param "y": expected an A not also moved in this call/,
  })
  t.false(inst.poisoned)
  t.is(inst.callSync('lend-two', [a, a]), undefined, 'lent twice is fine')
  t.is(inst.callSync('take', [a]), undefined, 'and the handle is still there to move')
})

test('disposing an object a pending call holds waits for that call, and disposing another does not race it', async (t) => {
  // Probe Z60: `p = inst.call(method, [c]); c[Symbol.dispose]()` on an idle instance settled
  // three ways (ok, WasmTypeError, BusyError): the drop ran on the JS thread before the call
  // reached the pool. Many trials, since it was a race.
  const path = 'test:resources/api#'
  const shapes: Array<[string, (c: unknown) => unknown[], RegExp]> = [
    ['[method]counter.value', (c) => [c], /dropped/],
    ['sum', (c) => [[c, c]], /dropped/],
    ['consume', (c) => [c], /moved into the guest/],
  ]
  for (const [name, args, gone] of shapes) {
    for (let trial = 0; trial < 40; trial++) {
      const inst = instance()
      const { Counter, dropped, live } = api(inst)
      const c = new Counter(5)
      const pending = inst.call(`${path}${name}`, args(c))
      c[Symbol.dispose]()
      t.is(await pending, name === 'sum' ? 10 : 5, `${name}, trial ${trial}`)
      t.throws(() => c.value(), { instanceOf: DisposedError, message: gone })
      // A lent object's drop waited for the call, and runs at the start of the next one.
      t.is(dropped(), 1, `${name}, trial ${trial}: the destructor ran once`)
      t.is(live(), 0)
      c[Symbol.dispose]()
      t.is(dropped(), 1)
    }
  }
  for (let trial = 0; trial < 40; trial++) {
    const inst = instance()
    const { Counter, dropped, live } = api(inst)
    const [a, b] = [new Counter(1), new Counter(2)]
    const pending = inst.call(`${path}[method]counter.value`, [a])
    b[Symbol.dispose]()
    t.is(await pending, 1, `trial ${trial}: the call is not refused as busy`)
    t.is(dropped(), 1)
    t.is(live(), 1)
    t.is(a.value(), 1)
  }
  // A call refused for its options held nothing: what it was given drops at once.
  const inst = instance()
  const { Counter, dropped } = api(inst)
  const c = new Counter(3)
  t.throws(() => inst.callSync(`${path}[method]counter.value`, [c], { timeoutMs: -1 }))
  c[Symbol.dispose]()
  t.is(dropped(), 1)
})

/**
 * A component whose resource `r`'s destructor calls WASI's `exit(ok)`, with exports `ping() -> u32`
 * and `touch()` (which calls the host function `h`, when `withHost`, and counts).
 */
function exitingDestructor(withHost: boolean): Component {
  return engine.compileComponentSync(`(component
    (import "wasi:cli/exit@0.2.0" (instance $e (export "exit" (func (param "status" (result))))))
    (alias export $e "exit" (func $exit))
    (core func $exit (canon lower (func $exit)))
    (core module $d (import "x" "exit" (func $exit (param i32))) (func (export "dtor") (param i32) i32.const 0 call $exit))
    (core instance $di (instantiate $d (with "x" (instance (export "exit" (func $exit))))))
    (alias core export $di "dtor" (core func $dtor))
    (type $r (resource (rep i32) (dtor (core func $dtor))))
    (core func $new (canon resource.new $r))
    ${withHost ? '(import "h" (func $h)) (core func $h (canon lower (func $h)))' : ''}
    (core module $m (import "x" "new" (func $new (param i32) (result i32)))
      ${withHost ? '(import "x" "h" (func $h))' : ''}
      (global $n (mut i32) (i32.const 0))
      (func (export "ctor") (result i32) i32.const 5 call $new)
      (func (export "touch") ${withHost ? 'call $h' : ''} global.get $n i32.const 1 i32.add global.set $n)
      (func (export "ping") (result i32) global.get $n))
    (core instance $i (instantiate $m (with "x" (instance (export "new" (func $new)) ${withHost ? '(export "h" (func $h))' : ''}))))
    (func $ctor (result (own $r)) (canon lift (core func $i "ctor")))
    (func (export "ping") (result u32) (canon lift (core func $i "ping")))
    (func (export "touch") (canon lift (core func $i "touch")))
    (component $api
      (import "r" (type $R (sub resource)))
      (import "ctor" (func $c (result (own $R))))
      (export $exported "r" (type $R))
      (export "[constructor]r" (func $c) (func (result (own $exported)))))
    (instance $api (instantiate $api (with "r" (type $r)) (with "ctor" (func $ctor))))
    (export "t:t/api" (instance $api)))`)
}

test('exit(0) in a guest destructor ends the drop, and one deferred to a call fails that call, which did not run', async (t) => {
  // Probe H70: run at once, the drop threw a WasiExitError, uncounted; deferred to the next call
  // (the instance had a host function), it was taken as that call's own exit: a call declaring a
  // value failed for it, and one declaring none "succeeded" without running.
  const atOnce = exitingDestructor(false).instantiateSync({ limits: { memoryBytes: MiB } })
  const { R } = atOnce.exports['t:t/api'] as { R: new () => Disposable }
  t.notThrows(() => new R()[Symbol.dispose](), 'a destructor declares no value: exit(0) ends it')
  t.like(atOnce.metrics(), { traps: 0 })
  for (const [name, how] of [
    ['touch', 'callSync'],
    ['ping', 'callSync'],
    ['touch', 'call'],
  ] as const) {
    let hostCalls = 0
    const deferred = exitingDestructor(true).instantiateSync({
      limits: { memoryBytes: MiB },
      imports: { h: () => void hostCalls++ },
    })
    const { R: Deferred } = deferred.exports['t:t/api'] as { R: new () => Disposable }
    new Deferred()[Symbol.dispose]()
    const failed = await (async () =>
      how === 'call' ? deferred.call(name) : deferred.callSync(name))().then(
      (value: unknown) => t.fail(`${how} ${name} returned ${String(value)}`),
      (thrown: unknown) => thrown,
    )
    t.true(failed instanceof WasiExitError, `${how} ${name}: ${String(failed)}`)
    t.like(failed, { exitCode: 0 })
    t.regex((failed as Error).message, /in the destructor of a resource .* this call did not run/)
    t.is(hostCalls, 0, 'the call did not run')
    t.like(deferred.metrics(), { traps: 1 })
  }
})

test('a resource whose instance is gone is a DisposedError where another instance is passed it', async (t) => {
  // A sandbox replaces its instance after a failed call: the caller's objects from the old one
  // were refused as "a resource of another instance", a WasmTypeError, as if the caller had
  // mixed instances up (probe R).
  const old = instance()
  const counter = new (api(old).Counter)(1)
  old.dispose()
  const fresh = instance()
  const message =
    /param "items": list index 0: the Counter belonged to an instance that is gone \(disposed, or replaced by its sandbox after a failed call\)/
  t.throws(() => api(fresh).sum([counter]), { instanceOf: DisposedError, message })
  await t.throwsAsync(fresh.call('test:resources/api#sum', [[counter]]), {
    instanceOf: DisposedError,
    message,
  })
  t.throws(() => counter.value(), { instanceOf: DisposedError })
  t.is(api(fresh).sum([new (api(fresh).Counter)(2)]), 2)
})

test("a class's [Symbol.dispose] refuses another instance's object, as its other members do", (t) => {
  const one = instance()
  const two = instance()
  const foreign = new (api(two).Counter)(1)
  const dispose = api(one).Counter.prototype[Symbol.dispose] as (this: object) => void
  t.throws(() => dispose.call(foreign), { instanceOf: WasmTypeError, message: /another instance/ })
  t.is(api(two).live(), 1, "the other instance's object is untouched")
  t.is(foreign.value(), 1)
  t.throws(() => dispose.call({}), { instanceOf: WasmTypeError })
})

test('a guest resource class may be extended: new on the subclass makes an object of the subclass', (t) => {
  const inst = instance()
  const { Counter } = api(inst) as {
    Counter: new (start: number) => Disposable & { increment(by: number): number; value(): number }
  }
  class Named extends Counter {
    label = 'named'
    twice(): number {
      return this.increment(this.value())
    }
  }
  const named = new Named(4)
  t.true(named instanceof Named)
  t.true(named instanceof Counter)
  t.is(named.label, 'named')
  t.is(named.twice(), 8)
  t.is(api(inst).sum([named, new Counter(1)]), 9, 'it is still a counter to the guest')
  named[Symbol.dispose]()
  t.is(api(inst).live(), 1)
})

test("inst.exports functions are named and sized as jco's: roundtripU8, one parameter", (t) => {
  const inst = instance()
  const consume = api(inst).consume as (...args: unknown[]) => unknown
  t.is(consume.name, 'consume')
  t.is(consume.length, 1)
  const withLogger = usesHost(inst).withLogger as (...args: unknown[]) => unknown
  t.is(withLogger.name, 'withLogger')
  t.is(withLogger.length, 2)
})

test('a resource of the wrong type is a WasmTypeError naming where it is, and the instance stays usable', (t) => {
  const inst = instance()
  const blob = new (api(inst).Blob)(new Uint8Array([1]))
  const counter = new (api(inst).Counter)(2)
  t.throws(() => counter.merge(blob), {
    instanceOf: WasmTypeError,
    message: /param "other": expected a Counter, got a Blob/,
  })
  t.throws(() => api(inst).consume(blob), {
    instanceOf: WasmTypeError,
    message: /param "c": expected a Counter/,
  })
  t.throws(() => api(inst).sum([counter, blob]), {
    instanceOf: WasmTypeError,
    message: /param "items": list index 1: expected a Counter, got a Blob/,
  })
  t.throws(() => usesHost(inst).keepLogger(counter), {
    instanceOf: WasmTypeError,
    message: /param "l": expected a Logger \(the host's class\), got a Counter/,
  })
  // A wrong count names the resource types (they read `borrow<resource>` before).
  t.throws(() => (counter.merge as (...args: unknown[]) => void)(), {
    instanceOf: WasmTypeError,
    message:
      /counter\.merge: expected 2 argument\(s\) \(self: borrow<counter>, other: borrow<counter>\), got 1$/,
  })
  t.throws(() => inst.callSync('test:resources/api#consume', []), {
    instanceOf: WasmTypeError,
    message: /consume: expected 1 argument\(s\) \(c: own<counter>\), got 0$/,
  })
  t.false(inst.poisoned)
  t.is(blob.size(), 1, 'nothing was moved')
  t.is(api(inst).consume(counter), 2)
})

test("a value that is not a resource is a WasmTypeError naming the parameter, for the guest's resources and the host's", (t) => {
  const events: string[] = []
  const { Logger, imports } = hostImports(events)
  const inst = component.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports })
  t.throws(() => usesHost(inst).keepLogger({}), {
    instanceOf: WasmTypeError,
    message: /keep-logger: param "l": expected a Logger \(the host's class\), got an object/,
  })
  t.throws(() => usesHost(inst).roundTrip({ a: 1 }), { instanceOf: WasmTypeError, message: /param "l"/ })
  t.throws(() => api(inst).consume({}), {
    instanceOf: WasmTypeError,
    message: /param "c": expected a Counter, got an object/,
  })
  t.throws(() => api(inst).consume(new Logger('x')), {
    instanceOf: WasmTypeError,
    message: /param "c": expected a Counter, got a Logger/,
  })
  t.false(inst.poisoned)
  const logger = new Logger('kept')
  t.notThrows(() => usesHost(inst).keepLogger(logger))
  t.is(usesHost(inst).roundTrip(new Logger('back')).prefix, 'back')
})

test("what the caller's getter throws while a resource argument is read is a WasmTypeError, in call and callSync", async (t) => {
  const inst = instance()
  const args: unknown[] = [undefined]
  Object.defineProperty(args, 0, {
    get() {
      throw new RangeError('getter boom')
    },
  })
  t.throws(() => inst.callSync('test:resources/api#consume', args), {
    instanceOf: WasmTypeError,
    message: /reading the arguments threw: getter boom/,
  })
  await t.throwsAsync(inst.call('test:resources/api#consume', args), {
    instanceOf: WasmTypeError,
    message: /reading the arguments threw: getter boom/,
  })
})

test('a call refused before it reaches the guest does not move its own arguments', async (t) => {
  const inst = instance()
  const counter = new (api(inst).Counter)(3)
  t.throws(() => api(inst).consume(counter, 1), { instanceOf: WasmTypeError })
  t.is(counter.value(), 3)
  await t.throwsAsync(inst.call('test:resources/api#consume', [counter], { signal: AbortSignal.abort() }), {
    name: 'AbortError',
  })
  await t.throwsAsync(inst.call('test:resources/api#consume', [counter, 'extra']), {
    instanceOf: WasmTypeError,
  })
  t.is(counter.value(), 3, 'still usable')
  t.is(await inst.call('test:resources/api#consume', [counter]), 3)
  t.throws(() => counter.value(), { instanceOf: DisposedError, message: /moved into the guest/ })
  t.is(api(inst).live(), 0, 'nothing leaked')
})

test('after the instance is disposed, its resources throw DisposedError', (t) => {
  const inst = instance()
  const counter = new (api(inst).Counter)(1)
  inst.dispose()
  t.throws(() => counter.value(), { instanceOf: DisposedError })
  t.notThrows(() => counter[Symbol.dispose]())
})

test('a host resource is the JS class: the guest constructs, calls, clones and drops its objects', (t) => {
  const events: string[] = []
  const inst = instance(events)
  const uses = usesHost(inst)
  t.is(uses.withLogger('a', ['x', 'y']), 2)
  t.deepEqual(events.splice(0), ['new a', 'log a x', 'log a y', 'dispose a'])
  t.is(uses.viaStatic('v'), 1)
  t.deepEqual(events.splice(0), [
    'new v',
    'cloneWith v',
    'new v-clone',
    'log v-clone from clone',
    'dispose v-clone',
    'dispose v',
  ])
  t.is(uses.made('m'), 2)
  t.deepEqual(events.splice(0), ['new m', 'log m one', 'log m two', 'dispose m'])
  t.deepEqual(uses.broadcast(['p', 'q'], 'hi'), new Uint32Array([1, 1]))
  t.deepEqual(events.splice(0), ['new p', 'new q', 'log p hi', 'log q hi', 'dispose p', 'dispose q'])
})

test('host objects cross both ways: own given to the guest is disposed when it drops it; one returned is the same object', async (t) => {
  const events: string[] = []
  const { Logger, imports } = hostImports(events)
  const inst = await component.instantiate({ limits: { memoryBytes: 4 << 20 }, imports })
  const kept = new Logger('k')
  t.is(await inst.call('test:resources/uses-host#keep-logger', [kept]), 1)
  t.deepEqual(kept.lines, ['k: kept'])
  await new Promise((resolve) => setImmediate(resolve))
  t.true(events.includes('dispose k'))
  const mine = new Logger('r')
  t.is(usesHost(inst).roundTrip(mine), mine)
  t.false(events.includes('dispose r'))
})

test('a poisoned or disposed instance refuses a call before it reads the arguments', async (t) => {
  // Probe Z50: 16 MiB given to a poisoned instance's export took the JS thread 2-3 s to convert,
  // only to be refused with InstancePoisonedError.
  const inst = instance()
  t.throws(() => usesHost(inst).spam(20_000), { instanceOf: HostLimitError })
  t.true(inst.poisoned)
  let reads = 0
  const counted = new Proxy([1, 2, 3], {
    get: (target, key, receiver) => {
      reads += 1
      return Reflect.get(target, key, receiver)
    },
  })
  const blob = 'test:resources/api#[constructor]blob'
  t.throws(() => inst.callSync(blob, [counted]), { instanceOf: InstancePoisonedError })
  await t.throwsAsync(inst.call(blob, [counted]), { instanceOf: InstancePoisonedError })
  t.is(reads, 0, 'no element read')
  const disposed = instance()
  disposed.dispose()
  t.throws(() => disposed.callSync(blob, [counted]), { instanceOf: DisposedError })
  t.is(reads, 0)
})

test('live handles are capped: past 10,000 the guest call fails with HostLimitError, and disposing the instance disposes what it held', async (t) => {
  const events: string[] = []
  const inst = instance(events)
  t.is(usesHost(inst).spam(3), 3)
  usesHost(inst).release()
  t.deepEqual(
    events.filter((event) => event.startsWith('dispose')),
    ['dispose spam-0', 'dispose spam-1', 'dispose spam-2'],
  )
  events.length = 0
  const error = t.throws(() => usesHost(inst).spam(20_000), { instanceOf: HostLimitError })
  t.is(error?.code, 'ERR_WASM_HOST_LIMIT')
  // The 10,001st object is made by the constructor, then refused: the guest never held it, and
  // it is disposed, as the constructor gave it up.
  t.is(events.filter((event) => event.startsWith('new')).length, 10_001)
  const made = 10_001
  inst.dispose()
  for (let round = 0; round < 20 && events.filter((e) => e.startsWith('dispose')).length < made; round++) {
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.is(
    events.filter((event) => event.startsWith('dispose')).length,
    made,
    'each held logger disposed exactly once',
  )
})

test('the listings name resource types', (t) => {
  const apiItem = component.exports.find((item) => item.name === 'test:resources/api')
  const consume = apiItem?.exports?.find((item) => item.name === 'consume')
  t.is(consume?.type, 'func(c: own<counter>) -> s32')
  t.deepEqual(consume?.func?.params[0]?.type, {
    kind: 'own',
    resource: 'counter',
    interface: 'test:resources/api',
    imported: false,
  })
  t.deepEqual(apiItem?.exports?.find((item) => item.name === 'counter')?.members, {
    constructor: '[constructor]counter',
    methods: [
      '[method]counter.increment',
      '[method]counter.value',
      '[method]counter.snapshot',
      '[method]counter.merge',
    ],
    statics: ['[static]counter.split'],
  })
  // A resource without a constructor has none: `constructor` is no inherited `Object` either (typed
  // `string | undefined`, it read as a function).
  const wasi = engine.compileComponentSync(wasiComponentWasm)
  const streams = wasi.imports.find((item) => item.name.startsWith('wasi:io/streams@'))
  const input = streams?.exports?.find((item) => item.name === 'input-stream')?.members
  t.true((input?.methods.length ?? 0) > 0)
  t.is(input?.constructor, undefined)
  t.deepEqual(Object.keys(input ?? {}), ['methods', 'statics'])
  const host = component.imports.find((item) => item.name === 'test:resources/host')
  const make = host?.exports?.find((item) => item.name === 'make-logger')
  t.is(make?.type, 'func(prefix: string) -> own<logger>')
  t.is((make?.func?.result as { imported?: boolean } | undefined)?.imported, true)
})

test("what a caller does to a component's listings changes no one else's, nor any instance's exports", (t) => {
  // Probe Z48: the listing was one shared array; emptying an interface's `exports` there left a
  // later instance's `inst.exports.api` without `Counter`, for every holder of the same bytes.
  const shared = engine.compileComponentSync(resourcesWasm)
  const listing = shared.exports
  const apiItem = listing.find((item) => item.name === 'test:resources/api')
  apiItem?.exports?.splice(0)
  listing.push({ name: 'pwned', kind: 'func', type: 'func()' })
  t.not(shared.exports, listing)
  t.false(shared.exports.some((item) => item.name === 'pwned'))
  t.true((shared.exports.find((item) => item.name === 'test:resources/api')?.exports?.length ?? 0) > 0)
  const again = engine.compileComponentSync(resourcesWasm)
  t.false(again.exports.some((item) => item.name === 'pwned'))
  const inst = again.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports: hostImports([]).imports })
  t.is(typeof api(inst).Counter, 'function')
  t.false('pwned' in inst.exports)
})

test('during call, a host resource may answer with Promises: constructor objects and async methods are awaited', async (t) => {
  const events: string[] = []
  class Logger {
    lines: string[] = []
    constructor(public prefix: string) {
      events.push(`new ${prefix}`)
    }
    async log(msg: string) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      this.lines.push(msg)
      return this.lines.length
    }
    async count() {
      return this.lines.length
    }
    static cloneWith(other: Logger, suffix: string) {
      return new Logger(other.prefix + suffix)
    }
    [Symbol.dispose]() {
      events.push(`dispose ${this.prefix}`)
    }
  }
  const inst = await component.instantiate({
    limits: { memoryBytes: 4 << 20 },
    imports: {
      'test:resources/host': {
        Logger,
        makeLogger: async (prefix: string) => new Logger(prefix),
        logAll: () => {},
      },
    },
  })
  t.is(await inst.call('test:resources/uses-host#with-logger', ['a', ['x', 'y', 'z']]), 3)
  t.is(await inst.call('test:resources/uses-host#made', ['m']), 2)
  await new Promise((resolve) => setImmediate(resolve))
  t.deepEqual(events, ['new a', 'dispose a', 'new m', 'dispose m'])
  // callSync cannot wait for a Promise: a HostError says so, and the instance is poisoned.
  const error = t.throws(() => inst.callSync('test:resources/uses-host#with-logger', ['s', ['x']]))
  t.regex(error?.message ?? '', /Promise on the JS thread \(callSync, instantiateSync\)/)
})

test('a host class without a method the guest imports is a LinkError naming it with its resource types', (t) => {
  const error = t.throws(
    () =>
      component.instantiateSync({
        limits: { memoryBytes: 4 << 20 },
        imports: {
          'test:resources/host': {
            Logger: class {
              log() {
                return 1
              }
              count() {
                return 1
              }
            },
            makeLogger: () => undefined,
            logAll: () => undefined,
          },
        },
      }),
    { instanceOf: LinkError },
  )
  t.regex(
    error?.message ?? '',
    /\[static\]logger\.clone-with: func\(other: borrow<logger>, suffix: string\) -> own<logger>/,
  )
})

/** A guest whose imported resource declares members every JS object or class inherits. */
const INHERITED_MEMBERS_WAT = `(component
  (import "test:proto/host" (instance $h
    (export "logger" (type (sub resource)))
    (export "[constructor]logger" (func (param "prefix" string) (result (own 0))))
    (export "[method]logger.to-locale-string" (func (param "self" (borrow 0)) (result string)))
    (export "[static]logger.to-string" (func (result string)))
    (export "[static]logger.is" (func (result bool)))
    (export "[method]logger.constructor" (func (param "self" (borrow 0)) (result string)))
  ))
  (alias export $h "logger" (type $logger))
  (alias export $h "[constructor]logger" (func $ctor))
  (alias export $h "[method]logger.to-locale-string" (func $ts))
  (alias export $h "[method]logger.constructor" (func $mc))
  (alias export $h "[static]logger.to-string" (func $sts))
  (core module $mem
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $r i32)
      global.get $bump local.set $r
      local.get $r local.get 3 i32.add global.set $bump local.get $r)
    (data (i32.const 16) "pfx"))
  (core instance $m (instantiate $mem))
  (alias core export $m "memory" (core memory $memory))
  (alias core export $m "realloc" (core func $realloc))
  (core func $ctor_l (canon lower (func $ctor) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core func $sts_l (canon lower (func $sts) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core func $ts_l (canon lower (func $ts) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core func $mc_l (canon lower (func $mc) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core module $main
    (import "h" "ctor" (func $ctor (param i32 i32) (result i32)))
    (import "h" "ts" (func $ts (param i32 i32)))
    (import "h" "sts" (func $sts (param i32)))
    (import "h" "mc" (func $mc (param i32 i32)))
    (func (export "probe-static") (result i32) i32.const 64 call $sts i32.const 64)
    (func (export "probe") (result i32)
      i32.const 16 i32.const 3 call $ctor
      i32.const 64 call $ts
      i32.const 64)
    (func (export "probe-constructor") (result i32)
      i32.const 16 i32.const 3 call $ctor
      i32.const 64 call $mc
      i32.const 64))
  (core instance $i (instantiate $main (with "h" (instance (export "ctor" (func $ctor_l)) (export "ts" (func $ts_l)) (export "sts" (func $sts_l)) (export "mc" (func $mc_l))))))
  (func (export "probe") (result string) (canon lift (core func $i "probe") (memory $memory) (realloc $realloc) string-encoding=utf8))
  (func (export "probe-static") (result string) (canon lift (core func $i "probe-static") (memory $memory) (realloc $realloc) string-encoding=utf8))
  (func (export "probe-constructor") (result string) (canon lift (core func $i "probe-constructor") (memory $memory) (realloc $realloc) string-encoding=utf8))
)`

test("a guest reaches nothing a host class inherits from Object or Function: only the class's own members", (t) => {
  const guest = engine.compileComponentSync(INHERITED_MEMBERS_WAT)
  class Logger {
    constructor(public prefix: string) {}
  }
  // [static]logger.to-string would be Function.prototype.toString (the class's source): not linked.
  t.throws(
    () =>
      guest.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { 'test:proto/host': { Logger } } }),
    { instanceOf: LinkError, message: /\[static\]logger\.to-string/ },
  )
  // Nor through a class that extends one of JS's own: Object.toString is not the class's API.
  const FromObject = class extends Object {}
  t.throws(
    () =>
      guest.instantiateSync({
        limits: { memoryBytes: 1 << 20 },
        imports: { 'test:proto/host': { Logger: FromObject } },
      }),
    { instanceOf: LinkError, message: /\[static\]logger\.is/ },
  )
  const WithStatic = class extends Logger {
    static is() {
      return true
    }
    static override toString() {
      return 'static of its own'
    }
  }
  const inst = guest.instantiateSync({
    limits: { memoryBytes: 1 << 20 },
    imports: { 'test:proto/host': { Logger: WithStatic } },
  })
  t.is(inst.callSync('probe-static'), 'static of its own')
  // A proxied class is still the host's class: its statics are found through the proxy.
  const proxied = guest.instantiateSync({
    limits: { memoryBytes: 1 << 20 },
    imports: { 'test:proto/host': { Logger: new Proxy(WithStatic, {}) } },
  })
  t.is(proxied.callSync('probe-static'), 'static of its own')
  // [method]logger.to-locale-string would be Object.prototype.toLocaleString: a HostError instead.
  t.throws(() => inst.callSync('probe'), {
    instanceOf: HostError,
    message: /Logger has no method toLocaleString/,
  })
  // [method]logger.constructor would be the class itself, found on its prototype: a class written
  // as a function would run again on an object it made, with the guest's arguments (probe Z60).
  let runs = 0
  function Plain(this: { prefix: string }, prefix: string) {
    runs++
    this.prefix = prefix
  }
  Object.assign(Plain, { is: () => true, toString: () => 'a static of its own' })
  for (const Logger of [Plain, WithStatic]) {
    const constructing = guest.instantiateSync({
      limits: { memoryBytes: 1 << 20 },
      imports: { 'test:proto/host': { Logger } },
    })
    t.throws(() => constructing.callSync('probe-constructor'), {
      instanceOf: HostError,
      message: /Logger has no method constructor/,
    })
  }
  t.is(runs, 1, 'the host constructor ran for the object only')
})

/**
 * A guest whose imports return `result`s holding the host's `logger`: `make` as its ok value,
 * `refuse` as its err. Each export returns the handle it got, or 1000 + the err's (ok's for
 * `refuse`) first byte.
 */
const RESULT_RESOURCES_WAT = `(component
  (import "test:x/host" (instance $h
    (export "logger" (type (sub resource)))
    (export "make" (func (param "mode" u32) (result (result (own 0) (error string)))))
    (export "refuse" (func (param "mode" u32) (result (result u32 (error (own 0))))))
  ))
  (alias export $h "make" (func $make))
  (alias export $h "refuse" (func $refuse))
  ${BUMP_MEMORY_WAT}
  (core func $make_l (canon lower (func $make) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core func $refuse_l (canon lower (func $refuse) (memory $memory)))
  (core module $main
    (import "h" "make" (func $make (param i32 i32)))
    (import "h" "refuse" (func $refuse (param i32 i32)))
    (import "m" "memory" (memory 1))
    (func $answer (result i32)
      i32.const 64 i32.load8_u
      if (result i32) i32.const 68 i32.load8_u i32.const 1000 i32.add else i32.const 68 i32.load end)
    (func (export "make") (param i32) (result i32) local.get 0 i32.const 64 call $make call $answer)
    (func (export "refuse") (param i32) (result i32)
      local.get 0 i32.const 64 call $refuse
      i32.const 64 i32.load8_u
      if (result i32) i32.const 68 i32.load else i32.const 68 i32.load8_u i32.const 1000 i32.add end))
  (core instance $i (instantiate $main (with "m" (instance $m))
    (with "h" (instance (export "make" (func $make_l)) (export "refuse" (func $refuse_l))))))
  (func (export "make") (param "mode" u32) (result u32) (canon lift (core func $i "make")))
  (func (export "refuse") (param "mode" u32) (result u32) (canon lift (core func $i "refuse")))
)`

test("a host function returning a result checks the host's objects in its ok value and in the err it throws", async (t) => {
  // These functions were not checked: any object the host returned (or threw) became a handle
  // of the guest's logger, whose methods the guest then calls.
  const guest = engine.compileComponentSync(RESULT_RESOURCES_WAT)
  class Logger {}
  class Other {}
  const host = {
    Logger,
    make: (mode: number) => [new Logger(), {}, new Other(), undefined][mode],
    refuse: async (mode: number) => {
      if (mode === 0) throw Object.assign(new Error('no'), { payload: new Logger() })
      if (mode === 1) throw new Logger()
      if (mode === 2) throw Object.assign(new Error('no'), { payload: new Other() })
      if (mode === 3) throw new Error('not an err at all')
      return 7
    },
  }
  const inst = guest.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { 'test:x/host': host } })
  const fresh = () =>
    guest.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { 'test:x/host': host } })
  t.is(inst.callSync('make', [0]), 1, "the host's object is the guest's first handle")
  t.throws(() => fresh().callSync('make', [1]), {
    instanceOf: HostError,
    message: /test:x\/host#make returned an object where the guest takes a Logger/,
  })
  t.throws(() => fresh().callSync('make', [2]), { instanceOf: HostError, message: /returned an Other where/ })
  t.throws(() => fresh().callSync('make', [3]), {
    instanceOf: HostError,
    message: /returned undefined where/,
  })

  t.is(await inst.call('refuse', [0]), 2, 'an err payload of the host class is a handle')
  t.is(await inst.call('refuse', [1]), 3, 'so is an instance thrown as it is')
  t.is(await inst.call('refuse', [4]), 1007, 'the ok value')
  const wrongPayload = await t.throwsAsync(fresh().call('refuse', [2]), { instanceOf: HostError })
  t.regex(
    wrongPayload?.message ?? '',
    /refuse threw an err payload holding an Other where the guest takes a Logger/,
  )
  const notAnErr = await t.throwsAsync(fresh().call('refuse', [3]), { instanceOf: HostError })
  t.regex(notAnErr?.message ?? '', /refuse threw an Error where the guest takes a Logger/)
  t.is(((notAnErr?.cause as Error).cause as Error).message, 'not an err at all')
  t.false(inst.poisoned)
  t.is(inst.callSync('make', [0]), 4)
})

test('a host function may return the result itself, with host objects on either side, checked as well', async (t) => {
  // `{ tag: 'ok', val }` is the result itself (README, Host functions): its val was checked as
  // if it were the ok value, so a Logger inside it was refused as "an object".
  const guest = engine.compileComponentSync(RESULT_RESOURCES_WAT)
  class Logger {}
  class Other {}
  const host = {
    Logger,
    make: async (mode: number) =>
      [
        { tag: 'ok', val: new Logger() },
        { tag: 'err', val: 'no' },
        { tag: 'ok', val: new Other() },
      ][mode],
    refuse: (mode: number) =>
      [
        { tag: 'err', val: new Logger() },
        { tag: 'ok', val: 7 },
        { tag: 'err', val: {} },
      ][mode],
  }
  const fresh = () =>
    guest.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { 'test:x/host': host } })
  const inst = fresh()
  t.is(await inst.call('make', [0]), 1, 'a tagged ok holding a Logger is a handle')
  t.true(((await inst.call('make', [1])) as number) >= 1000, 'a tagged err is the err')
  t.is(inst.callSync('refuse', [0]), 2, 'a tagged err holding a Logger is a handle')
  t.is(inst.callSync('refuse', [1]), 1007)
  await t.throwsAsync(fresh().call('make', [2]), {
    instanceOf: HostError,
    message: /returned an Other where/,
  })
  t.throws(() => fresh().callSync('refuse', [2]), {
    instanceOf: HostError,
    message: /returned an object where/,
  })
  t.false(inst.poisoned)
})

test('a thrown err payload that is none is none to the host resource check too', async (t) => {
  // The check read an own `payload: undefined` as no payload and checked the thrown Error as a
  // Logger, while the addon (and jco) take it as the payload: option's none.
  const guest = engine.compileComponentSync(`(component
    (import "test:x/host" (instance $h
      (export "logger" (type (sub resource)))
      (export "maybe" (func (param "mode" u32) (result (result u32 (error (option (own 0)))))))
    ))
    (alias export $h "maybe" (func $maybe))
    ${BUMP_MEMORY_WAT}
    (core func $maybe_l (canon lower (func $maybe) (memory $memory)))
    (core module $main
      (import "h" "maybe" (func $maybe (param i32 i32)))
      (import "m" "memory" (memory 1))
      (func (export "maybe") (param i32) (result i32)
        local.get 0 i32.const 64 call $maybe
        i32.const 64 i32.load8_u
        if (result i32) i32.const 68 i32.load8_u i32.const 1 i32.add else i32.const 0 end))
    (core instance $i (instantiate $main (with "m" (instance $m)) (with "h" (instance (export "maybe" (func $maybe_l))))))
    (func (export "maybe") (param "mode" u32) (result u32) (canon lift (core func $i "maybe")))
  )`)
  class Logger {}
  const maybe = (mode: number) => {
    if (mode === 0) throw Object.assign(new Error('none'), { payload: undefined })
    if (mode === 1) throw Object.assign(new Error('some'), { payload: new Logger() })
    throw Object.assign(new Error('some other'), { payload: {} })
  }
  const inst = guest.instantiateSync({
    limits: { memoryBytes: 1 << 20 },
    imports: { 'test:x/host': { Logger, maybe } },
  })
  t.is(inst.callSync('maybe', [0]), 1, 'err(none)')
  t.is(await inst.call('maybe', [1]), 2, 'err(some(logger))')
  t.throws(() => inst.callSync('maybe', [2]), {
    instanceOf: HostError,
    message: /maybe threw an err payload holding an object where the guest takes a Logger/,
  })
})

test("a host function returning an own of the host's resource must return an instance of the host's class", async (t) => {
  const events: string[] = []
  const { Logger, imports } = hostImports(events)
  const host = imports['test:resources/host'] as Record<string, unknown>
  const plain = { log: () => 42, count: () => 0 }
  const withPlain = (overrides: Record<string, unknown>) =>
    component.instantiateSync({
      limits: { memoryBytes: 4 << 20 },
      imports: { 'test:resources/host': { ...host, ...overrides } },
    })
  const sync = withPlain({ makeLogger: () => plain })
  t.throws(() => usesHost(sync).made('p'), {
    instanceOf: HostError,
    message: /make-logger returned an object where the guest takes a Logger/,
  })
  t.throws(() => usesHost(withPlain({ makeLogger: () => undefined })).made('p'), {
    instanceOf: HostError,
    message: /make-logger returned undefined where the guest takes a Logger/,
  })
  const async = withPlain({ makeLogger: async () => plain })
  await t.throwsAsync(async.call('test:resources/uses-host#made', ['p']), { instanceOf: HostError })
  const statics = withPlain({
    Logger: class extends Logger {
      static override cloneWith() {
        return plain as unknown as InstanceType<typeof Logger>
      }
    },
  })
  t.throws(() => usesHost(statics).viaStatic('p'), {
    instanceOf: HostError,
    message: /clone-with returned an object/,
  })
  // The host's own objects still go through, subclasses too, from a Promise of another realm, and
  // from a function the imports hold as a non-enumerable property (the addon links those too).
  const fine = withPlain({ makeLogger: (prefix: string) => new (class extends Logger {})(prefix) })
  t.true(usesHost(fine).made('p') >= 0)
  const otherRealm = runInNewContext('(make) => async (prefix) => make(prefix)') as (
    make: (prefix: string) => unknown,
  ) => (prefix: string) => Promise<unknown>
  const realm = withPlain({ makeLogger: otherRealm((prefix) => new Logger(prefix)) })
  t.true(((await realm.call('test:resources/uses-host#made', ['p'])) as number) >= 0)
  const hidden = { ...host }
  delete hidden.makeLogger
  Object.defineProperty(hidden, 'makeLogger', {
    value: (prefix: string) => new Logger(prefix),
    enumerable: false,
  })
  const nonEnumerable = component.instantiateSync({
    limits: { memoryBytes: 4 << 20 },
    imports: { 'test:resources/host': hidden },
  })
  t.true(usesHost(nonEnumerable).made('p') >= 0)
})

test("a host class whose constructor returns some other object is the host's failure: the guest never holds it", (t) => {
  const { imports } = hostImports([])
  const stranger = { log: () => 4242, count: () => 0 }
  class Logger {
    constructor() {
      return stranger
    }
    log(): number {
      return 0
    }
    count(): number {
      return 0
    }
    static cloneWith(): Logger {
      return new Logger()
    }
  }
  const host = imports['test:resources/host']
  const inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20 },
    imports: { ...imports, 'test:resources/host': { ...host, Logger } },
  })
  const error = t.throws(() => usesHost(inst).withLogger('a', ['x']), { instanceOf: HostError })
  t.regex(String((error?.cause as Error | undefined)?.message), /where the guest takes a Logger/)
})

test("an export taking a borrow of the host's resource is lent the host's object for the call", async (t) => {
  const guest = engine.compileComponentSync(`(component
    (import "test:x/host" (instance $h
      (export "logger" (type $l (sub resource)))
      (export "[method]logger.log" (func (param "self" (borrow $l)) (param "m" string) (result u32)))))
    (alias export $h "logger" (type $logger))
    (alias export $h "[method]logger.log" (func $llog))
    (core module $d (memory (export "mem") 1) (data (i32.const 100) "abc"))
    (core instance $di (instantiate $d))
    (core func $llog (canon lower (func $llog) (memory (core memory $di "mem")) string-encoding=utf8))
    (core func $ldrop (canon resource.drop $logger))
    (core module $m
      (import "h" "llog" (func $llog (param i32 i32 i32) (result i32)))
      (import "h" "ldrop" (func $ldrop (param i32)))
      ;; A callee ends each borrow it was given before it returns.
      (func (export "use") (param i32) (result i32)
        (call $llog (local.get 0) (i32.const 100) (i32.const 3)) (call $ldrop (local.get 0))))
    (core instance $i (instantiate $m (with "h" (instance (export "llog" (func $llog)) (export "ldrop" (func $ldrop))))))
    (func (export "use") (param "l" (borrow $logger)) (result u32) (canon lift (core func $i "use"))))`)
  const seen: string[] = []
  class Logger {
    log(message: string) {
      seen.push(message)
      return seen.length
    }
    [Symbol.dispose]() {
      seen.push('disposed')
    }
  }
  const inst = guest.instantiateSync({
    limits: { memoryBytes: 1 << 20 },
    imports: { 'test:x/host': { Logger } },
  })
  const logger = new Logger()
  t.is(inst.callSync('use', [logger]), 1)
  t.is(await inst.call('use', [logger]), 2)
  t.is((inst.exports as { use(l: Logger): number }).use(logger), 3)
  t.deepEqual(seen, ['abc', 'abc', 'abc'], "lent, never disposed: the object stays the host's")
  t.false(inst.poisoned)
})

test('with two versions of one interface exported, the name without @version means the first on every path', async (t) => {
  const guest = engine.compileComponentSync(`(component
    (core module $m
      (func (export "one") (result i32) i32.const 1)
      (func (export "two") (result i32) i32.const 2))
    (core instance $i (instantiate $m))
    (func $one (result u32) (canon lift (core func $i "one")))
    (func $two (result u32) (canon lift (core func $i "two")))
    (instance $v1 (export "get" (func $one)))
    (instance $v2 (export "get" (func $two)))
    (export "a:x/api@0.1.0" (instance $v1))
    (export "a:x/api@0.2.0" (instance $v2)))`)
  const inst = guest.instantiateSync({ limits: { memoryBytes: 1 << 16 } })
  const exports = inst.exports as Record<string, { get(): number }>
  t.is(exports['a:x/api']!.get(), 1)
  t.is(inst.callSync('a:x/api#get', []), 1)
  t.is(await inst.call('a:x/api#get'), 1)
  t.is((inst.function('a:x/api#get') as () => number)(), 1)
  t.is(inst.callSync('a:x/api@0.2.0#get', []), 2, 'the version, named, reaches the other')
  t.is(exports['a:x/api@0.2.0']!.get(), 2)
})

test('a resource class without a constructor, or with a static named prototype, is refused in typed terms', (t) => {
  // `prototype` is a legal WIT name: a static of that name cannot sit on a class, and made
  // instantiation throw a bare TypeError. It stays callable by its path.
  const guest = engine.compileComponentSync(PROTOTYPE_STATIC_WAT)
  const inst = guest.instantiateSync({ limits: { memoryBytes: 1 << 16 } })
  const api = inst.exports['test:x/api'] as { Thing: (new () => object) & { length: () => number } }
  t.is(api.Thing.length(), 7)
  t.is(inst.callSync('test:x/api#[static]thing.prototype', []), 7)
  t.throws(() => new api.Thing(), {
    instanceOf: WasmTypeError,
    code: 'ERR_WASM_TYPE',
    message: 'test:x/api: the resource thing has no constructor',
  })
})

test("a guest destructor that traps when JS disposes the resource is the trap's own error class", (t) => {
  const guest = engine.compileComponentSync(`(component
    (core module $d
      (global $mode (export "mode") (mut i32) (i32.const 0))
      (func (export "dtor") (param i32) (if (i32.eq (global.get $mode) (i32.const 1)) (then unreachable))))
    (core instance $di (instantiate $d))
    (type $r (resource (rep i32) (dtor (core func $di "dtor"))))
    (core func $rnew (canon resource.new $r))
    (core module $m
      (import "h" "mode" (global $mode (mut i32)))
      (import "h" "rnew" (func $rnew (param i32) (result i32)))
      (func (export "ctor") (param i32) (result i32) (global.set $mode (local.get 0)) (call $rnew (local.get 0))))
    (core instance $i (instantiate $m (with "h" (instance (export "mode" (global $di "mode")) (export "rnew" (func $rnew))))))
    (func $ctor (param "mode" u32) (result (own $r)) (canon lift (core func $i "ctor")))
    (component $shim
      (import "thing" (type $t (sub resource)))
      (import "ctor" (func $c (param "mode" u32) (result (own $t))))
      (export $T "thing" (type $t))
      (export "[constructor]thing" (func $c) (func (param "mode" u32) (result (own $T)))))
    (instance $api (instantiate $shim (with "thing" (type $r)) (with "ctor" (func $ctor))))
    (export "test:x/api" (instance $api)))`)
  const inst = guest.instantiateSync({ limits: { memoryBytes: 1 << 20 } })
  const api = inst.exports['test:x/api'] as { Thing: new (mode: number) => Disposable }
  const thing = new api.Thing(1)
  t.throws(() => thing[Symbol.dispose](), { instanceOf: UnreachableError, code: 'ERR_WASM_TRAP_UNREACHABLE' })
  t.true(inst.poisoned)
})

test('an imported resource that the world or another interface uses is one type: its class is given once', (t) => {
  // WIT's `use onlyres.{thing}` in an interface, and in the world itself, imports `thing` again
  // under those names as the same type; the linker gave each name a type of its own.
  const component = engine.compileComponentSync(`(component $C
    (import "t:k/onlyres" (instance $only
      (export "thing" (type $t (sub resource)))
      (export "[method]thing.get" (func (param "self" (borrow $t)) (result u32)))))
    (alias export $only "thing" (type $thing))
    (import "t:k/resuse" (instance $use
      (alias outer $C $thing (type $outer))
      (export "thing" (type (eq $outer)))))
    (alias export $use "thing" (type $used))
    (import "thing" (type $root (eq $thing)))
    (alias export $only "[method]thing.get" (func $get))
    (core func $get_core (canon lower (func $get)))
    (core func $drop_core (canon resource.drop $used))
    (core module $m
      (import "h" "get" (func $get (param i32) (result i32)))
      (import "h" "drop" (func $drop (param i32)))
      (func (export "f") (param i32) (result i32) (local $r i32)
        (local.set $r (call $get (local.get 0)))
        (call $drop (local.get 0))
        (local.get $r)))
    (core instance $i (instantiate $m (with "h" (instance
      (export "get" (func $get_core)) (export "drop" (func $drop_core))))))
    (func (export "f") (param "t" (borrow $used)) (result u32) (canon lift (core func $i "f"))))`)
  class Thing {
    get() {
      return 7
    }
  }
  // No object for t:k/resuse, and no class at the root: the one in t:k/onlyres serves all three.
  const inst = component.instantiateSync({
    limits: { memoryBytes: 1 << 16 },
    imports: { 't:k/onlyres': { Thing } },
  })
  t.is(inst.callSync('f', [new Thing()]), 7)
  t.throws(() => component.instantiateSync({ limits: { memoryBytes: 1 << 16 } }), {
    instanceOf: LinkError,
    message: /missing import\(s\): t:k\/onlyres \(an object with class Thing, \[method\]thing\.get\)/,
  })
})

test('a resource imported at the root is a top-level class in the imports', (t) => {
  const rooted = engine.compileComponentSync(ROOT_COUNTER_WAT)
  t.is(
    rooted.imports.find((item) => item.name === '[constructor]counter')?.type,
    'func(start: u32) -> own<counter>',
  )
  const events: string[] = []
  class Counter {
    constructor(public n: number) {
      events.push(`new ${n}`)
    }
    bump() {
      return ++this.n
    }
    [Symbol.dispose]() {
      events.push(`dispose ${this.n}`)
    }
  }
  const inst = rooted.instantiateSync({ limits: { memoryBytes: 1 << 16 }, imports: { Counter } })
  t.is(inst.callSync('run', [5]), 7)
  t.deepEqual(events, ['new 5', 'dispose 7'])
})

test("a host object passed to a call refused before the guest ran stays the host's", async (t) => {
  // A call made from inside a host function meets its own instance busy, after its arguments
  // were converted: the object it would have given the guest was kept in the instance until the
  // instance went, and disposed then as if the guest had dropped it.
  const events: string[] = []
  let inst: Instance | undefined
  let refusal: unknown
  class Logger {
    constructor(public prefix: string) {}
    log() {
      try {
        usesHost(inst!).keepLogger(stray)
      } catch (error) {
        refusal = error
      }
      return 1
    }
    count() {
      return 0
    }
    static cloneWith(other: Logger) {
      return other
    }
    [Symbol.dispose]() {
      events.push(`dispose ${this.prefix}`)
    }
  }
  const stray = new Logger('stray')
  inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20 },
    imports: {
      'test:resources/host': { Logger, makeLogger: (p: string) => new Logger(p), logAll: () => {} },
    },
  })
  t.is(usesHost(inst).withLogger('inner', ['a']), 0)
  t.true(refusal instanceof BusyError, String(refusal))
  t.deepEqual(events, ['dispose inner'])
  inst.dispose()
  // What the instance held is disposed on the JS thread's next turn.
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.deepEqual(events, ['dispose inner'], 'the stray logger never reached the guest')
})

test("host objects of a call refused for a later argument stay the host's", async (t) => {
  // Converted before the bad argument (or the bad element of the same list), the objects were
  // kept in the instance and disposed when it went, as if the guest had dropped them.
  const guest = engine.compileComponentSync(`(component
    (import "counter" (type $counter (sub resource)))
    (core module $m
      (memory (export "memory") 1)
      (global $next (mut i32) (i32.const 1024))
      (func (export "realloc") (param i32 i32 i32 i32) (result i32)
        (global.get $next) (global.set $next (i32.add (global.get $next) (local.get 3))))
      (func (export "pair") (param i32 i32) (result i32) (local.get 1))
      (func (export "many") (param i32 i32) (result i32) (local.get 1)))
    (core instance $i (instantiate $m))
    (func (export "pair") (param "c" (own $counter)) (param "n" u32) (result u32)
      (canon lift (core func $i "pair")))
    (func (export "many") (param "cs" (list (tuple (own $counter) u32))) (result u32)
      (canon lift (core func $i "many") (memory (core memory $i "memory")) (realloc (core func $i "realloc")))))`)
  const events: string[] = []
  class Counter {
    constructor(public name: string) {}
    [Symbol.dispose]() {
      events.push(`dispose ${this.name}`)
    }
  }
  const inst = guest.instantiateSync({ limits: { memoryBytes: 1 << 16 }, imports: { Counter } })
  t.throws(() => inst.callSync('pair', [new Counter('first'), 'not a u32']), { instanceOf: WasmTypeError })
  t.throws(
    () =>
      inst.callSync('many', [
        [
          [new Counter('a'), 1],
          [new Counter('b'), -1],
        ],
      ]),
    {
      instanceOf: WasmTypeError,
    },
  )
  inst.dispose()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.deepEqual(events, [], 'none of them reached the guest')
})

test("resources in an export's err payload are objects of their classes, and are not leaked", async (t) => {
  // `fail` returns err(own<thing>) for the guest's resource, `fail-host` err(own<counter>) for the
  // host's it was given: the payload used to be unconvertible (ERR_WASM_INTERNAL) and its handles
  // stayed in the instance, one more per call, until it met limits.resourceHandles.
  const guest = engine.compileComponentSync(`(component
    (import "counter" (type $counter (sub resource)))
    (core module $d (func (export "dtor") (param i32)))
    (core instance $di (instantiate $d))
    (type $thing (resource (rep i32) (dtor (core func $di "dtor"))))
    (core func $new (canon resource.new $thing))
    (core module $m
      (import "h" "new" (func $new (param i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "fail") (param i32) (result i32)
        (i32.store (i32.const 8) (i32.const 1))
        (i32.store (i32.const 12) (call $new (local.get 0)))
        (i32.const 8))
      (func (export "fail-host") (param i32) (result i32)
        (i32.store (i32.const 8) (i32.const 1))
        (i32.store (i32.const 12) (local.get 0))
        (i32.const 8)))
    (core instance $i (instantiate $m (with "h" (instance (export "new" (func $new))))))
    (func $fail (param "n" u32) (result (result u32 (error (own $thing))))
      (canon lift (core func $i "fail") (memory (core memory $i "memory"))))
    (func $fail-host (param "c" (own $counter)) (result (result u32 (error (own $counter))))
      (canon lift (core func $i "fail-host") (memory (core memory $i "memory"))))
    (component $shim
      (import "thing" (type $t (sub resource)))
      (import "counter" (type $c (sub resource)))
      (import "fail" (func $f (param "n" u32) (result (result u32 (error (own $t))))))
      (import "fail-host" (func $fh (param "c" (own $c)) (result (result u32 (error (own $c))))))
      (export $T "thing" (type $t))
      (export "fail" (func $f) (func (param "n" u32) (result (result u32 (error (own $T))))))
      (export "fail-host" (func $fh) (func (param "c" (own $c)) (result (result u32 (error (own $c)))))))
    (instance $api (instantiate $shim (with "thing" (type $thing)) (with "counter" (type $counter))
      (with "fail" (func $fail)) (with "fail-host" (func $fail-host))))
    (export "test:x/api" (instance $api)))`)
  class Counter {}
  const inst = guest.instantiateSync({
    limits: { memoryBytes: 1 << 16, resourceHandles: 8 },
    imports: { counter: Counter },
  })
  const api = inst.exports['test:x/api'] as { Thing: new () => unknown }
  t.throws(() => new api.Thing(), { instanceOf: TypeError, message: /has no constructor/ })
  for (let i = 0; i < 20; i++) {
    const error = t.throws(() => inst.callSync('test:x/api#fail', [i]), { instanceOf: ComponentError })
    const thing = error.payload as Disposable
    t.true(thing instanceof api.Thing)
    thing[Symbol.dispose]()
  }
  const rejected = await t.throwsAsync(inst.call('test:x/api#fail', [1]), { instanceOf: ComponentError })
  t.true(rejected.payload instanceof api.Thing)
  const counter = new Counter()
  const back = t.throws(() => inst.callSync('test:x/api#fail-host', [counter]), {
    instanceOf: ComponentError,
  })
  t.is(back.payload, counter, "the host's own object comes back")
  t.false(inst.poisoned)
})

test('one object passed as own and also lent (or moved twice) in one call is a WasmTypeError', (t) => {
  // `thing.absorb(thing)`: wasmtime cannot take a handle that is borrowed, and reported the
  // caller's mistake as the guest's (a GuestAbiError that poisoned the instance).
  const guest = engine.compileComponentSync(`(component
    (core module $d (func (export "dtor") (param i32)))
    (core instance $di (instantiate $d))
    (type $r (resource (rep i32) (dtor (core func $di "dtor"))))
    (core func $rnew (canon resource.new $r))
    (core func $rdrop (canon resource.drop $r))
    (core module $m
      (import "h" "rnew" (func $rnew (param i32) (result i32)))
      (import "h" "rdrop" (func $rdrop (param i32)))
      (func (export "ctor") (param i32) (result i32) (call $rnew (local.get 0)))
      (func (export "absorb") (param i32 i32) (call $rdrop (local.get 1)))
      (func (export "both") (param i32 i32) (call $rdrop (local.get 0)) (call $rdrop (local.get 1))))
    (core instance $i (instantiate $m (with "h" (instance (export "rnew" (func $rnew)) (export "rdrop" (func $rdrop))))))
    (func $ctor (param "n" u32) (result (own $r)) (canon lift (core func $i "ctor")))
    (func $absorb (param "self" (borrow $r)) (param "other" (own $r)) (canon lift (core func $i "absorb")))
    (func $both (param "a" (own $r)) (param "b" (own $r)) (canon lift (core func $i "both")))
    (component $shim
      (import "thing" (type $t (sub resource)))
      (import "ctor" (func $c (param "n" u32) (result (own $t))))
      (import "absorb" (func $a (param "self" (borrow $t)) (param "other" (own $t))))
      (import "both" (func $b (param "a" (own $t)) (param "b" (own $t))))
      (export $T "thing" (type $t))
      (export "[constructor]thing" (func $c) (func (param "n" u32) (result (own $T))))
      (export "[method]thing.absorb" (func $a) (func (param "self" (borrow $T)) (param "other" (own $T))))
      (export "both" (func $b) (func (param "a" (own $T)) (param "b" (own $T)))))
    (instance $api (instantiate $shim (with "thing" (type $r)) (with "ctor" (func $ctor))
      (with "absorb" (func $absorb)) (with "both" (func $both))))
    (export "test:x/api" (instance $api)))`)
  const inst = guest.instantiateSync({ limits: { memoryBytes: 0 } })
  type Thing = { absorb(other: Thing): void }
  const api = inst.exports['test:x/api'] as {
    Thing: new (n: number) => Thing
    both(a: Thing, b: Thing): void
  }
  const thing = new api.Thing(1)
  t.throws(() => thing.absorb(thing), { instanceOf: WasmTypeError, message: /param "other": .*not also/ })
  t.throws(() => api.both(thing, thing), { instanceOf: WasmTypeError, message: /param "b": .*not also/ })
  t.false(inst.poisoned)
  const other = new api.Thing(2)
  thing.absorb(other)
  t.throws(() => thing.absorb(other), { instanceOf: DisposedError })
  api.both(thing, new api.Thing(3))
})

/**
 * An instance whose host `Logger`s (`count()` is 7) have `dispose` as their `[Symbol.dispose]`
 * (a method or a getter), and a way to read, once the disposes had 50 ms, the
 * AIRSSYS_DISPOSE_FAILED warnings whose message matches `mine`: tests of this file run at once, and
 * warnings go to every listener.
 */
function disposingLoggers(t: ExecutionContext, dispose: PropertyDescriptor, mine: RegExp) {
  const warnings = processWarnings(t)
  const inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20 },
    imports: disposingLoggerImports(dispose),
  })
  const failures = async () => {
    await new Promise((resolve) => setTimeout(resolve, 50))
    return warnings
      .filter(
        (warning) =>
          (warning as { code?: string }).code === 'AIRSSYS_DISPOSE_FAILED' && mine.test(warning.message),
      )
      .map((warning) => warning.message)
  }
  return { inst, failures, warnings }
}

test("a host resource's [Symbol.dispose] that throws is a process warning, not silence and not the guest's", async (t) => {
  // The guest dropped its handle: no caller waits for the dispose, so what it throws is reported
  // as Node reports a failed cleanup. The call that dropped it succeeds.
  const { inst, failures, warnings } = disposingLoggers(
    t,
    {
      value(this: { prefix: string }) {
        throw new Error(`cannot close ${this.prefix}`)
      },
    },
    /cannot close/,
  )
  t.is(usesHost(inst).withLogger('disposer', ['a']), 7)
  t.is(await inst.call('test:resources/uses-host#with-logger', ['async-disposer', []]), 7)
  t.deepEqual(await failures(), [
    'a host resource\'s [Symbol.dispose] threw: "cannot close disposer"',
    'a host resource\'s [Symbol.dispose] threw: "cannot close async-disposer"',
  ])
  // Named as the package's other warning is, for a filter on `name` (probe Z14).
  const mine = warnings.filter((warning) => /cannot close/.test(warning.message))
  t.deepEqual(
    mine.map((warning) => warning.name),
    ['AirssysWasmWarning', 'AirssysWasmWarning'],
  )
  t.false(inst.poisoned)
})

test('an async [Symbol.dispose] that rejects is the same warning, not an unhandled rejection', async (t) => {
  // The guest chooses when its handle drops; an unhandled rejection would end a Node process.
  const { inst, failures } = disposingLoggers(
    t,
    {
      async value(this: { prefix: string }) {
        await Promise.resolve()
        throw new Error(`cannot flush ${this.prefix}`)
      },
    },
    /cannot flush/,
  )
  t.is(usesHost(inst).withLogger('sync-call', ['a']), 7)
  t.is(await inst.call('test:resources/uses-host#with-logger', ['pool-call', []]), 7)
  t.deepEqual(await failures(), [
    'a host resource\'s [Symbol.dispose] rejected: "cannot flush sync-call"',
    'a host resource\'s [Symbol.dispose] rejected: "cannot flush pool-call"',
  ])
  t.is(usesHost(inst).withLogger('after', []), 7)
})

test('a [Symbol.dispose] getter that throws is the same warning, not silence', async (t) => {
  const { inst, failures } = disposingLoggers(
    t,
    {
      get(this: { prefix: string }) {
        throw new Error(`no dispose for ${this.prefix}`)
      },
    },
    /no dispose for getter/,
  )
  t.is(usesHost(inst).withLogger('getter', []), 7)
  const ours = await failures()
  t.is(ours.length, 1)
  t.regex(ours[0] ?? '', /^a host resource's \[Symbol\.dispose\] could not be read: /)
})

test('a dispose Promise whose species throws, or that is not a function, is the same warning, not an unhandled rejection or silence', async (t) => {
  // Promise.prototype.then asks a Promise subclass for its species: one that throws left the
  // dispose's rejection unhandled, which ends a Node process (an outside probe).
  class Throwing extends Promise<void> {
    static override get [Symbol.species](): PromiseConstructor {
      throw new Error('no species')
    }
  }
  const { inst, failures } = disposingLoggers(
    t,
    {
      value(this: { prefix: string }) {
        return Throwing.reject(new Error(`species ${this.prefix}`))
      },
    },
    /species/,
  )
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => process.off('unhandledRejection', onUnhandled))
  t.is(usesHost(inst).withLogger('sub', []), 7)
  t.deepEqual(await failures(), ['a host resource\'s [Symbol.dispose] rejected: "species sub"'])
  t.deepEqual(unhandled, [])

  const notFunction = disposingLoggers(t, { value: 42 }, /is not a function/)
  t.is(usesHost(notFunction.inst).withLogger('x', []), 7)
  t.deepEqual(await notFunction.failures(), ['a host resource\'s [Symbol.dispose] is not a function: "42"'])
})

test("a call's arguments are counted together against the guest's memory limit", (t) => {
  // Each of the two strings fits the guest, both together do not: counted one by one, they went
  // to the guest's allocator, which trapped and poisoned the instance (an outside probe).
  const { imports } = hostImports([])
  const inst = component.instantiateSync({ limits: { memoryBytes: 4 << 20 }, imports })
  const half = 'x'.repeat(2.5 * (1 << 20))
  t.throws(() => usesHost(inst).withLogger(half, [half]), {
    instanceOf: WasmTypeError,
    message:
      /param "msgs": list index 0: at least \d+ bytes, more than the guest's memory limit \(4194304 bytes\)/,
  })
  t.false(inst.poisoned)
  t.is(usesHost(inst).withLogger('fits', ['a', 'b']), 2)
})

test('limits.resourceHandles sets the cap', (t) => {
  const events: string[] = []
  const inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20, resourceHandles: 50 },
    imports: hostImports(events).imports,
  })
  t.is(usesHost(inst).spam(50), 50)
  const error = t.throws(() => usesHost(inst).spam(1), { instanceOf: HostLimitError })
  t.regex(error?.message ?? '', /more than 50 resource handles/)
  t.throws(() => component.instantiateSync({ limits: { memoryBytes: 4 << 20, resourceHandles: -1 } }), {
    message: /limits\.resourceHandles/,
  })
})

test('the handle cap met by a host object JS passes in is a HostLimitError too, not a bad value', (t) => {
  const { Logger, imports } = hostImports([])
  const inst = component.instantiateSync({ limits: { memoryBytes: 4 << 20, resourceHandles: 2 }, imports })
  t.is(usesHost(inst).spam(2), 2)
  for (const pass of [
    () => usesHost(inst).keepLogger(new Logger('own')),
    () => inst.callSync('test:resources/uses-host#round-trip', [new Logger('own')]),
  ]) {
    const error = t.throws(pass, { instanceOf: HostLimitError })
    t.regex(error?.message ?? '', /more than 2 resource handles/)
  }
  usesHost(inst).release()
  t.is(usesHost(inst).keepLogger(new Logger('room again')), 1)
})

test('a host object a host function gave up that never reaches the guest is disposed', async (t) => {
  // One refused at limits.resourceHandles was dropped without its [Symbol.dispose]: the host
  // function had returned it, so nothing held it, and a guest could leak one per call (probe Z4).
  const events: string[] = []
  const inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20, resourceHandles: 2 },
    imports: hostImports(events).imports,
  })
  const full = t.throws(() => usesHost(inst).spam(3), { instanceOf: HostLimitError })
  // The guest holds the host's objects here: no hint about JS's undisposed resources (probe H18).
  t.regex(full?.message ?? '', /resource handles at once \(limits\.resourceHandles\)$/)
  for (let round = 0; round < 100 && !events.includes('dispose spam-2'); round++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.true(events.includes('new spam-2'))
  t.true(events.includes('dispose spam-2'), events.join(', '))
  t.false(events.includes('dispose spam-0'), 'the guest still holds the first two')
  // A host object JS passes to an export stays the caller's when refused: not disposed.
  const { Logger, imports } = hostImports(events)
  const second = component.instantiateSync({ limits: { memoryBytes: 4 << 20, resourceHandles: 1 }, imports })
  t.is(usesHost(second).spam(1), 1)
  t.throws(() => usesHost(second).keepLogger(new Logger('caller')), { instanceOf: HostLimitError })
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.false(events.includes('dispose caller'))
})

/**
 * A guest whose export `run(mode: u32) -> u32` calls its import `test:x/host#some`,
 * `func(mode: u32) -> <result>` of the host's resource `logger`, and returns what the call left in
 * its return area: the word at 68 (a list's length), or with `read: 'case'` the byte at 64 (a
 * result's case).
 */
function callsSome(result: string, read: 'length' | 'case' = 'length') {
  return engine.compileComponentSync(`(component
    (import "test:x/host" (instance $h
      (export "logger" (type (sub resource)))
      (export "some" (func (param "mode" u32) (result ${result})))))
    (alias export $h "some" (func $some))
    ${BUMP_MEMORY_WAT}
    (core func $some_l (canon lower (func $some) (memory $memory) (realloc $realloc)))
    (core module $main
      (import "h" "some" (func $some (param i32 i32)))
      (import "m" "memory" (memory 1))
      (func (export "run") (param i32) (result i32)
        local.get 0 i32.const 64 call $some ${read === 'case' ? 'i32.const 64 i32.load8_u' : 'i32.const 68 i32.load'}))
    (core instance $i (instantiate $main (with "m" (instance $m))
      (with "h" (instance (export "some" (func $some_l))))))
    (func (export "run") (param "mode" u32) (result u32) (canon lift (core func $i "run"))))`)
}

/** A host resource class whose objects record their name in `disposed` when disposed. */
function recordingLoggers() {
  const disposed: string[] = []
  class Logger {
    constructor(readonly name: string) {}
    [Symbol.dispose]() {
      disposed.push(this.name)
    }
  }
  return { Logger, disposed }
}

test('every host object in a value refused at limits.resourceHandles is disposed, those past the cap too', async (t) => {
  // The conversion stopped at the object that met the cap: the ones after it in the value were
  // never disposed, not even with the instance (probe H21).
  const guest = callsSome('(list (own 0))')
  const { Logger, disposed } = recordingLoggers()
  const names = ['a', 'b', 'c', 'd', 'e', 'f']
  // The same objects each time, the last one twice, past the cap.
  const loggers = names.map((name) => new Logger(name))
  const fresh = () =>
    guest.instantiateSync({
      limits: { memoryBytes: 1 << 20, resourceHandles: 3 },
      imports: { 'test:x/host': { Logger, some: () => [...loggers, loggers.at(-1)] } },
    })
  const refused = async (count: number) => {
    await t.throwsAsync(fresh().call('run', [0]), { instanceOf: HostLimitError })
    for (let round = 0; round < 100 && disposed.length < count; round++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await refused(names.length)
  t.deepEqual([...disposed].sort(), names, 'each once')
  // Given up again, each is disposed again, before the cap or past it alike (probe H24).
  await refused(2 * names.length)
  t.deepEqual([...disposed].sort(), [...names, ...names].sort())
})

test("the host's objects in a value a host function returns that fails the class check are disposed", async (t) => {
  // The JS layer refuses a value holding something not of the host's class before the addon sees
  // it: the host's objects beside the misfit were dropped without [Symbol.dispose] (probe H15).
  const guest = callsSome('(list (own 0))')
  const { Logger, disposed } = recordingLoggers()
  const shared = new Logger('twice')
  /** A list whose second element's getter throws, after the first was read (probe H21). */
  const throwing = () => {
    const list = [new Logger('read')]
    Object.defineProperty(list, 1, {
      get() {
        throw new Error('no second')
      },
      enumerable: true,
    })
    return list
  }
  const host = {
    Logger,
    some: async (mode: number) =>
      [
        [new Logger('kept-a'), new Logger('kept-b')],
        [new Logger('beside'), {}],
        [shared, 'bad', shared],
        throwing(),
      ][mode],
  }
  const fresh = () =>
    guest.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { 'test:x/host': host } })
  // Held to the end: collected, the instance would drop the two handles it was given.
  const first = fresh()
  t.is(await first.call('run', [0]), 2, 'both reach the guest')
  await t.throwsAsync(fresh().call('run', [1]), {
    instanceOf: HostError,
    message: /returned an object where/,
  })
  t.deepEqual(disposed, ['beside'])
  await t.throwsAsync(fresh().call('run', [2]), {
    instanceOf: HostError,
    message: /returned string "bad" where/,
  })
  t.deepEqual(disposed, ['beside', 'twice'], 'an object in two places is disposed once')
  await t.throwsAsync(fresh().call('run', [3]), { instanceOf: HostError, message: /no second/ })
  t.deepEqual(disposed, ['beside', 'twice', 'read'], 'read before a getter threw')
  first.dispose()
})

test.serial(
  "the host's objects in a host function's answer that comes after its call ended are disposed",
  async (t) => {
    // The call gave up on the Promise (its deadline or abort came first), so nothing takes what it
    // brings: its objects were dropped without [Symbol.dispose] (an open item of SECURITY 43).
    // Serial, with a roomy deadline: a host function is not called once its call has ended, and
    // other tests of this file hold the JS thread for a second at a time.
    const guest = callsSome('(result (list (own 0)) (error (own 0)))', 'case')
    const { Logger, disposed } = recordingLoggers()
    type Logger = InstanceType<typeof Logger>
    let answer: { resolve: (value: Logger[]) => void; reject: (error: unknown) => void } | undefined
    const host = {
      Logger,
      some: () => new Promise<Logger[]>((resolve, reject) => (answer = { resolve, reject })),
    }
    const settleLate = async (call: Promise<unknown>, expected: Function, settle: () => void) => {
      answer = undefined
      await t.throwsAsync(call, { instanceOf: expected })
      settle()
      for (let round = 0; round < 20; round++) await new Promise((resolve) => setImmediate(resolve))
    }
    const inst = guest.instantiateSync({ limits: { memoryBytes: 1 << 20 }, imports: { 'test:x/host': host } })
    await settleLate(inst.call('run', [0], { timeoutMs: 1000 }), TimeoutError, () =>
      answer!.resolve([new Logger('late-a'), new Logger('late-b')]),
    )
    t.deepEqual(disposed, ['late-a', 'late-b'], 'after a deadline')
    const second = guest.instantiateSync({
      limits: { memoryBytes: 1 << 20 },
      imports: { 'test:x/host': host },
    })
    const controller = new AbortController()
    const aborted = second.call('run', [0], { signal: controller.signal })
    setTimeout(() => controller.abort(), 200)
    await settleLate(aborted, AbortError, () => answer!.reject({ payload: new Logger('late-err') }))
    t.deepEqual(disposed, ['late-a', 'late-b', 'late-err'], 'an err payload thrown after an abort')
    // One that comes in time reaches the guest, and is the guest's to drop.
    const third = guest.instantiateSync({
      limits: { memoryBytes: 1 << 20 },
      imports: { 'test:x/host': host },
    })
    answer = undefined
    const inTime = third.call('run', [0])
    const asked = () => answer
    while (asked() === undefined) await new Promise((resolve) => setImmediate(resolve))
    asked()!.resolve([new Logger('in-time')])
    t.is(await inTime, 0)
    t.deepEqual(disposed, ['late-a', 'late-b', 'late-err'])
  },
)

test('a host object given to the guest as own more than once is disposed once, when its last handle goes', async (t) => {
  // A host function returning one object each time (a shared logger) gave the guest two handles
  // to it, and the first dropped disposed it under the second (an open hazard of SECURITY 43).
  const guest = engine.compileComponentSync(`(component
    (import "test:x/host" (instance $h
      (export "logger" (type $l (sub resource)))
      (export "get" (func (result (own $l))))))
    (alias export $h "logger" (type $logger))
    (alias export $h "get" (func $get))
    (core func $get_c (canon lower (func $get)))
    (core func $drop_c (canon resource.drop $logger))
    (core module $m
      (import "h" "get" (func $get (result i32)))
      (import "h" "drop" (func $drop (param i32)))
      (func (export "take") (result i32) call $get)
      (func (export "drop") (param i32) local.get 0 call $drop)
      (func (export "give") (param i32) (result i32) local.get 0)
      ;; Drops its own handle to the object it is lent, then ends the loan.
      (func (export "use") (param i32 i32) local.get 1 call $drop local.get 0 call $drop))
    (core instance $i (instantiate $m
      (with "h" (instance (export "get" (func $get_c)) (export "drop" (func $drop_c))))))
    (func (export "take") (result u32) (canon lift (core func $i "take")))
    (func (export "drop") (param "h" u32) (canon lift (core func $i "drop")))
    (func (export "give") (param "h" u32) (result (own $logger)) (canon lift (core func $i "give")))
    (func (export "use") (param "l" (borrow $logger)) (param "h" u32) (canon lift (core func $i "use"))))`)
  const { Logger, disposed } = recordingLoggers()
  let shared = new Logger('shared')
  const fresh = (resourceHandles?: number) =>
    guest.instantiateSync({
      limits: { memoryBytes: 1 << 20, resourceHandles },
      imports: { 'test:x/host': { Logger, get: () => shared } },
    })
  // Disposing runs on the event loop, after the call: waits for `count` of them, or a while.
  const settled = async (count = disposed.length) => {
    for (let round = 0; round < 50 && disposed.length < count; round++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const inst = fresh()
  const [first, second] = [inst.callSync('take') as number, inst.callSync('take') as number]
  t.not(first, second)
  inst.callSync('drop', [first])
  await settled()
  t.deepEqual(disposed, [], 'the guest still holds it')
  await inst.call('drop', [second])
  await settled(1)
  t.deepEqual(disposed, ['shared'], 'its last handle went')
  // Given back to JS as own, it is JS's: the guest dropping its other handle does not dispose it.
  shared = new Logger('returned')
  const kept = inst.callSync('take') as number
  t.is(inst.callSync('give', [inst.callSync('take')]), shared)
  inst.callSync('drop', [kept])
  await settled()
  t.deepEqual(disposed, ['shared'])
  // Lent for a call in which the guest drops its own handle: disposed once the loan ends.
  shared = new Logger('lent')
  inst.callSync('use', [shared, inst.callSync('take')])
  await settled(2)
  t.deepEqual(disposed, ['shared', 'lent'])
  // Refused at limits.resourceHandles while the guest holds it: not disposed under the guest.
  shared = new Logger('capped')
  const capped = fresh(1)
  capped.callSync('take')
  t.throws(() => capped.callSync('take'), { instanceOf: HostLimitError })
  await settled()
  t.deepEqual(disposed, ['shared', 'lent'])
  capped.dispose()
  await settled(3)
  t.deepEqual(disposed, ['shared', 'lent', 'capped'], 'disposed once, with the instance')
})

test("at limits.resourceHandles, the HostLimitError says how many of the guest's resources JS holds", (t) => {
  // One JS dropped without [Symbol.dispose] holds its handle until V8 collects it, which can take
  // long enough to reach the cap (probe Z10): the message says so when JS holds any.
  const inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20, resourceHandles: 3 },
    imports: hostImports([]).imports,
  })
  const kept = [1, 2, 3].map((start) => new (api(inst).Counter)(start))
  const error = t.throws(() => new (api(inst).Counter)(4), { instanceOf: HostLimitError })
  t.regex(
    error?.message ?? '',
    /\(limits\.resourceHandles; JS holds 3 of the guest's resources, and one dropped without \[Symbol\.dispose\] keeps its handle until it is garbage-collected\)$/,
  )
  t.is(kept.length, 3)
  // Handles of the very value being lifted are not JS's yet: they were counted (probe H19).
  const fresh = () =>
    component.instantiateSync({
      limits: { memoryBytes: 4 << 20, resourceHandles: 5 },
      imports: hostImports([]).imports,
    })
  const lifting = fresh()
  const none = t.throws(() => api(lifting).Counter.split(6, 6), { instanceOf: HostLimitError })
  t.regex(none?.message ?? '', /resource handles at once \(limits\.resourceHandles\)$/)
  // Refused while lifting the result, the call poisons the instance: a trap in the metrics, as
  // the same refusal inside a host call is (probe H20).
  t.true(lifting.poisoned)
  t.like(lifting.metrics(), { calls: 1, traps: 1 })
  const holding = fresh()
  const one = new (api(holding).Counter)(1)
  const some = t.throws(() => api(holding).Counter.split(6, 6), { instanceOf: HostLimitError })
  t.regex(some?.message ?? '', /; JS holds 1 of the guest's resources/)
  t.truthy(one)
})

/** Core code that makes as many handles of the guest's own resource as its first parameter asks. */
const MAKE_HANDLES = `(loop $l
          (drop (call $new (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get 0))))`

test('a guest making handles of its own resource without end fails with HostLimitError', (t) => {
  // `resource.new` needs no host code: the guest fills wasmtime's handle tables (host memory) in
  // a loop. wasmtime stops it at its store-wide cap, which was reported as the guest's ABI error.
  const flood = engine.compileComponentSync(`(component
    (type $r (resource (rep i32)))
    (core func $new (canon resource.new $r))
    (core module $m
      (import "h" "new" (func $new (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) (local $i i32)
        ${MAKE_HANDLES}
        (local.get $i)))
    (core instance $i (instantiate $m (with "h" (instance (export "new" (func $new))))))
    (func (export "run") (param "n" u32) (result u32) (canon lift (core func $i "run"))))`)
  const limits = { memoryBytes: 1 << 16 }
  t.is(flood.instantiateSync({ limits }).callSync('run', [50_000]), 50_000)
  const error = t.throws(() => flood.instantiateSync({ limits }).callSync('run', [10_000_000]), {
    instanceOf: HostLimitError,
  })
  t.is(error?.code, 'ERR_WASM_HOST_LIMIT')
  t.regex(error?.message ?? '', /more than 110000 resource handles/)
  // The cap grows with limits.resourceHandles, and the process goes on.
  const roomy = { memoryBytes: 1 << 16, resourceHandles: 100_000 }
  t.is(flood.instantiateSync({ limits: roomy }).callSync('run', [150_000]), 150_000)

  // At the cap, a host object the host's constructor returns is refused the same way, not as a
  // bad value of the host function's.
  const full = engine.compileComponentSync(`(component
    (import "counter" (type $counter (sub resource)))
    (import "[constructor]counter" (func $ctor (param "start" u32) (result (own $counter))))
    (type $r (resource (rep i32)))
    (core func $new (canon resource.new $r))
    (core func $ctor_core (canon lower (func $ctor)))
    (core module $m
      (import "h" "new" (func $new (param i32) (result i32)))
      (import "h" "ctor" (func $ctor (param i32) (result i32)))
      (func (export "run") (param i32) (result i32) (local $i i32)
        ${MAKE_HANDLES}
        (call $ctor (i32.const 0))))
    (core instance $i (instantiate $m (with "h" (instance
      (export "new" (func $new)) (export "ctor" (func $ctor_core))))))
    (func (export "run") (param "n" u32) (result u32) (canon lift (core func $i "run"))))`)
  class Counter {}
  const imports = { counter: Counter }
  // The guest's handle to the host's object comes after its own 109,999 (indices start at 1).
  t.is(full.instantiateSync({ limits, imports }).callSync('run', [109_999]), 110_000)
  const refused = t.throws(() => full.instantiateSync({ limits, imports }).callSync('run', [110_000]), {
    instanceOf: HostLimitError,
  })
  t.regex(refused?.message ?? '', /more than 110000 resource handles/)
})

test('limits.resourceHandles above 100,000 lets the guest keep that many host objects', (t) => {
  // wasmtime's own store-wide cap (100,000 live handles by default) refused them first, as the
  // guest's ABI error, though the option allows up to 1,000,000.
  const inst = component.instantiateSync({
    limits: { memoryBytes: 4 << 20, resourceHandles: 120_000 },
    imports: hostImports([]).imports,
  })
  t.is(usesHost(inst).spam(110_000), 110_000)
  t.throws(() => usesHost(inst).spam(10_001), { instanceOf: HostLimitError, message: /more than 120000/ })
  inst.dispose()
})

test("a resource of another version of the interface is refused saying which, not 'a Thing, got a Thing'", (t) => {
  // Two versions of one interface each export a `thing` (probe N2).
  const u32: WitType = { kind: 'u32' }
  const version = (v: string): ComponentItem => ({
    name: `a:b/c@${v}`,
    kind: 'instance',
    type: 'instance',
    exports: [
      {
        name: 'thing',
        kind: 'resource',
        type: 'resource',
        members: { constructor: '[constructor]thing', methods: [], statics: [] },
      },
      {
        name: '[constructor]thing',
        kind: 'func',
        type: 'func',
        func: {
          params: [{ name: 'x', type: u32 }],
          result: { kind: 'own', resource: 'thing', interface: `a:b/c@${v}` },
        },
      },
      {
        name: 'take',
        kind: 'func',
        type: 'func',
        func: {
          params: [{ name: 't', type: { kind: 'borrow', resource: 'thing', interface: `a:b/c@${v}` } }],
        },
      },
    ],
  })
  let token = 0
  const resources: InstanceResources = new InstanceResources(
    {
      callSync: (path) => resources.lift(path, ++token),
      dropResource: () => {},
      dropLater: () => {},
      holds: () => true,
      disposed: false,
    },
    [version('1.0.0'), version('2.0.0')],
  )
  const One = resources.classOf('a:b/c@1.0.0', 'thing')!
  const thing = new One(1)
  t.throws(() => resources.lower('a:b/c@2.0.0#take', [thing]), {
    instanceOf: WasmTypeError,
    message: 'a:b/c@2.0.0#take: param "t": expected a Thing of a:b/c@2.0.0, got one of a:b/c@1.0.0',
  })
  // A host class of the same name (probe H13).
  class Thing {}
  t.throws(() => resources.lower('a:b/c@2.0.0#take', [new Thing()]), {
    instanceOf: WasmTypeError,
    message: `a:b/c@2.0.0#take: param "t": expected the guest's Thing (of a:b/c@2.0.0), got a Thing`,
  })
})
