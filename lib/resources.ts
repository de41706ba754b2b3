/**
 * Component resources on the JS side. A guest resource reaches JS as an opaque native token; this
 * module wraps it in an object of a class per resource type (UpperCamelCase, e.g. `Counter`),
 * whose methods call the guest's `[method]` functions and whose statics its `[static]` ones, and
 * unwraps such objects again where the guest takes them (`own` moves the handle: the object is
 * unusable afterwards; `borrow` lends it). `[Symbol.dispose]()` drops the handle, which runs the
 * guest's destructor; an object garbage-collected without it is dropped at the next call. Host
 * resources (imported ones) are the host's own objects and pass through unchanged.
 *
 * Values are walked along the export's type, only where that type can hold a resource.
 */
import { types } from 'node:util'

import type { ComponentItem, ResourceMembers, WitFuncType, WitType } from './component.js'
import { someType, tagsCarried, valueTypeOf } from './util/wit.js'
import { ComponentError, DisposedError, WasmTypeError } from './errors.js'
import { disposeGivenUp, hostFailure } from './native.js'
import { thrownPayload } from './util/failure.js'
// Counts the handles to each host object, for the addon to dispose one once.
import './util/places.js'
import { servedCall } from './util/reentry.js'
import { exportPaths, lowerCamel, unversioned, upperCamel } from './util/names.js'
import { TYPED_ARRAY_CLASSES } from './util/typed-arrays.js'
import { quoted } from './util/quoted.js'

/** `name` after "a" or "an", as it is spelled (an `Account`, a `Counter`). */
function withArticle(name: string): string {
  return `${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name}`
}

/** What the resource classes of an instance need from it. */
export interface ResourceHost {
  /** Calls an export on the JS thread (the instance's default budget). */
  callSync(path: string, args: readonly unknown[]): unknown
  /** Drops the guest handle a token stands for. */
  dropResource(token: unknown): void
  /** Drops the guest handle a token stands for at the start of the instance's next call. */
  dropLater(token: unknown): void
  /** Whether the guest handle a token stands for is still JS's (not dropped or moved). */
  holds(token: unknown): boolean
  /** Whether the instance was disposed (its handles went with its store). */
  readonly disposed: boolean
}

/** The handle behind a resource object, and whether it still belongs to JS. */
interface Handle {
  token: unknown
  state: 'live' | 'dropped' | 'moved'
  /** The instance's resources, which drop the handle. */
  owner: InstanceResources
  /** The object's class: its resource type. */
  cls: ResourceClass
  /**
   * Calls given it that have not ended: a `call` reads its arguments when it starts but reaches
   * the guest later, on the pool, where a handle dropped meanwhile would be gone.
   */
  holders: number
  /** Disposed while `holders` held it: dropped once they end, if the guest did not take it. */
  dropDeferred: boolean
}

/** A call's arguments with resource objects replaced by tokens, and the objects it moves. */
export interface Lowered {
  args: readonly unknown[]
  /**
   * After the call, settled or failed: marks the `own` arguments the guest took moved. A call
   * refused before it reached the guest (a wrong argument, a busy instance, an abort before it
   * started) leaves them usable.
   */
  commit(): void
}

/** Finds a host resource's class by interface name (undefined at the world's root) and WIT name. */
export type HostClasses = (interfaceName: string | undefined, resource: string) => Function | undefined

const handles = new WeakMap<object, Handle>()

/** Makes the objects of the constructor path (`new Counter(5)`) instead of a token's. */
const fromToken = Symbol('fromToken')

/** Whether a value of `type` can hold a resource. */
export function holdsResources(type: WitType | undefined): boolean {
  return type !== undefined && someType(type, (inner) => inner.kind === 'own' || inner.kind === 'borrow')
}

/** Where a value sits in a call, as a TypeError names it (`param "items": element 1`). */
type Where = readonly string[]

/**
 * Applies `at` to every resource in `value` (of `type`), rebuilding the containers around them.
 * A value of the wrong shape is passed on as it is, for the addon's conversion to report.
 */
