/**
 * The reference host interfaces (WIT package `airssys:host@0.1.0`, in wit/airssys-host/host.wit)
 * as an import object for `instantiate({ imports })`, and their linking into `loadComponent`.
 */
import type { Imports } from '../options.js'
import { interfaceKeys } from '../util/names.js'
import { capabilityOptions, knownKeys } from '../util/options.js'
import {
  createFilesystem,
  FILESYSTEM_OPTIONS,
  type FilesystemInterface,
  type FilesystemOptions,
} from './filesystem.js'
import { createHttp, HTTP_OPTIONS, type HttpInterface, type HttpOptions } from './http.js'
import type { Permissions } from './permissions.js'
import { createTime, TIME_OPTIONS, type TimeInterface, type TimeOptions } from './time.js'

/** The full interface names, as components import them. */
export const HOST_INTERFACE_NAMES = Object.freeze({
  /** `read(path) -> result<list<u8>, string>` */
  filesystem: 'airssys:host/filesystem@0.1.0',
  /** `fetch(url) -> result<response, string>` */
  http: 'airssys:host/http@0.1.0',
  /** `sleep(ms)` */
  time: 'airssys:host/time@0.1.0',
} as const)

/** Options of {@link hostInterfaces}: the caps and the signal of each interface. */
export interface HostInterfaceOptions extends FilesystemOptions, HttpOptions, TimeOptions {}

/**
 * The import object of the reference host interfaces. A type alias, not an interface, so that it
 * is assignable to `Imports` (an interface has no implicit index signature).
 */
export type HostInterfaces = {
  /** `filesystem.read`, checked against `filesystemRead`. */
  'airssys:host/filesystem@0.1.0': FilesystemInterface
  /** `http.fetch`, checked against `networkOutbound` on every hop. */
  'airssys:host/http@0.1.0': HttpInterface
  /** `time.sleep`, checked against `timeSleep`. */
  'airssys:host/time@0.1.0': TimeInterface
}

/**
 * `filesystem.read`, `http.fetch` and `time.sleep`, each checking `permissions` before acting,
 * keyed by their interface names: pass the result as (part of) `imports`. Interfaces a component
 * does not import are ignored when linking.
 */
export function hostInterfaces(permissions: Permissions, options: HostInterfaceOptions = {}): HostInterfaces {
  const own = capabilityOptions(options)
  knownKeys('hostInterfaces', own, HOST_INTERFACE_OPTIONS)
  // Each interface is given its own options only, as its own checks expect.
  const only = (keys: ReadonlySet<string>) =>
    Object.fromEntries(Object.entries(own).filter(([key]) => keys.has(key)))
  return {
    [HOST_INTERFACE_NAMES.filesystem]: createFilesystem(permissions, only(FILESYSTEM_OPTIONS)),
    [HOST_INTERFACE_NAMES.http]: createHttp(permissions, only(HTTP_OPTIONS)),
    [HOST_INTERFACE_NAMES.time]: createTime(permissions, only(TIME_OPTIONS)),
  }
}

const HOST_INTERFACE_OPTIONS: ReadonlySet<string> = new Set([
  ...FILESYSTEM_OPTIONS,
  ...HTTP_OPTIONS,
  ...TIME_OPTIONS,
])

/**
 * `imports` plus the reference host interfaces, except those `imports` already provides (by the
 * full or the unversioned interface name): the user's functions win. Anything but a plain object
 * is returned unchanged, for `instantiate` to reject with its own message.
 */
export function withHostInterfaces(
  imports: Imports | undefined,
  permissions: Permissions,
  options: HostInterfaceOptions = {},
): Imports | undefined {
  if (imports !== undefined && (typeof imports !== 'object' || imports === null)) return imports
  const linked: Imports = {}
  for (const [name, functions] of Object.entries(hostInterfaces(permissions, options))) {
    if (imports !== undefined && interfaceKeys(name).some((key) => Object.hasOwn(imports, key))) continue
    linked[name] = functions
  }
  return { ...linked, ...imports }
}
