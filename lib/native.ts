/**
 * The generated N-API binding (lib/binding/, written by `napi build`). Internal: the public classes in
 * this folder wrap it.
 */
export {
  NativeAbortHandle,
  NativeComponent,
  NativeComponentInstance,
  NativeEngine,
  NativeInstance,
  NativeModule,
  errorCodes,
} from './binding/index.js'
export type {
  ComponentItemInfo,
  InstanceMetrics,
  ModuleItemInfo,
  NativeEngineOptions,
  NativeInstanceOptions,
  NativeWasiOptions,
} from './binding/index.js'
