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
  systemLookup,
  type ResolvedAddress,
} from './http.js'
import type { Permissions } from './permissions.js'
import { quoted } from '../util/quoted.js'

/**
 * Key of `wasi` options under which a sandbox hands its own Permissions to the wasi:http client,
 * so that wasi:http refusals count with its other denials. Internal.
 */
export const wasiHttpPermissions = Symbol('airssys-wasm.wasiHttpPermissions')

/** A wasi:http `error-code` case (kebab-case, as the WIT spells it) and why, for the guest. */
export interface WasiHttpError {
  error: string
  message: string
}

/**
 * What the addon hands the client's Promise back as: the response's head as soon as it arrives,
 * with its body to read one piece at a time (`null` at its end), or why there is none. The addon
 * calls `read` only when the guest reads, and `cancel` when the guest drops the body early.
 */
export type WasiHttpAnswer =
  | {
      status: number
      headers: [string, string][]
      read: () => Promise<Uint8Array | null | WasiHttpError>
      cancel: () => void
    }
  | WasiHttpError

/** The guest's own `request-options`, in ms: each only shortens the host's `timeoutMs`. */
export interface WasiHttpRequestOptions {
  connectTimeoutMs?: number
  firstByteTimeoutMs?: number
  betweenBytesTimeoutMs?: number
}

/**
 * The function the addon calls for each request, with the request's body in the pieces the addon
 * gathered it in (handed over without a copy); its Promise may be aborted.
 */
export type WasiHttpClient = ((
  method: string,
  url: string,
  headers: [string, string][],
  body: readonly Uint8Array[],
  requestOptions?: WasiHttpRequestOptions,
) => Promise<WasiHttpAnswer> & { abort(): void }) & {
  /** Aborts every request in progress, an open body too (the call that made them ended). */
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
  /**
   * Longest wait of each step: connecting (DNS included; then `connection-timeout`), the
   * response's head after that, and each piece of the body (`connection-read-timeout`).
   */
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

/** The most bytes of a response's head (status line and headers) a request takes. */
const MAX_RESPONSE_HEADER_BYTES = 128 * 1024

/** The wasi:http `error-code` case for a failure of Node's request (or of a step's timer). */
function errorCase(error: unknown): string {
  const { code, wasiError } = error as { code?: unknown; wasiError?: unknown }
  if (typeof wasiError === 'string') return wasiError
  switch (code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'destination-not-found'
    case 'ECONNREFUSED':
      return 'connection-refused'
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ABORT_ERR':
    case 'ERR_STREAM_PREMATURE_CLOSE':
      return 'connection-terminated'
    case 'ETIMEDOUT':
      return 'connection-timeout'
    case 'HPE_HEADER_OVERFLOW':
      return 'http-response-header-section-size'
    case 'EPROTO':
      // OpenSSL's failures of the handshake itself (a plain HTTP server answering TLS).
      return 'tls-protocol-error'
    default:
      if (typeof code !== 'string') return 'internal-error'
      if (CERTIFICATE_ERRORS.has(code) || code.startsWith('ERR_TLS_CERT')) return 'tls-certificate-error'
      if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL')) return 'tls-protocol-error'
      // llhttp's: a response that is not HTTP.
      return code.startsWith('HPE_') ? 'http-protocol-error' : 'internal-error'
  }
}

/** OpenSSL's certificate verification failures, by the `code` Node gives them. */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
])

/** The answer for a failure: a refusal of the grants, or what went wrong on the way. */
function failure(error: unknown): WasiHttpError {
  if (error instanceof CapabilityDeniedError) return { error: 'http-request-denied', message: error.message }
  return { error: errorCase(error), message: String(error) }
}

/**
 * `promise`, or a rejection with the wasi:http error `wasiError` once `ms` have passed (`late`
 * runs then, to stop what was waited for).
 */
function within<T>(promise: Promise<T>, ms: number, wasiError: string, what: string, late: () => void) {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late()
      reject(Object.assign(new Error(`no ${what} within ${ms} ms`), { wasiError }))
    }, ms)
  })
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}

