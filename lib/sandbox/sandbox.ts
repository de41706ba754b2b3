/**
 * `loadComponent(dir)`: a Component.toml and its wasm, run under the manifest's limits, in a
 * sandbox that replaces its instance after a trap so one bad call does not take the service down.
 */
import { existsSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'

import type { Component } from '../component.js'
import { Module } from '../module.js'
import { loadManifest, type Manifest, type PolicyOptions } from './manifest.js'
import { claimPluginPaths } from './loaded.js'
import { readComponentWasm, WRITE_ALLOWED, writeDirectory } from './paths.js'
import { Engine, isEngine } from '../engine.js'
import {
  BusyError,
  ComponentError,
  ConfigError,
  DisposedError,
  stoppedGuest,
  WasmError,
  type CapabilityDeniedError,
} from '../errors.js'
import { withHostInterfaces } from '../capabilities/interfaces.js'
import { wasiHttpPermissions } from '../capabilities/wasi-http.js'
import { permissionsFromManifest, type Permissions } from '../capabilities/permissions.js'
import type {
  AsyncCallOptions,
  CallOptions,
  Imports,
  Instance,
  InstantiateOptions,
  WasiOptions,
  Metrics,
} from '../instance.js'
import {
  DEFAULTS,
  loadComponentOptions,
  loweredLimit,
  sandboxCallOptions,
  shown,
  type WasiHttpOptions,
} from '../options.js'
import { openBeneath, procfsAvailable } from '../util/open-beneath.js'
import { isOptionRecord } from '../util/own.js'
import { splitExportPath, unversioned, wasmKind } from '../util/names.js'
import { SerialQueue } from '../util/serial-queue.js'
import { hostCallSignal, isInsideHostCall, Owner, reentryRefused, servedAs } from '../util/reentry.js'

/** Limits a host may set below the manifest's own (never above them). */
export interface SandboxLimits {
  memoryBytes?: number | undefined
  fuel?: number | undefined
  timeoutMs?: number | undefined
}

/** Options of {@link loadComponent}. */
export interface LoadComponentOptions {
  /** Engine to compile with; it must have `fuel: true`. Default: a new one, closed on dispose. */
  engine?: Engine | undefined
  /**
   * Host functions the component imports, keyed as in `instantiate({ imports })`. The reference
   * interfaces (`airssys:host/filesystem`, `http`, `time`) are linked by default, checked against
   * the manifest's `[permissions]`; an interface given here replaces the reference one. A core
   * module's are keyed by import module (`{ env: { f } }`), without the reference interfaces.
   */
  hostFunctions?: Imports | undefined
  /** Called with each CapabilityDeniedError of the reference host interfaces (also counted in `metrics()`). */
  onDenied?: ((error: CapabilityDeniedError) => void | Promise<void>) | undefined
  /** The host's ranges for the manifest's limits (see `loadManifest`). */
  policy?: PolicyOptions | undefined
  /** Tighter limits than the manifest's for this sandbox; a higher value is a ConfigError. */
  limits?: SandboxLimits | undefined
  /**
   * Stops the first instance's start code when aborted (`AbortError`), as `instantiate({ signal })`
   * does. Only loading listens to it: each call takes its own.
   */
  signal?: AbortSignal | undefined
  /**
   * WASI stdio, env and args for a WASI component (locked down by default). stdout and stderr are
   * piped by default (read them with `takeOutput`), not inherited as for a bare instance: a guest
   * must not write into the service's own output. Its files are never set here: they are the
   * manifest's grants (a `filesystem.read` of `dir/**` becomes the read-only preopen `/dir`, a
   * `filesystem.write` of `./scratch` the writable preopen `/scratch`), and its wasi:http
   * requests are checked against `network.outbound` (refusals count in `capabilityDenials`).
   */
  wasi?:
    | (Omit<WasiOptions, 'preopens' | 'http'> & {
        http?: Omit<WasiHttpOptions, 'allow' | 'onDenied'> | undefined
      })
    | undefined
}

/**
 * WASI preopens from `[permissions]`. A `filesystem.read` grant of a whole tree, `dir/**`, becomes
 * the read-only directory `/dir` for the guest; narrower globs (`data/*.json`) cannot be expressed
 * as a preopen and grant nothing through WASI (the reference `filesystem.read` honours them). A
 * `filesystem.write` directory, `./scratch`, becomes the writable directory `/scratch` (reading
 * included), and replaces a read-only preopen of the same guest path. Each write grant is checked
 * again here (a manifest can be built by hand, and the directory may have been swapped for a
 * symlink since it was validated): a refusal is a ConfigError at `permissions.filesystem.write[i]`.
 */
export function wasiPreopens(manifest: Manifest): Record<string, string | { host: string; write: true }> {
  const preopens: Record<string, string | { host: string; write: true }> = {}
  for (const [guest, { names, write }] of Object.entries(preopenGrants(manifest))) {
    const host = path.join(manifest.dir, ...names)
    preopens[guest] = write ? { host, write } : host
  }
  return preopens
}

/** Each preopen of the manifest's grants: its directory's names below the manifest directory. */
function preopenGrants(manifest: Manifest): Record<string, { names: string[]; write: boolean }> {
  const grants: Record<string, { names: string[]; write: boolean }> = {}
  for (const glob of manifest.permissions.filesystem.read) {
    // `**` (or `./**`) is the manifest's directory itself, at `/`.
    if (glob === '**' || glob === './**') {
      grants['/'] = { names: ['.'], write: false }
      continue
    }
    const tree = /^(?:\.\/)?((?:[^*?[\]{}/]+\/)*[^*?[\]{}/]+)\/\*\*$/.exec(glob)
    // A directory not there (yet) is preopened for nothing: the grant stands for filesystem.read,
    // and the guest's WASI view has no such directory.
    if (tree?.[1] !== undefined && existsSync(path.join(manifest.dir, tree[1]))) {
      grants[`/${tree[1]}`] = { names: tree[1].split('/'), write: false }
    }
  }
  // A hand-built manifest may leave `write` out: it grants nothing then.
  const writes = manifest.permissions.filesystem.write ?? []
  writes.forEach((written, index) => {
    const grant = writeDirectory(manifest.dir, written, manifest.wasmPath)
    if (grant.problem !== undefined) {
      const at = `permissions.filesystem.write[${index}]`
      throw new ConfigError(`${manifest.file}: ${at}: ${grant.problem}`, {
        path: at,
        value: written,
        allowed: WRITE_ALLOWED,
      })
    }
    grants[`/${grant.names.join('/')}`] = { names: grant.names, write: true }
  })
  return grants
}

/**
 * The manifest's preopens, each directory opened once below the manifest directory without
 * following a symlink in any component, and handed to WASI as `/proc/self/fd/N`: every
 * instantiation (a restart too) preopens the directory that was checked, even if its path is
 * swapped for a symlink later. Without /proc the preopens are paths (see SECURITY.md). The
 * handles live as long as the sandbox.
 */
async function pinnedPreopens(manifest: Manifest): Promise<{
  preopens: Record<string, string | { host: string; write: true }>
  handles: FileHandle[]
}> {
  const paths = wasiPreopens(manifest)
  if (!(await procfsAvailable())) return { preopens: paths, handles: [] }
  const preopens: Record<string, string | { host: string; write: true }> = {}
  const handles: FileHandle[] = []
  try {
    for (const [guest, { names, write }] of Object.entries(preopenGrants(manifest))) {
      const handle = await openBeneath(manifest.dir, names).catch((error: NodeJS.ErrnoException) => {
        // Gone since preopenGrants saw it (which leaves out a directory not there): left to
        // instantiation, which reports it as for any preopen.
        if (error.code === 'ENOENT') return undefined
        throw new ConfigError(
          `${manifest.file}: the granted directory ${guest} cannot be opened: ${error.code ?? error.message}`,
          {
            path: 'permissions.filesystem',
            value: guest,
          },
        )
      })
      if (handle === undefined) {
        preopens[guest] = paths[guest]!
        continue
      }
      handles.push(handle)
      if (!(await handle.stat()).isDirectory()) {
        throw new ConfigError(`${manifest.file}: the granted ${guest} is not a directory`, {
          path: 'permissions.filesystem',
          value: guest,
        })
      }
      const host = `/proc/self/fd/${handle.fd}`
      preopens[guest] = write ? { host, write } : host
    }
    return { preopens, handles }
  } catch (error) {
    await Promise.all(handles.map((handle) => handle.close()))
    throw error
  }
}

/**
 * The end of `text` that fits in `limitBytes` of UTF-8, starting on a whole character: what a
 * capped stream keeps when its oldest bytes are dropped.
 */
function newestBytes(text: string, limitBytes: number): string {
  // Each UTF-16 unit is 1 to 3 UTF-8 bytes: short texts need no measuring, and what is kept
  // lies within the last `limitBytes` units, so only that much is ever measured or encoded.
  if (text.length * 3 <= limitBytes) return text
  let tail = text.length > limitBytes ? text.slice(-limitBytes) : text
  // A cut between the halves of a surrogate pair leaves half a character.
  if (tail !== text && /^[\uDC00-\uDFFF]/.test(tail)) tail = tail.slice(1)
  if (Buffer.byteLength(tail) <= limitBytes) return tail
  const bytes = Buffer.from(tail)
  let start = bytes.length - limitBytes
  // Skip continuation bytes (10xxxxxx) so the kept part starts at a character.
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++
  return bytes.subarray(start).toString()
}

/** Instance metrics summed over every instance the sandbox has had, plus how many it replaced. */
export interface SandboxMetrics extends Metrics {
  /**
   * Instances replaced after a trap (or a host function failure, or an abort). A core module's
   * instance replaced after a `_start` that ran to its end is not counted.
   */
  restarts: number
  /** Requests the reference host interfaces denied (CapabilityDeniedError, see `onDenied`). */
  capabilityDenials: number
}

interface RetiredTotals {
  calls: number
  traps: number
  totalFuel: number
  lastCallFuel: number
  deniedGrowths: number
  peakBytes: number
}

/**
 * Closes the pinned preopen directories of a sandbox that is garbage-collected without
 * `dispose()`: left to Node, each handle would be closed with a warning (and a deprecation
 * warning, DEP0137) in the host's output. The handles themselves stay reachable from here until
 * then.
 */
const preopenCleanup = new FinalizationRegistry<FileHandle[]>((handles) => {
  for (const handle of handles) handle.close().catch(() => {})
})

/** A sandbox collected without `dispose()` lets go of its claim on its files (see loaded.ts). */
const claimCleanup = new FinalizationRegistry<() => void>((release) => release())

/** Whether `path` names a command component's `wasi:cli/run` `run` (any version, either spelling). */
function isCommandRun(path: string): boolean {
  const { interfaceName, name } = splitExportPath(path)
  return interfaceName !== undefined && unversioned(interfaceName) === 'wasi:cli/run' && name === 'run'
}

/**
 * A component loaded from a Component.toml, running under its manifest's limits.
 *
 * Calls run one at a time, in order (`call`s queue; `callSync` while a `call` is pending throws
 * BusyError). When a call traps (deadline, fuel, memory, `unreachable`, ...), a host function
 * throws, or a call is aborted, wasmtime cannot re-enter that instance, so the sandbox retires it
 * and the next call runs on a fresh one, whose start code runs under that call's own budget and
 * signal. The replacement starts from the component's initial state: everything the guest kept in
 * memory or globals is lost (counted in `metrics().restarts`), and so are the guest's resource
 * objects the host holds (passed again, a DisposedError). A `result::err` (ComponentError) or
 * a bad argument (TypeError) is not a trap and keeps the instance.
 */
export class Sandbox {
  /** The validated manifest the sandbox runs by. */
  readonly manifest: Manifest
  /**
   * The compiled component, or core module (shared with other sandboxes of the same bytes on the
   * same engine).
   */
  readonly component: Component | Module
  readonly #engine: Engine
  readonly #ownsEngine: boolean
  readonly #options: InstantiateOptions
  readonly #fuel: number
  readonly #timeoutMs: number
  readonly #permissions: Permissions
  readonly #preopenHandles: FileHandle[]
  readonly #releasePaths: () => void
  #instance: Instance | undefined
  /** The sandbox's calls as its host functions see them, whichever instance serves them. */
  readonly #owner = new Owner()
  /** The instance `dispose()` let go of: its counters stay in the sums (a call may still end on it). */
  #last: Instance | undefined
  #retiredOutput = { stdout: '', stderr: '' }
  readonly #outputLimitBytes: number
  readonly #calls = new SerialQueue()
  #restarts = 0
  #retired: RetiredTotals = {
    calls: 0,
    traps: 0,
    totalFuel: 0,
    lastCallFuel: 0,
    deniedGrowths: 0,
    peakBytes: 0,
  }
  #disposed = false
  /** What a replacement's start burnt, part of the fuel of the call that made it. */
  #startFuel: { instance: Instance; fuel: number } | undefined

  /** @internal Use {@link loadComponent}. */
  constructor(parts: {
    manifest: Manifest
    component: Component | Module
    engine: Engine
    ownsEngine: boolean
    options: InstantiateOptions & { fuel: number; timeoutMs: number }
    instance: Instance
    permissions: Permissions
    preopenHandles: FileHandle[]
    releasePaths: () => void
  }) {
    this.#preopenHandles = parts.preopenHandles
    if (parts.preopenHandles.length > 0) preopenCleanup.register(this, parts.preopenHandles, this)
    this.#releasePaths = parts.releasePaths
    claimCleanup.register(this, parts.releasePaths, this)
    this.manifest = parts.manifest
    this.component = parts.component
    this.#engine = parts.engine
    this.#ownsEngine = parts.ownsEngine
    this.#options = parts.options
    this.#fuel = parts.options.fuel
    this.#timeoutMs = parts.options.timeoutMs
    this.#instance = parts.instance
    this.#permissions = parts.permissions
    const { wasi } = parts.options
    this.#outputLimitBytes =
      (wasi === false ? undefined : wasi?.outputLimitBytes) ?? DEFAULTS.outputLimitBytes
  }

  /**
   * Calls an export off the JS thread. `fuel` and `timeoutMs` may lower the manifest's per-call
   * limits for this call, never raise them.
   */
  call(name: string, args: readonly unknown[] = [], options?: AsyncCallOptions): Promise<unknown> {
    // Checked now, not at its turn: waiting, it would wait for the call that waits for it.
    if (this.#disposed) return Promise.reject(new DisposedError('this sandbox was disposed'))
    if (isInsideHostCall(this.#owner)) return Promise.reject(reentryRefused('call()', 'sandbox'))
    let given: ReturnType<typeof sandboxCallOptions>
    try {
      given = sandboxCallOptions(options, false)
    } catch (error) {
      return Promise.reject(error)
    }
    // Aborted while it waits its turn, a call rejects at once; the guest never ran, so the
    // instance is fine and is kept.
    return this.#calls.run(() => servedAs(this.#owner, () => this.#callNow(name, args, given)), given.signal)
  }

  async #callNow(
    name: string,
    args: readonly unknown[],
    given: ReturnType<typeof sandboxCallOptions>,
  ): Promise<unknown> {
    const { signal, ...budget } = this.#budget(given)
    let instance = this.#instance
    if (instance === undefined) {
      const fresh = this.component.instantiate({ ...this.#options, ...budget, signal })
      instance = this.#adopt(
        await fresh.catch((error: unknown) => {
          throw this.#failedStart(error)
        }),
      )
    }
    // A core instance's calls so far: a call that fails without adding one never entered the
    // guest. Read only for a call with a signal: an abort is how a call ends before its guest
    // runs, besides the errors #spent tells by their class.
    const callsBefore =
      signal !== undefined && this.component instanceof Module ? instance.metrics().calls : undefined
    let result: unknown
    try {
      result = await instance.call(name, args, { ...budget, signal })
    } catch (error) {
      if (this.#spent(instance, name, error, callsBefore)) this.#retire(instance, true)
      throw error
    }
    if (this.#spent(instance, name)) this.#retire(instance, false)
    return result
  }

  /**
   * Makes `instance`, fresh for a call, the sandbox's. A spent instance is replaced at the next
   * call, whose budget (and signal) its start code runs under, not while the call that spent it
   * settles, where that code ran under the manifest's limits whatever the caller asked.
   */
  #adopt(instance: Instance): Instance {
    if (this.#disposed) {
      instance.dispose()
      throw new DisposedError('this sandbox was disposed')
    }
    this.#instance = instance
    this.#startFuel = { instance, fuel: instance.metrics().fuel.totalConsumed }
    return instance
  }

  /** The fuel of `instance`'s last call, with what its start burnt when that call made it. */
  #lastCallFuel(instance: Instance, metrics: Metrics): number {
    const start = this.#startFuel
    const made = start !== undefined && start.instance === instance && metrics.calls === 1
    return metrics.fuel.lastCallConsumed + (made ? start.fuel : 0)
  }

  /**
   * Counts a start that failed as a call of the sandbox's (and, when it stopped the running guest,
   * a trap), with the fuel it burnt as far as known, which is then the last call's, and keeps the
   * memory figures and output it left; returns `error`.
   */
  #failedStart(error: unknown): unknown {
    this.#retired.calls++
    if (stoppedGuest(error)) this.#retired.traps++
    const left = error instanceof WasmError ? error.failedStart : undefined
    // Unknown (a deadline or abort that stopped it inside wasm, or no guest ran) is 0, as for a call.
    const burnt = left?.fuelConsumed ?? 0
    this.#retired.totalFuel += burnt
    this.#retired.lastCallFuel = burnt
    if (left !== undefined) {
      this.#retired.deniedGrowths += left.deniedGrowths
      this.#retired.peakBytes = Math.max(this.#retired.peakBytes, left.peakBytes)
      this.#keepOutput(left)
    }
    return error
  }

  /**
   * Whether `instance` must be replaced after a call of `name` that failed with `error`, or
   * returned: a component instance a trap poisoned (wasmtime cannot enter it again) or whose
   * `wasi:cli/run` ran, or a core module's after any failure of its guest and after `_start`.
   * wasmtime lets a core instance run on after a trap, but its memory after one is not to be
   * trusted, and wasi-libc runs `_start` (a component's `run`) once per instance: a second traps.
   */
  #spent(instance: Instance, name: string, ...failure: [error: unknown, callsBefore?: number] | []): boolean {
    if (instance.poisoned) return true
    // A command component's `run` is its `_start`: wasi-libc's runs once per instance too.
    // Returning `err` is returning too (a wit-bindgen command's `Result<(), ()>`).
    if (!(this.component instanceof Module)) {
      return isCommandRun(name) && (failure.length === 0 || failure[0] instanceof ComponentError)
    }
    const [error, callsBefore] = failure
    // Refused before the guest ran (a bad argument, a busy instance, an abort that came first):
    // its state is untouched.
    const refused =
      error instanceof TypeError ||
      error instanceof BusyError ||
      (callsBefore !== undefined && instance.metrics().calls === callsBefore)
    if (failure.length > 0 && refused) return false
    return name === '_start' || failure.length > 0
  }

  /**
   * Calls an export on the JS thread (blocking it while the guest runs; the deadline still
   * applies). Throws BusyError while a `call` is pending.
   */
  callSync(name: string, args: readonly unknown[] = [], options?: CallOptions): unknown {
    // Disposed is for good; busy only for now.
    if (this.#disposed) throw new DisposedError('this sandbox was disposed')
    if (isInsideHostCall(this.#owner)) throw reentryRefused('callSync()', 'sandbox')
    if (this.#calls.pending > 0) {
      throw new BusyError('callSync: an async call on this sandbox is still pending; await it first')
    }
    return servedAs(this.#owner, () => this.#callSyncNow(name, args, options))
  }

  #callSyncNow(name: string, args: readonly unknown[], options: CallOptions | undefined): unknown {
    const { fuel, timeoutMs } = this.#budget(sandboxCallOptions(options, true))
    let instance = this.#instance
    if (instance === undefined) {
      try {
        instance = this.component.instantiateSync({ ...this.#options, fuel, timeoutMs })
      } catch (error) {
        throw this.#failedStart(error)
      }
      this.#adopt(instance)
    }
    let result: unknown
    try {
      result = instance.callSync(name, args, { fuel, timeoutMs })
    } catch (error) {
      if (this.#spent(instance, name, error)) this.#retire(instance, true)
      throw error
    }
    if (this.#spent(instance, name)) this.#retire(instance, false)
    return result
  }

  /** A call's checked options, each limit lowered to the sandbox's where not given. */
  #budget(given: ReturnType<typeof sandboxCallOptions>): {
    fuel: number
    timeoutMs: number
    signal: AbortSignal | undefined
  } {
    if (this.#disposed) throw new DisposedError('this sandbox was disposed')
    const { cpu } = this.manifest.resources
    // The ceiling a call is refused by: the manifest's, or the lower one the host set at load.
    const ceiling = (field: string, manifestValue: number, value: number, option: string) =>
      value < manifestValue ? `${field} as lowered by limits.${option}` : field
    return {
      fuel: loweredLimit(
        'fuel',
        'fuel',
        given.fuel,
        this.#fuel,
        ceiling('max_fuel', cpu.maxFuel, this.#fuel, 'fuel'),
      ),
      timeoutMs: loweredLimit(
        'timeoutMs',
        'timeoutMs',
        given.timeoutMs,
        this.#timeoutMs,
        ceiling('timeout', cpu.timeoutMs, this.#timeoutMs, 'timeoutMs'),
      ),
      // Own even when undefined: a destructured field read past an object's own fields.
      signal: given.signal,
    }
  }

  /**
   * Keeps what a guest wrote before it trapped or exited, often the explanation, but within one
   * instance's cap, or a guest that keeps failing piles up output without bound.
   */
  #keepOutput(output: { stdout: string; stderr: string }): void {
    this.#retiredOutput = {
      stdout: newestBytes(this.#retiredOutput.stdout + output.stdout, this.#outputLimitBytes),
      stderr: newestBytes(this.#retiredOutput.stderr + output.stderr, this.#outputLimitBytes),
    }
  }

  /** Folds a spent instance's counters into the totals and frees it; `failed`: a restart. */
  #retire(instance: Instance, failed: boolean): void {
    const metrics = instance.metrics()
    const totals = this.#retired
    totals.calls += metrics.calls
    totals.traps += metrics.traps
    totals.totalFuel += metrics.fuel.totalConsumed
    totals.lastCallFuel = this.#lastCallFuel(instance, metrics)
    totals.deniedGrowths += metrics.memory.deniedGrowths
    totals.peakBytes = Math.max(totals.peakBytes, metrics.memory.peakBytes)
    this.#keepOutput(instance.takeOutput())
    instance.dispose()
    if (this.#instance === instance) this.#instance = undefined
    if (this.#last === instance) this.#last = undefined
    // A sandbox disposed meanwhile makes no new instance: nothing restarts.
    if (failed && !this.#disposed) this.#restarts++
  }

  /**
   * Counters over the sandbox's whole life (every instance it has had): calls, traps, fuel,
   * denied growths and peak memory add up across restarts; `currentBytes` is the live instance's.
   */
  metrics(): SandboxMetrics {
    const live = this.#instance ?? this.#last
    const current = live?.metrics()
    const totals = this.#retired
    return {
      memory: {
        currentBytes: this.#instance === undefined ? 0 : (current?.memory.currentBytes ?? 0),
        peakBytes: Math.max(current?.memory.peakBytes ?? 0, totals.peakBytes),
        limitBytes: this.#options.limits.memoryBytes,
        deniedGrowths: (current?.memory.deniedGrowths ?? 0) + totals.deniedGrowths,
      },
      fuel: {
        // After a restart the last call ran on the retired instance.
        lastCallConsumed:
          live !== undefined && current !== undefined && current.calls > 0
            ? this.#lastCallFuel(live, current)
            : totals.lastCallFuel,
        totalConsumed: (current?.fuel.totalConsumed ?? 0) + totals.totalFuel,
      },
      calls: (current?.calls ?? 0) + totals.calls,
      traps: (current?.traps ?? 0) + totals.traps,
      restarts: this.#restarts,
      capabilityDenials: this.#permissions.deniedCount,
    }
  }

  /**
   * WASI output piped since the last take (the default for a sandbox), across instance restarts:
   * at most `wasi.outputLimitBytes` (1 MiB by default) per stream in all, the oldest bytes dropped.
   */
  takeOutput(): { stdout: string; stderr: string } {
    const current = this.#instance?.takeOutput() ?? { stdout: '', stderr: '' }
    const taken = {
      stdout: newestBytes(this.#retiredOutput.stdout + current.stdout, this.#outputLimitBytes),
      stderr: newestBytes(this.#retiredOutput.stderr + current.stderr, this.#outputLimitBytes),
    }
    this.#retiredOutput = { stdout: '', stderr: '' }
    return taken
  }

  /**
   * Frees the instance; later calls throw DisposedError. An engine the sandbox created itself is
   * closed once the pending calls have ended (a running call still stops at its deadline).
   */
  dispose(): void {
    if (this.#disposed) return
    this.#disposed = true
    this.#calls.abandonWaiting(() => new DisposedError('this sandbox was disposed'))
    this.#instance?.dispose()
    this.#last = this.#instance
    this.#instance = undefined
    // The pinned preopen directories are needed until the last call ends (a restart reopens them).
    preopenCleanup.unregister(this)
    claimCleanup.unregister(this)
    void this.#calls.idle.then(async () => {
      // Its guest writes no more: another plugin may now use its directories.
      this.#releasePaths()
      if (this.#ownsEngine) this.#engine.close()
      await Promise.all(this.#preopenHandles.map((handle) => handle.close()))
    })
  }

  /** Whether {@link Sandbox.dispose} was called. */
  get disposed(): boolean {
    return this.#disposed
  }

  [Symbol.dispose](): void {
    this.dispose()
  }
}

/**
 * `loadComponent`'s `wasi` option, refusing what would grant the guest more than its manifest
 * does: a sandbox's files are its `filesystem` grants and its HTTP requests are checked against
 * `network.outbound`. A JS caller is not stopped by the .d.ts, and a grant dropped without a word
 * would leave the host believing the guest has it.
 */
function sandboxWasi(wasi: LoadComponentOptions['wasi']): LoadComponentOptions['wasi'] {
  if (wasi === undefined) return wasi
  // Spread into the instance's options, a `5`, `true` or `null` was no WASI option at all.
  if (!isOptionRecord(wasi)) {
    throw new ConfigError(`wasi: expected an object, got ${shown(wasi)}`, { path: 'wasi', value: wasi })
  }
  const given = wasi as WasiOptions
  if (given.preopens !== undefined) {
    throw new ConfigError(
      "wasi.preopens: a sandbox's files come only from its manifest's [permissions] " +
        'filesystem.read ("./data/**" is the read-only /data) and filesystem.write; grant them there',
      { path: 'wasi.preopens', value: given.preopens },
    )
  }
  const http = given.http as Partial<WasiHttpOptions> | undefined
  if (typeof http === 'object' && http !== null) {
    if (http.allow !== undefined) {
      throw new ConfigError(
        "wasi.http.allow: a sandbox's HTTP requests are checked against its manifest's " +
          '[permissions] network.outbound only; grant the hosts there',
        { path: 'wasi.http.allow', value: http.allow },
      )
    }
    if (http.onDenied !== undefined) {
      throw new ConfigError(
        "wasi.http.onDenied: use loadComponent's onDenied, which sees every denial of the sandbox",
        { path: 'wasi.http.onDenied' },
      )
    }
  }
  return wasi
}

/**
 * The wasm a manifest names, compiled: a component, or a core module (Go, TinyGo and wasi-sdk
 * build preview 1 modules only), as its header says.
 */
export function compileManifestWasm(engine: Engine, bytes: Uint8Array): Promise<Component | Module> {
  return wasmKind(bytes) === 'module' ? engine.compileModule(bytes) : engine.compileComponent(bytes)
}

/**
 * Loads the component (or WASI preview 1 core module) of a directory holding a Component.toml (or
 * of the manifest file itself):
 * validates the manifest against `policy`, compiles the wasm it names (reusing compiled code for
 * the same bytes on the same engine), instantiates it with the manifest's memory, fuel and timeout
 * limits and `hostFunctions` as imports, and returns a {@link Sandbox}.
 */
export async function loadComponent(dir: string, options: LoadComponentOptions = {}): Promise<Sandbox> {
  options = loadComponentOptions(options)
  const wasi = sandboxWasi(options.wasi)
  const manifest = loadManifest(dir, { policy: options.policy })
  const permissions = permissionsFromManifest(manifest, { onDenied: options.onDenied })
  const { memory, cpu } = manifest.resources
  const pinned = await pinnedPreopens(manifest)
  let releasePaths: () => void
  try {
    releasePaths = claimPluginPaths(manifest)
  } catch (error) {
    await Promise.all(pinned.handles.map((handle) => handle.close()))
    throw error
  }
  const instantiateOptions = {
    limits: {
      memoryBytes: loweredLimit(
        'limits.memoryBytes',
        'limits.memoryBytes',
        options.limits?.memoryBytes,
        memory.maxBytes,
        'max_bytes',
      ),
      tableElements: memory.maxTableElements,
    },
    fuel: loweredLimit('fuel', 'limits.fuel', options.limits?.fuel, cpu.maxFuel, 'max_fuel'),
    timeoutMs: loweredLimit(
      'timeoutMs',
      'limits.timeoutMs',
      options.limits?.timeoutMs,
      cpu.timeoutMs,
      'timeout',
    ),
    imports: withHostInterfaces(options.hostFunctions, permissions, { signal: hostCallSignal }),
    // Piped, not inherited, unless the host asks: an untrusted guest writing to the service's
    // own stdout could flood or forge its logs, and block it on a full pipe. Piped output is
    // capped (see takeOutput), so a guest cannot grow it either.
    wasi: {
      ...wasi,
      stdout: wasi?.stdout === undefined ? 'pipe' : wasi.stdout,
      stderr: wasi?.stderr === undefined ? 'pipe' : wasi.stderr,
      preopens: pinned.preopens,
      http: wasi?.http,
      // Own, even when undefined: the sandbox reads it from this object, which has a prototype.
      outputLimitBytes: wasi?.outputLimitBytes,
      [wasiHttpPermissions]: permissions,
    },
  }

  const engine = options.engine === undefined ? new Engine({ fuel: true }) : options.engine
  const ownsEngine = options.engine === undefined
  try {
    if (!isEngine(engine)) {
      throw new ConfigError('engine: expected an Engine', { path: 'engine', value: engine })
    }
    // Before the fuel check: a closed engine reports no fuel, which would blame the wrong thing.
    if (engine.closed) throw new DisposedError('engine: the engine was closed; pass an open one')
    if (!engine.fuelEnabled) {
      throw new ConfigError(
        "engine: the manifest's max_fuel needs an engine created with new Engine({ fuel: true })",
        { path: 'engine' },
      )
    }
    // From the file that was checked, opened following no symlink: not `manifest.wasmPath` again.
    const bytes = await readComponentWasm(manifest, engine.maxModuleBytes)
    const component = await compileManifestWasm(engine, bytes)
    // A core module imports functions by module name only: the reference interfaces are for
    // components, and a module's capabilities are WASI preview 1's.
    if (component instanceof Module) instantiateOptions.imports = options.hostFunctions
    const instance = await component.instantiate({ ...instantiateOptions, signal: options.signal })
    return new Sandbox({
      manifest,
      component,
      engine,
      ownsEngine,
      options: instantiateOptions,
      instance,
      permissions,
      preopenHandles: pinned.handles,
      releasePaths,
    })
  } catch (error) {
    releasePaths()
    if (ownsEngine) engine.close()
    await Promise.all(pinned.handles.map((handle) => handle.close()))
    throw error
  }
}