function walk(
  value: unknown,
  type: WitType | undefined,
  where: Where,
  at: (value: unknown, type: WitType, where: Where) => unknown,
): unknown {
  if (type === undefined || !holdsResources(type)) return value
  switch (type.kind) {
    case 'own':
    case 'borrow':
      return at(value, type, where)
    case 'list':
      return Array.isArray(value)
        ? value.map((item, index) => walk(item, type.element, [...where, `list index ${index}`], at))
        : value
    case 'tuple':
      return Array.isArray(value)
        ? value.map((item, index) => walk(item, type.types[index], [...where, `tuple index ${index}`], at))
        : value
    case 'option': {
      if (value === undefined || value === null) return value
      // A nested option uses the tagged form.
      if (type.element.kind === 'option') return tagged(value, () => type.element, where, at)
      return walk(value, type.element, where, at)
    }
    case 'record': {
      if (typeof value !== 'object' || value === null) return value
      const out: Record<string, unknown> = { ...(value as Record<string, unknown>) }
      for (const field of type.fields) {
        const key = lowerCamel(field.name)
        if (key in out) out[key] = walk(out[key], field.type, [...where, `field "${key}"`], at)
      }
      return out
    }
    case 'variant':
      return tagged(value, (tag) => type.cases.find((item) => item.name === tag)?.type, where, at)
    case 'result':
      return tagged(
        value,
        (tag) => (tag === 'ok' ? type.ok : tag === 'err' ? type.err : undefined),
        where,
        at,
      )
    default:
      return value
  }
}

function tagged(
  value: unknown,
  payload: (tag: unknown) => WitType | undefined,
  where: Where,
  at: (value: unknown, type: WitType, where: Where) => unknown,
): unknown {
  if (typeof value !== 'object' || value === null || !('val' in value)) return value
  const { tag, val } = value as { tag: unknown; val: unknown }
  return { ...value, val: walk(val, payload(tag), [...where, `case "${String(tag)}"`], at) }
}

/** How a TypeError shows a value given where a resource was expected. */
function described(value: unknown): string {
  if (value === null || value === undefined) return String(value)
  if (typeof value === 'object' || typeof value === 'function') {
    let name: unknown
    try {
      name = (value as { constructor?: { name?: unknown } }).constructor?.name
    } catch {
      // A proxy's trap threw: the object is shown without its class.
    }
    if (typeof name !== 'string' || name === '' || name === 'Object') return 'an object'
    return withArticle(name)
  }
  if (typeof value === 'string') return `string ${quoted(value, 40)}`
  return `${typeof value} ${String(value)}`
}

/** The guest resource classes of one instance, and the conversions of its calls. */
export class InstanceResources {
  readonly #host: ResourceHost
  readonly #hostClasses: HostClasses
  readonly #classes = new Map<string, ResourceClass>()
  /** Function types by every export path that takes or returns a resource. */
  readonly #functions = new Map<string, WitFuncType>()

