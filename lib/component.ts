import { translate, translateAsync } from './errors.js'
import { Instance } from './instance.js'
import {
  instantiateOptions,
  reading,
  type InstantiateOptions,
  type InstantiateSyncOptions,
} from './options.js'
import { expandResourceImports, hostClassesOf } from './resources.js'
import { bareListing, ownField } from './util/own.js'
import { currentCallers, ownedImports, Owner } from './util/reentry.js'
import { withAbort } from './util/signal.js'
import type { ComponentItemInfo, NativeComponent } from './native.js'

/**
 * A component value type. wasmtime's types are structural, so a record, variant, enum or flags
 * type is described by its members (kebab-case WIT names), not by the name the WIT gives it.
 */
export type WitType =
  | {
      kind:
        | 'bool'
        | 's8'
        | 'u8'
        | 's16'
        | 'u16'
        | 's32'
        | 'u32'
        | 's64'
        | 'u64'
        | 'f32'
        | 'f64'
        | 'char'
        | 'string'
        | 'future'
        | 'stream'
        | 'error-context'
    }
  /** `length` is set for a fixed-length list. */
  | { kind: 'list'; element: WitType; length?: number }
  | { kind: 'option'; element: WitType }
  | { kind: 'map'; key: WitType; value: WitType }
  | { kind: 'record'; fields: { name: string; type: WitType }[] }
  | { kind: 'tuple'; types: WitType[] }
  | { kind: 'variant'; cases: { name: string; type?: WitType }[] }
  | { kind: 'enum' | 'flags'; names: string[] }
  /** `ok` and `err` are absent when that side has no payload. */
  | { kind: 'result'; ok?: WitType; err?: WitType }
  /**
   * A resource handle: `resource` is its WIT name, `interface` the interface defining it, and
   * `imported` whether the host implements it (an imported resource) or the guest does.
   */
  | { kind: 'own' | 'borrow'; resource?: string; interface?: string; imported?: boolean }

/** The type of a component function; `result` is absent when it returns nothing. */
export interface WitFuncType {
  params: { name: string; type: WitType }[]
  result?: WitType
}

/** An import or export of a component, with a WIT-like type (`func(name: string) -> string`). */
export interface ComponentItem {
  name: string
  kind: 'func' | 'instance' | 'type' | 'resource' | 'core-func' | 'module' | 'component'
  /** The spelling of `func` (or, for kind `type`, of the type). */
  type: string
  /**
   * A function's parameter and result types (kind `func`). Not enumerable, so an item prints as
   * `{ name, kind, type, exports? }`: a spread, `structuredClone` or JSON copy drops it.
   */
  func?: WitFuncType
  /** The functions of an interface (kind `instance`). */
  exports?: ComponentItem[]
  /**
   * An imported interface the runtime's WASI serves whole (a `wasi:*` interface of preview 2 at a
   * 0.2 version, with no member the runtime lacks): `imports` need not give it, unless `wasi` is
   * `false`. Absent on every other item.
   */
  providedByRuntime?: boolean
  /**
   * A resource's functions in its interface, by their wasmtime names (kind `resource`; absent
   * for a resource an interface only re-exports): `[constructor]thing`, `[method]thing.foo`,
   * `[static]thing.bar`. Not enumerable, as `func`.
   */
  members?: ResourceMembers
}

/** A resource's constructor, methods and statics, by their wasmtime names. */
export interface ResourceMembers {
  constructor?: string
  methods: string[]
  statics: string[]
}

/**
 * The listing with each resource's constructor, methods and statics named on it. `func` and
 * `members` are there for code, not for a reader: they are not enumerable, so an item prints, and
 * compares, as the README shows it (`{ name, kind, type, exports? }`).
 */
