/**
 * The generated N-API binding (lib/binding/, written by `napi build`). Internal: the public classes in
 * this folder wrap it.
 */
import { isMainThread } from 'node:worker_threads'

import { markWorkerThread } from './binding/index.js'

export {
  NativeAbortHandle,
  NativeComponent,
  NativeComponentInstance,
  NativeEngine,
  NativeInstance,
  NativeModule,
  claimPluginPaths,
  disposeGivenUp,
  errorCodes,
  failureBox,
  holdChild,
  hostFailure,
  initialSizes,
  releaseChild,
  releasePluginClaim,
} from './binding/index.js'
export type {
  ComponentItemInfo,
  InstanceMetrics,
  ModuleItemInfo,
  NativeEngineOptions,
  NativeInstanceOptions,
  NativeWasiOptions,
} from './binding/index.js'

// Calls issued in a worker are stopped when the worker is terminated; the addon cannot tell a
// worker's environment from the main thread's by itself.
if (!isMainThread) markWorkerThread()