  constructor(
    host: ResourceHost,
    exports: readonly ComponentItem[],
    hostClasses: HostClasses = () => undefined,
  ) {
    this.#host = host
    this.#hostClasses = hostClasses
    const add = (interfaceName: string | undefined, item: ComponentItem) => {
      const func = item.func
      if (func === undefined) return
      if (!func.params.some((param) => holdsResources(param.type)) && !holdsResources(func.result)) return
      for (const path of exportPaths(interfaceName, item.name)) {
        // The first a path names keeps it, as in the addon's export table.
        if (!this.#functions.has(path)) this.#functions.set(path, func)
      }
    }
    for (const item of exports) {
      if (item.kind === 'func') add(undefined, item)
      for (const member of item.exports ?? []) if (member.kind === 'func') add(item.name, member)
    }
    // Resources the functions take or return, by the interface defining each: one without
    // functions of its own still comes back from others, and needs a class (for `instanceof` and
    // `[Symbol.dispose]`).
    const used = new Set<string>()
    for (const func of this.#functions.values()) {
      for (const type of [...func.params.map((param) => param.type), func.result]) {
        if (type === undefined) continue
        someType(type, (inner) => {
          const { resource, interface: interfaceName, imported } = inner as ResourceType
          if ((inner.kind === 'own' || inner.kind === 'borrow') && imported !== true) {
            used.add(`${interfaceName ?? ''}#${resource}`)
          }
          return false
        })
      }
    }
    const addClass = (interfaceName: string | undefined, item: ComponentItem) => {
      const key = `${interfaceName ?? ''}#${item.name}`
      // A resource an interface only re-exports (`use`) has no functions, so no `members`, here.
      const members = item.members ?? (used.has(key) ? NO_MEMBERS : undefined)
      if (members !== undefined) this.#classes.set(key, makeClass(this, interfaceName, item.name, members))
    }
    for (const item of exports) {
      // A resource the component exports at its root (no WIT world does; a hand-made component
      // may), or in an interface.
      if (item.kind === 'resource') addClass(undefined, item)
      for (const member of item.exports ?? []) if (member.kind === 'resource') addClass(item.name, member)
    }
  }

  /** The class of a guest resource, if the component exports it. */
  classOf(interfaceName: string | undefined, name: string): ResourceClass | undefined {
    return this.#classes.get(`${interfaceName ?? ''}#${name}`)
  }

  /** Every guest resource class, by interface. */
  get classes(): ReadonlyMap<string, ResourceClass> {
    return this.#classes
  }

  /** Calls `path` on the JS thread, with resource objects unwrapped and wrapped. */
  callSync(path: string, args: readonly unknown[]): unknown {
    return this.#host.callSync(path, args)
  }

  dropResource(token: unknown): void {
    this.#host.dropResource(token)
  }

  /** Whether the instance was disposed. */
  get disposed(): boolean {
    return this.#host.disposed
  }

  /** Whether calls of `path` convert resources. */
  converts(path: string): boolean {
    return this.#functions.has(path)
  }

  /**
   * The arguments of a call of `path`, resource objects replaced by their tokens; a value that is
   * not a resource of the type a parameter takes is a WasmTypeError naming where it is.
   */
  lower(path: string, args: readonly unknown[]): Lowered {
    const func = this.#functions.get(path)
    if (func === undefined) return { args, commit: () => {} }
    if (this.#host.disposed) throw new DisposedError('the instance was disposed')
    const moved: Handle[] = []
    const lent: Handle[] = []
    const lowered = args.map((arg, index) => {
      const param = func.params[index]
      const where = param === undefined ? [] : [`param "${lowerCamel(param.name)}"`]
      return walk(arg, param?.type, where, (value, type, at) =>
        this.#unwrap(path, value, type, at, moved, lent),
      )
    })
    const held = [...moved, ...lent]
    for (const handle of held) handle.holders++
    return {
      args: lowered,
      // Whether the guest took an own is the addon's to say: a call refused before the guest ran
      // (busy, disposed, short of native stack, aborted) leaves it JS's.
      commit: () => {
        for (const handle of moved) if (!this.#host.holds(handle.token)) handle.state = 'moved'
        for (const handle of held) {
          if (--handle.holders > 0 || !handle.dropDeferred) continue
          handle.dropDeferred = false
          // At the next call, as a drop during a call always is: its destructor's failure is
          // that call's, not this one's.
          if (handle.state === 'dropped') this.#host.dropLater(handle.token)
        }
      },
    }
  }

  /** What a call of `path` returned, tokens replaced by resource objects. */
  lift(path: string, value: unknown): unknown {
    const func = this.#functions.get(path)
    if (func === undefined) return value
    return walk(value, valueTypeOf(func), [], (token, type) => this.#wrap(token, type))
  }

  /**
   * A failure of a call of `path`: the resources in a `ComponentError`'s payload (an err value)
   * become objects, as `lift` makes them of a return value.
   */
  liftFailure(path: string, failure: unknown): unknown {
    const result = this.#functions.get(path)?.result
    if (failure instanceof ComponentError && result?.kind === 'result' && result.err !== undefined) {
      const payload = walk(failure.payload, result.err, [], (token, type) => this.#wrap(token, type))
      Object.defineProperty(failure, 'payload', { value: payload })
    }
    return failure
  }

  #wrap(token: unknown, type: WitType): unknown {
    if (type.kind !== 'own' && type.kind !== 'borrow') return token
    const { resource, interface: interfaceName, imported } = type as ResourceType
    if (imported === true || resource === undefined) return token
    const cls = this.classOf(interfaceName, resource)
    if (cls === undefined) return token
    return new cls(fromToken, token)
  }

  #unwrap(
    path: string,
    value: unknown,
    type: WitType,
    where: Where,
    moved: Handle[],
    lent: Handle[],
  ): unknown {
    const { resource, interface: interfaceName, imported } = type as ResourceType
    // A message of this call's, saying where in the value.
    const at = (what: string) => `${path}: ${[...where, what].join(': ')}`
    const refuse = (expected: string, given = described(value)) =>
      new WasmTypeError(at(`expected ${expected}, got ${given}`))
    const handle = typeof value === 'object' && value !== null ? handles.get(value) : undefined
    if (imported === true) {
      // The host's own objects go to the guest as they are; one of the guest's cannot stand in.
      const cls = resource === undefined ? undefined : this.#hostClasses(interfaceName, resource)
      if (cls !== undefined && !(handle === undefined && value instanceof cls)) {
        throw refuse(`${withArticle(cls.name || upperCamel(resource!))} (the host's class)`)
      }
      return value
    }
    const cls = resource === undefined ? undefined : this.classOf(interfaceName, resource)
    if (handle === undefined) {
      // A plain value: the addon says what is wrong with it where the class is not known.
      if (cls === undefined) return value
      // The host's class may have the guest's name.
      const given = described(value)
      const clash = given === withArticle(cls.name)
      throw refuse(
        clash ? `the guest's ${cls.name} (of ${interfaceName ?? 'the world'})` : withArticle(cls.name),
        given,
      )
    }
    if (handle.state !== 'live') throw gone(handle)
    if (handle.owner !== this) {
      // Its instance is gone, and its handles with it: a sandbox replaces its instance after a
      // failed call, and a caller holding the object learns that here.
      if (handle.owner.disposed) {
        throw new DisposedError(
          at(
            `the ${handle.cls.name} belonged to an instance that is gone (disposed, or replaced by its sandbox after a failed call): a resource does not outlive its instance`,
          ),
        )
      }
      // Another live instance's object: the addon refuses it, saying so.
      return handle.token
    }
    if (cls !== undefined && handle.cls !== cls) {
      // Two versions of an interface (or two interfaces) may each have a `Thing`.
      if (handle.cls.name !== cls.name) throw refuse(withArticle(cls.name))
      throw refuse(
        `${withArticle(cls.name)} of ${interfaceName ?? 'the world'}`,
        `one of ${interfaceOf.get(handle.cls) ?? 'another interface'}`,
      )
    }
    // Moved twice in one call, the addon would take the handle for the first and fail on the
    // second; moved and lent in one call (`thing.absorb(thing)`), wasmtime cannot take a handle
    // that is borrowed: the guest would be blamed (a poisoning GuestAbiError) for the caller's
    // mistake.
    if (type.kind === 'own') {
      if (moved.includes(handle) || lent.includes(handle)) {
        throw refuse(`${withArticle(cls?.name ?? 'resource')} not also passed elsewhere in this call`)
      }
      moved.push(handle)
    } else {
      if (moved.includes(handle))
        throw refuse(`${withArticle(cls?.name ?? 'resource')} not also moved in this call`)
      lent.push(handle)
    }
    return handle.token
  }
}

/** An own or borrow type, with the resource it names. */
interface ResourceType {
  kind: 'own' | 'borrow'
  resource?: string
  interface?: string
  imported?: boolean
}

function gone(handle: Handle): DisposedError {
  return new DisposedError(
    handle.state === 'moved'
      ? 'the resource was moved into the guest (passed as own) and can no longer be used'
      : 'the resource was dropped ([Symbol.dispose]) and can no longer be used',
  )
}

/** `value` for `[method]counter.value`, `split` for `[static]counter.split`. */
function memberName(functionName: string): string {
  return functionName.slice(functionName.indexOf('.') + 1)
}

/** The members of a resource with no functions of its own. */
const NO_MEMBERS: ResourceMembers = Object.freeze(
  Object.assign(Object.create(null), { methods: [], statics: [] }),
)

/** A class of guest resource objects. */
export type ResourceClass = new (...args: unknown[]) => object

function makeClass(
  resources: InstanceResources,
  interfaceName: string | undefined,
  resource: string,
  members: ResourceMembers,
): ResourceClass {
  const path = (name: string) => (interfaceName === undefined ? name : `${interfaceName}#${name}`)
  const where = interfaceName ?? 'the world'
  // Own property only: every object has an inherited `constructor`.
  const constructorPath = Object.hasOwn(members, 'constructor') ? members.constructor : undefined
  const name = upperCamel(resource)
  // Named by its key (not `cls`): V8 names an anonymous class so, in stack traces and messages.
  const cls = {
    [name]: class {
      constructor(...args: unknown[]) {
        if (args[0] === fromToken) {
          handles.set(this, {
            token: args[1],
            state: 'live',
            owner: resources,
            cls: cls as unknown as ResourceClass,
            holders: 0,
            dropDeferred: false,
          })
          return
        }
        if (constructorPath === undefined) {
          throw new WasmTypeError(`${where}: the resource ${resource} has no constructor`)
        }
        // The guest's constructor returns the object (made through the token path above); `new`
        // on a subclass makes it the subclass's, as a class's own constructor would.
        const made = resources.callSync(path(constructorPath), args) as this
        if (new.target !== cls) Object.setPrototypeOf(made, new.target.prototype)
        return made
      }

      [Symbol.dispose](): void {
        const handle = handles.get(this)
        if (handle === undefined || handle.owner !== resources || handle.cls !== cls) {
          throw new WasmTypeError(
            `${where}: [Symbol.dispose] of ${name} called on ${handle === undefined ? 'an object that is not one' : 'a resource of another instance or type'}`,
          )
        }
        if (handle.state !== 'live') return
        handle.state = 'dropped'
        if (handle.holders > 0) handle.dropDeferred = true
        else handle.owner.dropResource(handle.token)
      }
    },
  }[name]!
  for (const method of members.methods) {
    Object.defineProperty(cls.prototype, lowerCamel(memberName(method)), {
      value: function (this: object, ...args: unknown[]) {
        const handle = handles.get(this)
        if (handle !== undefined && handle.state !== 'live') throw gone(handle)
        return resources.callSync(path(method), [this, ...args])
      },
      writable: true,
      configurable: true,
    })
  }
  for (const statik of members.statics) {
    const key = lowerCamel(memberName(statik))
    // A class's own `prototype` cannot be replaced: such a static is reached by its path only.
    if (Object.getOwnPropertyDescriptor(cls, key)?.configurable === false) continue
    Object.defineProperty(cls, key, {
      value: (...args: unknown[]) => resources.callSync(path(statik), args),
      writable: true,
      configurable: true,
    })
  }
  interfaceOf.set(cls as unknown as ResourceClass, where)
  return cls as unknown as ResourceClass
}

/** The interface each guest resource class belongs to, for messages (two may share a name). */
const interfaceOf = new WeakMap<ResourceClass, string>()

/**
 * Import objects with each host-implemented resource's class turned into the functions the guest
 * imports: `[constructor]thing` runs `new Thing(...)`, `[method]thing.foo` calls the object's
 * `foo`, `[static]thing.bar` calls `Thing.bar`. The class is found beside the functions (in its
 * interface's object, or at the top level for a resource imported at the world's root) by its
 * UpperCamelCase name or its WIT name.
 */
export function expandResourceImports(
  imports: Record<string, unknown> | undefined,
  componentImports: readonly ComponentItem[],
): Record<string, unknown> | undefined {
  if (imports === undefined) return undefined
  let expanded: Record<string, unknown> | undefined
  if (componentImports.some((item) => item.kind === 'resource')) {
    expanded = ownCopy(imports)
    addResourceFunctions(expanded, componentImports)
  }
  for (const item of componentImports) {
    if (!(item.exports ?? []).some((member) => member.kind === 'resource')) continue
    const key = [item.name, item.name.split('@')[0]!].find((name) => Object.hasOwn(imports, name))
    if (key === undefined) continue
    const given = imports[key]
    if (typeof given !== 'object' || given === null) continue
    const object = ownCopy(given as Record<string, unknown>)
    addResourceFunctions(object, item.exports ?? [])
    expanded ??= ownCopy(imports)
    expanded[key] = object
  }
  return checkHostResources(expanded ?? imports, componentImports, hostClassesOf(imports, componentImports))
}

/**
 * A copy of `object` with every own property, enumerable or not (what `ownedImports` and the
 * addon link), as plain data.
 */
function ownCopy(object: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const key of Object.getOwnPropertyNames(object)) copy[key] = Reflect.get(object, key)
  return copy
}

/**
 * `imports` with each function whose result holds one of the host's resources wrapped, so that
 * an `own` it returns must be an instance of the host's class (README, Resources): any object would
 * otherwise become a handle, whose methods the guest then calls. For a `result` return type that
 * is the ok value it returns and the err payload it throws. Constructors are checked too: a JS
 * constructor may return any object in place of `this`. A wrong value fails the guest's call as a
 * HostError (its TypeError marked by the addon as the host's failure, which a `result` function's
 * throw would otherwise not be).
 */
function checkHostResources(
  imports: Record<string, unknown>,
  componentImports: readonly ComponentItem[],
  hostClasses: HostClasses,
): Record<string, unknown> {
  let checked: Record<string, unknown> | undefined
  const checks = (item: ComponentItem) => {
    const { ok, err } = returnChecked(item)
    return holdsHostResource(ok) || holdsHostResource(err)
  }
  /** The host's objects in `value` (instances of their host class), and the first value that is not one. */
  const hostObjects = (value: unknown, type: WitType | undefined) => {
    let found: { given: unknown; cls: Function } | undefined
    const objects = new Set<object>()
    if (!holdsHostResource(type)) return { objects, found }
    try {
      walk(value, type!, [], (given, inner) => {
        const { resource, interface: interfaceName, imported } = inner as ResourceType
        const cls =
          imported === true && resource !== undefined ? hostClasses(interfaceName, resource) : undefined
        if (cls === undefined) return given
        if (typeof given === 'object' && given !== null && given instanceof cls) objects.add(given)
        else found ??= { given, cls }
        return given
      })
    } catch (error) {
      // A getter of the value threw (or a revoked Proxy): the value is refused as the host's
      // failure, and the host's objects read before it were given up too.
      for (const object of objects) disposeGivenUp(object)
      throw error
    }
    return { objects, found }
  }
  /**
   * A value in `value` that is not an instance of its host class, and the class; when there is one,
   * the host's objects in `value` are disposed first: the host gave them up, and the guest will
   * never have them (as the addon does with those of a value it refuses).
   */
  const misfit = (value: unknown, type: WitType | undefined) => {
    const { objects, found } = hostObjects(value, type)
    if (found !== undefined) for (const object of objects) disposeGivenUp(object)
    return found
  }
  /** Disposes the host's objects in `value`, given up where no guest will have them. */
  const disposeAll = (value: unknown, type: WitType | undefined) => {
    for (const object of hostObjects(value, type).objects) disposeGivenUp(object)
  }
  /** Wraps the functions `object` holds under `item`'s names. */
  const wrapIn = (object: Record<string, unknown>, item: ComponentItem, label: string): void => {
    if (!checks(item)) return
    const { ok, err } = returnChecked(item)
    const isResult = item.func?.result?.kind === 'result'
    const carried = tagsCarried(ok)
    /**
     * What the guest would get of `value`, returned, and its type: for a `result`, an object whose
     * own `tag` is ok or err is the result itself (as the addon and jco take it), unless the ok
     * value may carry that tag: its `val` goes to the guest.
     */
    const given = (value: unknown): [unknown, WitType | undefined] => {
      const side = isResult ? resultSide(value, carried) : undefined
      return side === undefined
        ? [value, ok]
        : [Reflect.get(value as object, 'val'), side === 'ok' ? ok : err]
    }
    const returned = (value: unknown) => {
      const bad = misfit(...given(value))
      if (bad === undefined) return value
      throw hostFailure(
        new TypeError(`${label} returned ${described(bad.given)} where the guest takes a ${bad.cls.name}`),
      )
    }
    const thrown = (error: unknown): never => {
      // Unreadable, it is the addon's to refuse (as a HostError), like any other.
      const payload = thrownPayload(error, false)
      if (payload === undefined) throw error
      const bad = misfit(payload.payload, err)
      if (bad === undefined) throw error
      const what = payload.payload === error ? 'threw' : 'threw an err payload holding'
      throw hostFailure(
        new TypeError(`${label} ${what} ${described(bad.given)} where the guest takes a ${bad.cls.name}`, {
          cause: error,
        }),
      )
    }
    // An answer that comes after its call ended (its deadline or abort came first) has no taker:
    // the addon let go of the Promise, so the host's objects in it are disposed here.
    const returnedLate = (value: unknown): never => {
      disposeAll(...given(value))
      throw hostFailure(new Error(`${label} answered after its call ended`))
    }
    const thrownLate = (error: unknown): never => {
      const payload = thrownPayload(error, false)
      if (payload !== undefined) disposeAll(payload.payload, err)
      throw error
    }
    for (const key of new Set([item.name, lowerCamel(item.name)])) {
      const fn = Object.hasOwn(object, key) ? object[key] : undefined
      if (typeof fn !== 'function') continue
      object[key] = function (this: unknown, ...args: unknown[]) {
        const call = servedCall()
        let value: unknown
        try {
          value = Reflect.apply(fn, this, args)
        } catch (error) {
          thrown(error)
        }
        // Any realm's Promise: the addon awaits those too.
        if (!types.isPromise(value)) return returned(value)
        const ended = () => call !== undefined && !call.running
        return value.then(
          (settled) => (ended() ? returnedLate(settled) : returned(settled)),
          (error: unknown) => (ended() ? thrownLate(error) : thrown(error)),
        )
      }
    }
  }
  for (const item of componentImports) {
    if (item.kind === 'func') {
      if (checks(item)) {
        checked ??= ownCopy(imports)
        wrapIn(checked, item, item.name)
      }
      continue
    }
    const members = (item.exports ?? []).filter((member) => member.kind === 'func')
    if (!members.some(checks)) continue
    const key = [item.name, item.name.split('@')[0]!].find((name) => Object.hasOwn(imports, name))
    const given = key === undefined ? undefined : imports[key]
    if (key === undefined || typeof given !== 'object' || given === null) continue
    const object = ownCopy(given as Record<string, unknown>)
    for (const member of members) wrapIn(object, member, `${item.name}#${member.name}`)
    checked ??= ownCopy(imports)
    checked[key] = object
  }
  return checked ?? imports
}

/**
 * What an import function gives the guest that {@link checkHostResources} checks: what it
 * returns, and for a `result` the ok value it returns and the err payload it throws.
 */
function returnChecked(item: ComponentItem): { ok?: WitType; err?: WitType } {
  const result = item.func?.result
  return result?.kind === 'result' ? { ok: result.ok, err: result.err } : { ok: result }
}

/**
 * `'ok'` or `'err'` when `value` is a result itself: an object whose own `tag` is one of them,
 * which the ok value does not carry itself ({@link tagsCarried}).
 */
function resultSide(value: unknown, carried: { ok: boolean; err: boolean }): 'ok' | 'err' | undefined {
  if (typeof value !== 'object' || value === null || !Object.hasOwn(value, 'tag')) return undefined
  const tag: unknown = Reflect.get(value, 'tag')
  return (tag === 'ok' || tag === 'err') && !carried[tag] ? tag : undefined
}

/** Whether a value of `type` can hold an `own` of one of the host's resources. */
function holdsHostResource(type: WitType | undefined): boolean {
  return (
    type !== undefined &&
    someType(type, (inner) => inner.kind === 'own' && (inner as ResourceType).imported === true)
  )
}

/** The class of host resource `resource` in `object`, by its UpperCamelCase or its WIT name. */
function classIn(object: Record<string, unknown>, resource: string): Function | undefined {
  return [upperCamel(resource), resource]
    .map((name) => (Object.hasOwn(object, name) ? object[name] : undefined))
    .find((value): value is Function => typeof value === 'function')
}

/**
 * Finds the host's resource classes in the imports given to `instantiate`, when it is called:
 * the answer stays what was linked, and a call does not search the imports again. (A name the
 * listing did not give is looked up at its first use, once.)
 */
export function hostClassesOf(
  imports: Record<string, unknown> | undefined,
  componentImports: readonly ComponentItem[],
): HostClasses {
  const known = new Map<string, Function | undefined>()
  const find = (interfaceName: string | undefined, resource: string) => {
    const key = `${interfaceName ?? ''}#${resource}`
    if (!known.has(key)) known.set(key, findHostClass(imports, interfaceName, resource))
    return known.get(key)
  }
  for (const item of componentImports) {
    if (item.kind === 'resource') find(undefined, item.name)
    for (const member of item.exports ?? []) if (member.kind === 'resource') find(item.name, member.name)
  }
  return find
}

function findHostClass(
  imports: Record<string, unknown> | undefined,
  interfaceName: string | undefined,
  resource: string,
): Function | undefined {
  if (imports === undefined) return undefined
  let object: unknown = imports
  if (interfaceName !== undefined) {
    const key = [interfaceName, interfaceName.split('@')[0]!].find((name) => Object.hasOwn(imports, name))
    object = key === undefined ? undefined : imports[key]
  }
  return typeof object === 'object' && object !== null
    ? classIn(object as Record<string, unknown>, resource)
    : undefined
}

/**
 * JS's own classes and their prototypes (`Object`, `Function.prototype`, `Array`,
 * `Promise.prototype`…), by identity: what a host class inherits from those is not its own API.
 * (By identity, not by `[native code]` in their source, which a proxied or bound class has too.)
 */
const BUILT_INS: ReadonlySet<unknown> = new Set(
  [
    Object,
    Function,
    Array,
    Promise,
    Error,
    Map,
    Set,
    WeakMap,
    WeakSet,
    WeakRef,
    RegExp,
    Date,
    Number,
    String,
    Boolean,
    Symbol,
    BigInt,
    ArrayBuffer,
    SharedArrayBuffer,
    DataView,
    Object.getPrototypeOf(Int8Array) as object,
    ...TYPED_ARRAY_CLASSES,
    EventTarget,
  ].flatMap((builtIn) => [builtIn, (builtIn as { prototype?: unknown }).prototype]),
)

function isBuiltIn(at: object): boolean {
  return BUILT_INS.has(at)
}

/**
 * The function `name` (lowerCamelCase or as WIT spells it) of `target`: its own, or from the
 * prototypes of its class and the classes it extends, stopping at JS's own classes (a guest
 * declaring `[static]thing.to-string` would otherwise get the class's source text, and one of a
 * class that `extends Object` would get `Object.assign` and `Object.setPrototypeOf`). A
 * prototype's `constructor` is its class, not a method: `[method]thing.constructor` would run
 * the host's constructor again on an object it made.
 */
function found(target: object, name: string): ((...args: unknown[]) => unknown) | undefined {
  const keys = [lowerCamel(name), name]
  for (let at: object | null = target; at !== null && !isBuiltIn(at); at = Object.getPrototypeOf(at)) {
    for (const key of keys) {
      if (key === 'constructor' && at !== target) continue
      const value = Object.getOwnPropertyDescriptor(at, key)?.value
      if (typeof value === 'function') return value as (...args: unknown[]) => unknown
    }
  }
  return undefined
}

/** Adds to `object` the functions of the resources among `items` whose class it holds. */
function addResourceFunctions(object: Record<string, unknown>, items: readonly ComponentItem[]): void {
  for (const resource of items) {
    const members = resource.members
    if (resource.kind !== 'resource' || members === undefined) continue
    const cls = classIn(object, resource.name) as (new (...args: unknown[]) => object) | undefined
    if (cls === undefined) continue
    const add = (name: string, fn: (...args: never[]) => unknown) => {
      if (!Object.hasOwn(object, name)) object[name] = fn
    }
    if (members.constructor !== undefined) add(members.constructor, (...args: unknown[]) => new cls(...args))
    for (const method of members.methods) {
      add(method, (self: object, ...args: unknown[]) => {
        const member = found(self, memberName(method))
        if (member === undefined)
          throw new TypeError(`${upperCamel(resource.name)} has no method ${lowerCamel(memberName(method))}`)
        return Reflect.apply(member, self, args)
      })
    }
    for (const statik of members.statics) {
      const member = found(cls, memberName(statik))
      if (member !== undefined) add(statik, (...args: unknown[]) => Reflect.apply(member, cls, args))
    }
  }
}

/** jco's short name of an interface: `test:x/my-api@1.0.0` -> `myApi`. */
export function shortName(interfaceName: string): string {
  const bare = interfaceName.split('@')[0] ?? interfaceName
  return lowerCamel(bare.slice(bare.lastIndexOf('/') + 1))
}

/**
 * The object behind `Instance.exports`, frozen: jco's shape, each function calling `callSync`. The
 * README's other spellings (a function's WIT name, an interface without its `@version`) answer too, as
 * non-enumerable aliases, so the keys listed stay jco's.
 */
export function jcoExports(
  items: readonly ComponentItem[],
  resources: InstanceResources | undefined,
  callSync: (path: string, args: readonly unknown[]) => unknown,
): Record<string, unknown> {
  const exports: Record<string, unknown> = {}
  // Aliases go in last, so a key jco would use always holds jco's value.
  const aliases: [Record<string, unknown>, string, unknown][] = []
  const addFunction = (
    target: Record<string, unknown>,
    item: ComponentItem,
    fn: (...args: unknown[]) => unknown,
  ) => {
    // Named and sized as jco's generated functions are (`roundtripU8`, one parameter).
    Object.defineProperty(fn, 'name', { value: lowerCamel(item.name) })
    Object.defineProperty(fn, 'length', { value: item.func?.params.length ?? 0 })
    target[lowerCamel(item.name)] = fn
    aliases.push([target, item.name, fn])
  }
  const shortCounts = new Map<string, number>()
  for (const item of items) {
    if (item.kind === 'instance')
      shortCounts.set(shortName(item.name), (shortCounts.get(shortName(item.name)) ?? 0) + 1)
  }
  for (const item of items) {
    if (item.kind === 'func') {
      addFunction(exports, item, (...args: unknown[]) => callSync(item.name, args))
    } else if (item.kind === 'instance') {
      const api: Record<string, unknown> = {}
      for (const member of item.exports ?? []) {
        if (member.kind === 'func' && !member.name.startsWith('[')) {
          addFunction(api, member, (...args: unknown[]) => callSync(`${item.name}#${member.name}`, args))
        } else if (member.kind === 'resource') {
          const cls = resources?.classOf(item.name, member.name)
          if (cls !== undefined) api[upperCamel(member.name)] = cls
        }
      }
      exports[item.name] = api
      const short = shortName(item.name)
      if (shortCounts.get(short) === 1 && !Object.hasOwn(exports, short)) exports[short] = api
      aliases.push([exports, unversioned(item.name), api])
    }
  }
  for (const [target, key, value] of aliases) {
    if (!Object.hasOwn(target, key))
      Object.defineProperty(target, key, { value, writable: true, configurable: true })
  }
  // Shared by every user of the instance, as an ES module namespace is: none may swap a function.
  for (const value of Object.values(exports)) {
    if (typeof value === 'object' && value !== null) Object.freeze(value)
  }
  return Object.freeze(exports)
}