function withMembers(items: readonly ComponentItemInfo[]): ComponentItem[] {
  const functions = items.filter((item) => item.kind === 'func').map((item) => item.name)
  return items.map((listed) => {
    // Own fields only: one an item leaves out would come from a polluted Object.prototype.
    const exports = ownField(listed, 'exports')
    const item: ComponentItem = {
      name: listed.name,
      kind: listed.kind as ComponentItem['kind'],
      type: listed.type,
    }
    if (exports !== undefined) item.exports = withMembers(exports)
    if (ownField(listed, 'providedByRuntime') === true) item.providedByRuntime = true
    let members: ResourceMembers | undefined
    if (item.kind === 'resource') {
      const constructor = functions.find((name) => name === `[constructor]${item.name}`)
      const methods = functions.filter((name) => name.startsWith(`[method]${item.name}.`))
      const statics = functions.filter((name) => name.startsWith(`[static]${item.name}.`))
      if (constructor !== undefined || methods.length > 0 || statics.length > 0) {
        members = { ...(constructor === undefined ? {} : { constructor }), methods, statics }
        // Without one, `constructor` must not read the `Object` every object inherits (a
        // function where a string or undefined is typed); hidden, so copies still look as shown.
        if (constructor === undefined) Object.defineProperty(members, 'constructor', { value: undefined })
      }
    }
    for (const [key, value] of [
      ['func', ownField(listed, 'func')],
      ['members', members],
    ] as const) {
      if (value !== undefined) Object.defineProperty(item, key, { value, writable: true, configurable: true })
    }
    return item
  })
}

/** A compiled component. Instantiate it as often as you like; instances are isolated. */
export class Component {
  readonly #native: NativeComponent
  #listed?: { exports: ComponentItem[]; imports: ComponentItem[] }

  /** @internal */
  constructor(native: NativeComponent) {
    this.#native = native
  }

  /**
   * Exports; an exported interface lists its functions under `exports`. A fresh copy each time:
   * compiling the same bytes again returns this same component, which others may hold.
   */
  get exports(): ComponentItem[] {
    return withMembers(this.#native.exports)
  }

  /** Imports; an imported interface lists its functions under `exports`. A fresh copy each time. */
  get imports(): ComponentItem[] {
    return withMembers(this.#native.imports)
  }

  /**
   * The listings as the package's own code reads them (see {@link bareListing}): its own copy, so
   * that what a caller does to `exports` changes no instance's `exports`.
   */
  #listings(): { exports: ComponentItem[]; imports: ComponentItem[] } {
    this.#listed ??= { exports: bareListing(this.exports), imports: bareListing(this.imports) }
    return this.#listed
  }

  /** Precompiled code for `engine.deserializeComponent` (same wasmtime version and settings). */
  serialize(): Uint8Array {
    return translate(() => this.#native.serialize())
  }

  /**
   * Instantiates off the JS thread (imports are linked on the JS thread first). `E` types
   * `instance.exports`: pass the `Exports` that `airssys-wasm types` writes for this component.
   */
  async instantiate<E = Record<string, unknown>>(options: InstantiateOptions): Promise<Instance<E>> {
    const { native, imports, signal, http } = instantiateOptions(options)
    // Its start code's host functions serve what the code instantiating it serves.
    const owner = new Owner(currentCallers())
    const listed = this.#listings()
    const linked = reading('imports', () =>
      ownedImports(expandResourceImports(imports, listed.imports), owner),
    )
    const instance = await withAbort(signal, (handle) =>
      translateAsync(translate(() => this.#native.instantiate(native, linked, http?.client, handle))),
    ).finally(() => owner.endCall())
    return new Instance<E>(instance, owner, http, listed.exports, [], hostClassesOf(imports, listed.imports))
  }

  /** Instantiates on the JS thread; `E` as for {@link Component.instantiate}. */
  instantiateSync<E = Record<string, unknown>>(options: InstantiateSyncOptions): Instance<E> {
    const { native, imports, http } = instantiateOptions(options, true)
    const owner = new Owner()
    const listed = this.#listings()
    const linked = reading('imports', () =>
      ownedImports(expandResourceImports(imports, listed.imports), owner),
    )
    return new Instance<E>(
      owner.serve(() => translate(() => this.#native.instantiateSync(native, linked, http?.client))),
      owner,
      http,
      listed.exports,
      [],
      hostClassesOf(imports, listed.imports),
    )
  }
}
