import { Component } from './component.js'
import { DisposedError, translate, translateAsync } from './errors.js'
import { CompileChildren } from './isolated-compile.js'
import { Module } from './module.js'
import { NativeComponent, NativeEngine, NativeModule } from './native.js'
import { DEFAULTS, engineOptions, type EngineOptions } from './options.js'
import { CompileCache } from './util/compile-cache.js'
import { isBinary } from './util/names.js'
import { escapeText } from './util/quoted.js'
import { isTooLarge, loadSource, loadSourceSync, type WasmSource } from './util/source.js'

export type { Compiler, EngineOptions } from './options.js'

/** What the on-disk cache did since the engine was created (see {@link EngineOptions.cacheDir}). */
export interface CacheStats {
  /** Compiles answered from a stored file. */
  hits: number
  /** Compiles that found no usable file and compiled (then stored the result). */
  misses: number
  /** Results that could not be stored; the compiles themselves succeeded. */
  writeFailures: number
}

/** Result of {@link Engine.validate}. */
export type ValidationResult = { ok: true } | { ok: false; message: string }

/**
 * Whether `value` is an Engine this class made: a Proxy of one, or an object made on its
 * prototype, passes `instanceof` and then fails at its first use.
 */
export let isEngine: (value: unknown) => value is Engine

/**
 * What validation found, as its result says it: the message quotes the input (a WAT line, a
 * name), so its controls are escaped as an error's are.
 */
function invalid(message: string | null | undefined): ValidationResult {
  return message == null ? { ok: true } : { ok: false, message: escapeText(message) }
}

/** The addon's compile functions of one kind of code (`NativeModule` or `NativeComponent`). */
interface NativeCompiler<T> {
  compile(engine: NativeEngine, bytes: Uint8Array): Promise<T>
  compileSync(engine: NativeEngine, bytes: Uint8Array): T
  cached(engine: NativeEngine, bytes: Uint8Array): Promise<T | null>
  cachedSync(engine: NativeEngine, bytes: Uint8Array): T | null
  adopt(engine: NativeEngine, bytes: Uint8Array, artifact: Uint8Array): Promise<T>
  adoptSync(engine: NativeEngine, bytes: Uint8Array, artifact: Uint8Array): T
}

/**
 * A wasmtime engine: compiles core modules and components, and owns the epoch ticker behind
 * wall-clock deadlines. Compiled code can be used from any thread; close it when done (it is
 * also released on GC, and never keeps the process alive).
 */
export class Engine {
  static {
    isEngine = (value) => typeof value === 'object' && value !== null && #native in value
  }

  readonly #native: NativeEngine
  readonly #maxModuleBytes: number
  readonly #components = new CompileCache<Component>()
  readonly #modules = new CompileCache<Module>()
  /** Set when compiles run in child processes (`compileLimits`). */
  readonly #children: CompileChildren | undefined

  constructor(options: EngineOptions = {}) {
    const { native, compileLimits } = engineOptions(options)
    this.#native = translate(() => new NativeEngine(native))
    this.#maxModuleBytes = native.maxModuleBytes ?? DEFAULTS.maxModuleBytes
    this.#children = compileLimits === undefined ? undefined : new CompileChildren(compileLimits, native)
  }

