import { translate, translateAsync } from './errors.js'
import { Instance } from './instance.js'
import { instantiateOptions, type InstantiateOptions } from './options.js'
import type { ComponentItemInfo, NativeComponent } from './native.js'

/** An import or export of a component, with a WIT-like type (`func(name: string) -> string`). */
export interface ComponentItem {
  name: string
  kind: 'func' | 'instance' | 'type' | 'resource' | 'core-func' | 'module' | 'component'
  type: string
  /** The functions of an interface (kind `instance`). */
  exports?: ComponentItem[]
}

/** A compiled component. Instantiate it as often as you like; instances are isolated. */
export class Component {
  readonly #native: NativeComponent
  #exports?: ComponentItem[]
  #imports?: ComponentItem[]

  /** @internal */
  constructor(native: NativeComponent) {
    this.#native = native
  }

  /** Exports; an exported interface lists its functions under `exports`. */
  get exports(): ComponentItem[] {
    this.#exports ??= this.#native.exports as ComponentItemInfo[] as ComponentItem[]
    return this.#exports
  }

  /** Imports; an imported interface lists its functions under `exports`. */
  get imports(): ComponentItem[] {
    this.#imports ??= this.#native.imports as ComponentItemInfo[] as ComponentItem[]
    return this.#imports
  }

  /** Precompiled code for `engine.deserializeComponent` (same wasmtime version and settings). */
  serialize(): Uint8Array {
    return translate(() => this.#native.serialize())
  }

  /** Instantiates off the JS thread (imports are linked on the JS thread first). */
  async instantiate(options: InstantiateOptions): Promise<Instance> {
    const { native, imports } = instantiateOptions(options)
    const instance = await translateAsync(translate(() => this.#native.instantiate(native, imports)))
    return new Instance(instance)
  }

  /** Instantiates on the JS thread. */
  instantiateSync(options: InstantiateOptions): Instance {
    const { native, imports } = instantiateOptions(options)
    return new Instance(translate(() => this.#native.instantiateSync(native, imports)))
  }
}
