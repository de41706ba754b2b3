/** The generated N-API binding. Internal: the public classes in this folder wrap it. */
export {
  NativeAbortHandle,
  NativeComponent,
  NativeComponentInstance,
  NativeEngine,
  NativeInstance,
  NativeModule,
} from '../index.js'
export type {
  ComponentItemInfo,
  InstanceMetrics,
  ModuleItemInfo,
  NativeEngineOptions,
  NativeInstanceOptions,
  NativeWasiOptions,
} from '../index.js'