  /**
   * Compiles a component off the JS thread. Compiling the same bytes again on this engine returns
   * the same Component while it is alive (an in-process cache that compares the bytes), unless
   * four other inputs sharing its sampled key were compiled on the engine since (SECURITY.md); with
   * `cacheDir`, code compiled earlier (by any process) is loaded from disk.
   */
  async compileComponent(source: WasmSource): Promise<Component> {
    this.#checkOpen()
    const loaded = loadSource(source, this.#maxModuleBytes)
    // Given bytes are read now: an await would let the caller change them first.
    const bytes = loaded instanceof Uint8Array ? loaded : await loaded
    return this.#components.getAsync(
      bytes,
      async (own) => new Component(await this.#compile('component', NativeComponent, own)),
    )
  }

  /** Compiles a component on the JS thread. */
  compileComponentSync(source: WasmSource): Component {
    this.#checkOpen()
    const bytes = loadSourceSync(source, this.#maxModuleBytes)
    return this.#components.get(
      bytes,
      (own) => new Component(this.#compileSync('component', NativeComponent, own)),
    )
  }

  /** Compiles a core module off the JS thread. */
  async compileModule(source: WasmSource): Promise<Module> {
    this.#checkOpen()
    const loaded = loadSource(source, this.#maxModuleBytes)
    // Given bytes are read now: an await would let the caller change them first.
    const bytes = loaded instanceof Uint8Array ? loaded : await loaded
    return this.#modules.getAsync(
      bytes,
      async (own) => new Module(await this.#compile('module', NativeModule, own)),
    )
  }

  /** Compiles a core module on the JS thread. */
  compileModuleSync(source: WasmSource): Module {
    this.#checkOpen()
    const bytes = loadSourceSync(source, this.#maxModuleBytes)
    return this.#modules.get(bytes, (own) => new Module(this.#compileSync('module', NativeModule, own)))
  }

  /**
   * Compiles here, or in a child process with `compileLimits` (a binary after a look in
   * `cacheDir`; text, which only the child parses, without).
   */
  async #compile<T>(
    kind: 'module' | 'component',
    compiler: NativeCompiler<T>,
    bytes: Uint8Array,
  ): Promise<T> {
    const children = this.#children
    if (children === undefined) return translateAsync(compiler.compile(this.#native, bytes))
    if (isBinary(bytes)) {
      const cached = await translateAsync(compiler.cached(this.#native, bytes))
      if (cached !== null) return cached
    }
    const artifact = await children.compile(kind, bytes)
    return translateAsync(compiler.adopt(this.#native, bytes, artifact))
  }

  /** {@link Engine.#compile} on the JS thread. */
  #compileSync<T>(kind: 'module' | 'component', compiler: NativeCompiler<T>, bytes: Uint8Array): T {
    const children = this.#children
    if (children === undefined) return translate(() => compiler.compileSync(this.#native, bytes))
    if (isBinary(bytes)) {
      const cached = translate(() => compiler.cachedSync(this.#native, bytes))
      if (cached !== null) return cached
    }
    const artifact = children.compileSync(kind, bytes)
    return translate(() => compiler.adoptSync(this.#native, bytes, artifact))
  }

  /** A closed engine compiles nothing, not even bytes its in-process cache still holds. */
  #checkOpen(): void {
    if (this.#native.closed) throw new DisposedError('the engine was closed')
  }

  /**
   * Checks that `source` would compile (module or component) without compiling it: its size, its
   * structure, every core module in it as the engine checks them, and how much a component's type
   * listings would spell out.
   */
  validate(source: WasmSource): ValidationResult {
    let bytes: Uint8Array
    try {
      bytes = loadSourceSync(source, this.#maxModuleBytes)
    } catch (error) {
      if (isTooLarge(error)) return { ok: false, message: error.message }
      throw error
    }
    // With `compileLimits` a child validates, as it compiles: text's labels, and a component's
    // types checked again at each instantiation, cost more than the input's size (probes H37, H39).
    if (this.#children !== undefined) return invalid(this.#children.validateSync(bytes))
    const message = translate(() => this.#native.validate(bytes))
    return invalid(message)
  }

  /** {@link Engine.validate} off the JS thread (the file, if a path, is read asynchronously too). */
  async validateAsync(source: WasmSource): Promise<ValidationResult> {
    let bytes: Uint8Array
    try {
      const loaded = loadSource(source, this.#maxModuleBytes)
      bytes = loaded instanceof Uint8Array ? loaded : await loaded
    } catch (error) {
      if (isTooLarge(error)) return { ok: false, message: error.message }
      throw error
    }
    if (this.#children !== undefined) return invalid(await this.#children.validate(bytes))
    const message = await translateAsync(translate(() => this.#native.validateAsync(bytes)))
    return invalid(message)
  }

  /**
   * Loads a component from {@link Component.serialize} output. Only pass bytes you produced:
   * precompiled code is trusted machine code. Incompatible bytes throw a CompileError.
   */
  deserializeComponent(bytes: Uint8Array): Component {
    return new Component(translate(() => NativeComponent.deserialize(this.#native, bytes)))
  }

  /** Loads a core module from {@link Module.serialize} output (same trust rule as components). */
  deserializeModule(bytes: Uint8Array): Module {
    return new Module(translate(() => NativeModule.deserialize(this.#native, bytes)))
  }

  /** Stops the ticker thread; later compiles and deadline-bound calls throw DisposedError. */
  close(): void {
    this.#native.close()
    // Compiles in children stop now, as those waiting for one.
    this.#children?.close()
  }

  /** Whether this engine meters fuel (created with `fuel: true`). */
  get fuelEnabled(): boolean {
    return this.#native.fuelEnabled
  }

  /** Counters of the on-disk cache, or `undefined` when the engine has no `cacheDir`. */
  get cacheStats(): CacheStats | undefined {
    return this.#native.cacheStats ?? undefined
  }

  /**
   * The largest wasm input this engine compiles ({@link EngineOptions.maxModuleBytes}); readers of
   * wasm files stop at it, so a huge file is refused before its bytes are held.
   */
  get maxModuleBytes(): number {
    return this.#maxModuleBytes
  }

  /** Whether {@link Engine.close} was called. */
  get closed(): boolean {
    return this.#native.closed
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
