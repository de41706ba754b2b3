/**
 * The client behind a guest's wasi:http outgoing requests. wasmtime-wasi-http implements the WASI
 * interfaces in the addon; each request the guest sends comes here, is checked against the same
 * `network.outbound` grant and DNS rules as `airssys:host/http.fetch` (see ./http.ts), and is made
 * with `node:http`/`node:https`. One hop per request: a redirect is returned to the guest as it
 * is, and the guest's next request is checked again. A refusal reaches the guest as the wasi:http
 * error `http-request-denied`, an ordinary error it can handle, and is counted as a denial.
 */
import http, { type IncomingMessage } from 'node:http'
import https from 'node:https'

import { CapabilityDeniedError } from '../errors.js'
import {
  addressChecker,
  checkedLookup,
  headerPairs,
  hostAndPort,
  readBody,
  systemLookup,
  type ResolvedAddress,
} from './http.js'
import type { Permissions } from './permissions.js'

/**
 * Key of `wasi` options under which a sandbox hands its own Permissions to the wasi:http client,
 * so that wasi:http refusals count with its other denials. Internal.
 */
export const wasiHttpPermissions = Symbol('airssys-wasm.wasiHttpPermissions')

/** What the addon hands the client's Promise back as. */
export type WasiHttpAnswer =
  { status: number; headers: [string, string][]; body: Uint8Array } | { error: string; message: string }

/** The function the addon calls for each request; its Promise may be aborted. */
export type WasiHttpClient = ((
  method: string,
  url: string,
  headers: [string, string][],
  body: Uint8Array,
) => Promise<WasiHttpAnswer> & { abort(): void }) & {
  /** Aborts every request in progress (the call that made them ended). */
  abortAll(): void
}

/** One instance's wasi:http client and the grants it checks. */
export interface WasiHttp {
  client: WasiHttpClient
  permissions: Permissions
}

/** Options of {@link createWasiHttpClient}. */
export interface WasiHttpClientOptions {
  /** Largest request or response body, in bytes. */
  maxBodyBytes: number
  /** Time for one request (body included) before it fails with `connection-timeout`. */
  timeoutMs: number
  /** Resolves a host name to the addresses to check and connect to. */
  lookup?: (hostname: string) => Promise<readonly ResolvedAddress[]>
}

/** Headers Node sets itself or that describe one connection, not the message. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'te',
])

/** The wasi:http `error-code` case for a failure of Node's request. */
function errorCase(error: unknown): string {
  const code = (error as { code?: unknown }).code
  switch (code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'destination-not-found'
    case 'ECONNREFUSED':
      return 'connection-refused'
    case 'ECONNRESET':
    case 'EPIPE':
      return 'connection-terminated'
    case 'ETIMEDOUT':
    case 'ABORT_ERR':
      return 'connection-timeout'
    case 'BODY_TOO_LARGE':
      return 'http-response-body-size'
    default:
      return typeof code === 'string' && code.startsWith('ERR_TLS')
        ? 'tls-certificate-error'
        : 'internal-error'
  }
}

/** A client that makes only the requests `permissions` grant. */
export function createWasiHttpClient(
  permissions: Permissions,
  options: WasiHttpClientOptions,
): WasiHttpClient {
  const checkedAddresses = addressChecker(permissions, options.lookup ?? systemLookup)
  const inProgress = new Set<AbortController>()
  const client = (method: string, requested: string, headers: [string, string][], body: Uint8Array) => {
    const controller = new AbortController()
    inProgress.add(controller)
    const timer = setTimeout(() => controller.abort(), options.timeoutMs)
    const answer = (async (): Promise<WasiHttpAnswer> => {
      let url: URL
      try {
        url = new URL(requested)
      } catch {
        return {
          error: 'http-request-uri-invalid',
          message: `${JSON.stringify(requested)} is not a valid URL`,
        }
      }
      const deny = (reason: string) =>
        permissions.deny('network.outbound', requested, `${hostAndPort(url)} ${reason} (${url.href})`)
      try {
        if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !permissions.allowsConnection(url)) {
          throw deny('is not granted')
        }
        const addresses = await checkedAddresses(url, deny, controller.signal)
        const response = await send(url, method, headers, body, addresses, controller.signal)
        try {
          const received = await readBody(response, options.maxBodyBytes).catch((error: unknown) => {
            throw /larger than the \d+-byte cap/.test(String(error))
              ? Object.assign(error as Error, { code: 'BODY_TOO_LARGE' })
              : error
          })
          return {
            status: response.statusCode ?? 0,
            headers: headerPairs(response).filter(([name]) => !HOP_BY_HOP.has(name)),
            body: received,
          }
        } finally {
          response.destroy()
        }
      } catch (error) {
        if (error instanceof CapabilityDeniedError)
          return { error: 'http-request-denied', message: error.message }
        return {
          error: errorCase(controller.signal.aborted ? { code: 'ABORT_ERR' } : error),
          message: String(error),
        }
      } finally {
        clearTimeout(timer)
        inProgress.delete(controller)
      }
    })()
    return Object.assign(answer, { abort: () => controller.abort() })
  }
  return Object.assign(client, {
    abortAll: () => {
      for (const controller of inProgress) controller.abort()
    },
  })
}

/** One request, connecting (for a name) only to `addresses`; resolves once the headers arrive. */
function send(
  url: URL,
  method: string,
  headers: [string, string][],
  body: Uint8Array,
  addresses: readonly { address: string; family: number }[] | undefined,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method,
      // Raw `[name, value, name, value, …]`: repeated headers stay repeated, in the guest's order.
      // Node adds no Host to raw headers; it is the checked URL's, whatever the guest wrote.
      headers: [
        'host',
        url.host,
        ...headers
          .filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase()) && name.toLowerCase() !== 'host')
          .flat(),
      ],
      // A fresh connection each time: a pooled one may have been opened under another check.
      agent: false,
      signal,
      ...(addresses === undefined ? {} : { lookup: checkedLookup(addresses) }),
    })
    request.once('response', resolve)
    request.on('error', reject)
    request.end(body.byteLength === 0 ? undefined : body)
  })
}
