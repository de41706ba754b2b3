/** airssys-wasm: run untrusted WebAssembly safely in Node.js, on Wasmtime. */
export {
  Engine,
  type CacheStats,
  type Compiler,
  type EngineOptions,
  type ValidationResult,
} from './engine.js'
export {
  Component,
  type ComponentItem,
  type ResourceMembers,
  type WitFuncType,
  type WitType,
} from './component.js'
export { Module, type CoreFuncType, type ModuleItem } from './module.js'
export { hostCallSignal } from './util/reentry.js'
export {
  Instance,
  type AsyncCallOptions,
  type CallOptions,
  type Imports,
  type InstantiateOptions,
  type InstantiateSyncOptions,
  type FuelMetrics,
  type MemoryMetrics,
  type Metrics,
  type WasiOptions,
  type WasiHttpOptions,
} from './instance.js'
export type { WasmSource } from './util/source.js'
export {
  AbortError,
  ArithmeticTrapError,
  BusyError,
  CapabilityDeniedError,
  CompileError,
  ComponentError,
  ConfigError,
  DisposedError,
  GuestAbiError,
  HostError,
  HostLimitError,
  InstancePoisonedError,
  LinkError,
  MemoryLimitError,
  MemoryOutOfBoundsError,
  OutOfFuelError,
  PoolExhaustedError,
  StackOverflowError,
  TimeoutError,
  TrapError,
  UnreachableError,
  WasiExitError,
  WasmError,
  WasmTypeError,
  type ErrorFields,
  type FailedStart,
  type WasmFrame,
} from './errors.js'
export {
  DEFAULT_POLICY,
  MANIFEST_FILE,
  loadManifest,
  resolvePolicy,
  type LoadManifestOptions,
  type Manifest,
  type Policy,
  type PolicyOptions,
  type Range,
} from './sandbox/manifest.js'
export {
  Sandbox,
  loadComponent,
  type LoadComponentOptions,
  type SandboxLimits,
  type SandboxMetrics,
} from './sandbox/sandbox.js'
export type { ConfigProblem } from './errors.js'
export type { ArithmeticTrapCode, Capability, TrapErrorCode, WasmErrorCode } from './errors.js'
export {
  Permissions,
  createPermissions,
  permissionsFromManifest,
  type PermissionHooks,
  type PermissionOptions,
} from './capabilities/permissions.js'
export {
  HOST_INTERFACE_NAMES,
  hostInterfaces,
  withHostInterfaces,
  type HostInterfaceOptions,
  type HostInterfaces,
} from './capabilities/interfaces.js'
export {
  createFilesystem,
  type FilesystemInterface,
  type FilesystemOptions,
} from './capabilities/filesystem.js'
export {
  createHttp,
  type HttpInterface,
  type HttpOptions,
  type HttpResponse,
  type ResolvedAddress,
} from './capabilities/http.js'
export { createTime, type TimeInterface, type TimeOptions } from './capabilities/time.js'
export type { SignalSource } from './util/signal.js'
