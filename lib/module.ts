import { translate, translateAsync } from './errors.js'
import { Instance, type CoreFunction } from './instance.js'
import {
  instantiateOptions,
  reading,
  type InstantiateOptions,
  type InstantiateSyncOptions,
} from './options.js'
import { currentCallers, ownedImports, Owner } from './util/reentry.js'
import { withAbort } from './util/signal.js'
import type { ModuleItemInfo, NativeModule } from './native.js'

/** An import or export of a core module, with its core type (`func(i32, i32) -> i32`). */
export interface ModuleItem {
  /** The import's module name (imports only). */
  module?: string
  name: string
  kind: 'func' | 'memory' | 'table' | 'global' | 'tag'
  type: string
  /** A function's parameter and result types (kind `func`). */
  func?: CoreFuncType
}

/** The type of a core function, each value type by name (`i32`, `i64`, `f32`, `f64`, `v128`, `funcref`, ...). */
export interface CoreFuncType {
  params: string[]
  results: string[]
}

/** A compiled core wasm module. */
export class Module {
  readonly #native: NativeModule
  #functions: CoreFunction[] | undefined

  /** @internal */
  constructor(native: NativeModule) {
    this.#native = native
  }

  get exports(): ModuleItem[] {
    return this.#native.exports as ModuleItemInfo[] as ModuleItem[]
  }

  get imports(): ModuleItem[] {
    return this.#native.imports as ModuleItemInfo[] as ModuleItem[]
  }

  /** Precompiled code for `engine.deserializeModule` (same wasmtime version and settings). */
  serialize(): Uint8Array {
    return translate(() => this.#native.serialize())
  }

  /** Instantiates off the JS thread; imports are `{ moduleName: { functionName } }`. */
  async instantiate(options: InstantiateOptions): Promise<Instance> {
    const { native, imports, signal, http } = instantiateOptions(options)
    // Its start code's host functions serve what the code instantiating it serves.
    const owner = new Owner(currentCallers())
    const instance = await withAbort(signal, (handle) =>
      translateAsync(
        translate(() =>
          this.#native.instantiate(
            native,
            reading('imports', () => ownedImports(imports, owner)),
            http?.client,
            handle,
          ),
        ),
      ),
    ).finally(() => owner.endCall())
    return new Instance(instance, owner, http, [], this.#exportedFunctions())
  }

  /** Instantiates on the JS thread. */
  instantiateSync(options: InstantiateSyncOptions): Instance {
    const { native, imports, http } = instantiateOptions(options, true)
    const owner = new Owner()
    return new Instance(
      owner.serve(() =>
        translate(() =>
          this.#native.instantiateSync(
            native,
            reading('imports', () => ownedImports(imports, owner)),
            http?.client,
          ),
        ),
      ),
      owner,
      http,
      [],
      this.#exportedFunctions(),
    )
  }

  /**
   * The exported functions' names and parameter counts, for {@link Instance.exports} (listed once
   * per module).
   */
  #exportedFunctions(): CoreFunction[] {
    this.#functions ??= this.exports
      .filter((item) => item.kind === 'func')
      .map((item) => ({ name: item.name, params: item.func?.params.length ?? 0 }))
    return this.#functions
  }
}
