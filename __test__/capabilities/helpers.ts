/**
 * Shared by the host interface specs: the `capabilities` example guest (it calls
 * airssys:host/filesystem, http and time and returns what it got), component directories with a
 * Component.toml granting permissions, and a local HTTP server on 127.0.0.1.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'

import type { ExecutionContext } from 'ava'

import {
  CapabilityDeniedError,
  type Capability,
  ComponentError,
  hostInterfaces,
  type HostInterfaceOptions,
  type Instance,
  type Permissions,
} from '../../lib/index.js'
import { componentDir, engine, MiB, root } from '../helpers.js'

export const capabilitiesWasm = path.join(root, 'examples/capabilities/capabilities.wasm')

let compiled: ReturnType<ReturnType<typeof engine>['compileComponentSync']> | undefined

/**
 * An instance of the capabilities guest with the reference host interfaces as its imports, and
 * `callTimeoutMs` as its default call deadline.
 */
export function capabilitiesGuest(
  permissions: Permissions,
  hostOptions: HostInterfaceOptions = {},
  callTimeoutMs = 10_000,
): Instance {
  compiled ??= engine().compileComponentSync(capabilitiesWasm)
  return compiled.instantiateSync({
    limits: { memoryBytes: 4 * MiB },
    imports: { ...hostInterfaces(permissions, hostOptions) },
    timeoutMs: callTimeoutMs,
  })
}

/** A denials collector for `onDenied`. */
export function denials(): {
  list: CapabilityDeniedError[]
  onDenied: (error: CapabilityDeniedError) => void
} {
  const list: CapabilityDeniedError[] = []
  return { list, onDenied: (error) => list.push(error) }
}

/** The `err` string a guest call returned (the export's `result::err` is a ComponentError). */
export async function guestErr(t: ExecutionContext, call: Promise<unknown>): Promise<string> {
  const error = await t.throwsAsync(call, { instanceOf: ComponentError })
  t.is(typeof error?.payload, 'string')
  return String(error?.payload)
}

/** Asserts one denial for `capability` about `request`, with its class and code. */
export function assertDenied(
  t: ExecutionContext,
  error: CapabilityDeniedError | undefined,
  capability: Capability,
  request: string,
): void {
  t.true(error instanceof CapabilityDeniedError)
  t.is(error?.code, 'ERR_WASM_CAPABILITY_DENIED')
  t.is(error?.capability, capability)
  t.is(error?.request, request)
}

/**
 * A directory with a copy of the capabilities guest and a Component.toml with `permissions`
 * (TOML lines under [permissions]) and `timeoutMs` per call.
 */
export function capabilitiesDir(
  parent: string,
  { permissions = [], timeoutMs = 5_000 }: { permissions?: string[]; timeoutMs?: number } = {},
): string {
  return componentDir(parent, capabilitiesWasm, {
    name: 'capabilities',
    maxBytes: 4 * MiB,
    maxFuel: 50_000_000,
    timeoutMs,
    permissions,
  })
}

/** A request the test server received, and how its response ended. */
export interface ServedRequest {
  url: string
  /** True once the response was fully sent; false if the client hung up first. */
  finished: Promise<boolean>
}

export interface TestServer {
  port: number
  /** `http://127.0.0.1:<port><pathname>` */
  url(pathname: string): string
  requests: ServedRequest[]
  close(): Promise<void>
}

/**
 * An HTTP server on 127.0.0.1 (an ephemeral port) that records each request. Its sockets time out
 * after 10 s, and `close` ends every open connection, so nothing outlives the spec file.
 */
export async function startServer(
  handler: (request: http.IncomingMessage, response: http.ServerResponse) => void,
): Promise<TestServer> {
  const requests: ServedRequest[] = []
  const server = http.createServer((request, response) => {
    const finished = new Promise<boolean>((resolve) => {
      response.on('finish', () => resolve(true))
      response.on('close', () => resolve(response.writableFinished))
    })
    requests.push({ url: request.url ?? '', finished })
    handler(request, response)
  })
  server.requestTimeout = 10_000
  server.setTimeout(10_000, (socket) => socket.destroy())
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    url: (pathname) => `http://127.0.0.1:${port}${pathname}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