/** A client that makes only the requests `permissions` grant. */
export function createWasiHttpClient(
  permissions: Permissions,
  options: WasiHttpClientOptions,
): WasiHttpClient {
  const checkedAddresses = addressChecker(permissions, options.lookup ?? systemLookup)
  // Until the request failed or its body ended or was dropped: what abortAll stops.
  const inProgress = new Set<AbortController>()
  const client = (
    method: string,
    requested: string,
    headers: [string, string][],
    body: readonly Uint8Array[],
    requestOptions: WasiHttpRequestOptions = {},
  ) => {
    const controller = new AbortController()
    const stop = () => controller.abort()
    inProgress.add(controller)
    const done = () => inProgress.delete(controller)
    // The guest's own timeouts only shorten the host's.
    const limit = (guest: number | undefined) => Math.min(options.timeoutMs, guest ?? Infinity)
    const answer = (async (): Promise<WasiHttpAnswer> => {
      let url: URL
      try {
        url = new URL(requested)
      } catch {
        done()
        return {
          error: 'http-request-uri-invalid',
          message: `${quoted(requested)} is not a valid URL`,
        }
      }
      const deny = (reason: string) =>
        permissions.deny('network.outbound', requested, `${hostAndPort(url)} ${reason} (${url.href})`)
      let response: IncomingMessage
      try {
        if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !permissions.allowsConnection(url)) {
          throw deny('is not granted')
        }
        const request = within(
          checkedAddresses(url, deny, controller.signal).then((addresses) =>
            send(url, method, headers, body, addresses, controller.signal),
          ),
          limit(requestOptions.connectTimeoutMs),
          'connection-timeout',
          'connection',
          stop,
        )
        const { head } = await request
        response = await within(
          head,
          limit(requestOptions.firstByteTimeoutMs),
          'connection-read-timeout',
          'response',
          stop,
        )
      } catch (error) {
        done()
        return failure(error)
      }
      // The body, as the guest reads it: Node reads from the socket only as far as its buffer
      // (a chunk or so) ahead of the last read, so a guest that stops reading stops the transfer.
      controller.signal.addEventListener('abort', () => response.destroy(), { once: true })
      const chunks = response[Symbol.asyncIterator]() as AsyncIterator<Buffer>
      const betweenBytesMs = limit(requestOptions.betweenBytesTimeoutMs)
      let received = 0
      const tooLarge: WasiHttpError = {
        error: 'http-response-body-size',
        message: `the response body is larger than maxBodyBytes (${options.maxBodyBytes})`,
      }
      // Kept now: Node lets go of it once the response has ended.
      const socket = response.socket
      const finish = (outcome: Uint8Array | null | WasiHttpError) => {
        if (outcome === null || !(outcome instanceof Uint8Array)) {
          response.destroy()
          // The connection too: a server may answer without reading the request's body, which
          // Node keeps queued on the open socket after the response ended (probe H48: 64 bodies
          // of 30 MB, sent one after another, held 2 GB). Nothing else uses it (no agent).
          socket?.destroy()
          done()
        }
        return outcome
      }
      const read = async (): Promise<Uint8Array | null | WasiHttpError> => {
        if (!inProgress.has(controller))
          return finish({ error: 'connection-terminated', message: 'the body was closed' })
        // Past the cap (its bytes up to the cap delivered): never an end, which would pass off
        // the cut body as whole.
        if (received > options.maxBodyBytes) return finish(tooLarge)
        try {
          const next = await within(
            chunks.next(),
            betweenBytesMs,
            'connection-read-timeout',
            'body bytes',
            stop,
          )
          if (next.done === true) return finish(null)
          const before = received
          received += next.value.byteLength
          if (received > options.maxBodyBytes) {
            // The bytes up to the cap still reach the guest; the read after them fails.
            if (before < options.maxBodyBytes) return next.value.subarray(0, options.maxBodyBytes - before)
            return finish(tooLarge)
          }
          return next.value
        } catch (error) {
          return finish(failure(error))
        }
      }
      return {
        status: response.statusCode ?? 0,
        headers: headerPairs(response).filter(([name]) => !HOP_BY_HOP.has(name)),
        read,
        cancel: () => finish({ error: 'connection-terminated', message: 'the guest dropped the body' }),
      }
    })()
    return Object.assign(answer, { abort: stop })
  }
  return Object.assign(client, {
    abortAll: () => {
      for (const controller of inProgress) controller.abort()
      inProgress.clear()
    },
  })
}

/**
 * One request, connecting (for a name) only to `addresses`: resolves once its socket is open,
 * with the response's head to wait for.
 */
function send(
  url: URL,
  method: string,
  headers: [string, string][],
  body: readonly Uint8Array[],
  addresses: readonly { address: string; family: number }[] | undefined,
  signal: AbortSignal,
): Promise<{ head: Promise<IncomingMessage> }> {
  return new Promise((resolveConnected, rejectConnected) => {
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
      // hyper's bound in wasmtime's own client is about 400 KiB, Node's 16 KiB: real servers
      // send more than 16 KiB (cookies, CSP). Held per request in progress, which are bounded.
      maxHeaderSize: MAX_RESPONSE_HEADER_BYTES,
      signal,
      ...(addresses === undefined ? {} : { lookup: checkedLookup(addresses) }),
    })
    // Interim (1xx) heads share the final head's budget: a server could send them without end.
    let interimBytes = 0
    request.on('information', ({ statusMessage, rawHeaders }) => {
      interimBytes += statusMessage.length + rawHeaders.reduce((total, text) => total + text.length + 2, 16)
      if (interimBytes > MAX_RESPONSE_HEADER_BYTES) {
        const message = `interim responses with more than ${MAX_RESPONSE_HEADER_BYTES} bytes of heads`
        request.destroy(Object.assign(new Error(message), { wasiError: 'http-response-header-section-size' }))
      }
    })
    const head = new Promise<IncomingMessage>((resolve, reject) => {
      // wasi:http has no upgraded connections: a 101 left the request waiting for a head (or,
      // without an Upgrade header, came through as a final answer).
      const switched = () =>
        reject(
          Object.assign(new Error('the server switched protocols (101)'), {
            wasiError: 'http-protocol-error',
          }),
        )
      request.once('response', (response) => {
        if (response.statusCode !== 101) return resolve(response)
        response.destroy()
        switched()
      })
      request.on('error', reject)
      request.once('upgrade', (_, socket) => {
        socket.destroy()
        switched()
      })
      // Likewise a 2xx answer to CONNECT, which opens a tunnel: Node hands it to 'connect' only.
      request.once('connect', (_, socket) => {
        socket.destroy()
        reject(
          Object.assign(new Error('the server opened a tunnel (CONNECT)'), {
            wasiError: 'http-protocol-error',
          }),
        )
      })
    })
    // Settled by whoever waits for it, or never looked at when the connection failed first.
    head.catch(() => {})
    request.on('error', rejectConnected)
    request.once('socket', (socket) => {
      if (socket.connecting) socket.once('connect', () => resolveConnected({ head }))
      else resolveConnected({ head })
    })
    for (const piece of body) request.write(piece)
    request.end()
  })
}
