/**
 * `airssys:host/http.fetch(url) -> result<response, string>`: a real GET through Node's fetch, only
 * to `host:port`s the permissions grant. The URL is parsed first (WHATWG rules: lowercase hosts,
 * IPv4 forms normalised, default ports 80/443) and the parsed host and port are checked; redirects
 * are followed by hand so every hop is checked again. The body is streamed and refused once it
 * passes the cap: the guest gets an `err`, never a silently truncated body.
 *
 * Grants name hosts, not addresses: a granted name is trusted to resolve where its owner says.
 */
import { positiveInteger, nonNegativeInteger, signalSource } from '../util/options.js'
import { signalWithTimeout, type SignalSource } from '../util/signal.js'
import type { Permissions } from './permissions.js'

/** Options of {@link createHttp}. */
export interface HttpOptions {
  /** Largest response body returned; a longer one is an `err` (the rest is not downloaded). Default 1 MiB. */
  maxBodyBytes?: number
  /** Redirects followed (each checked against the grants) before giving up with an `err`. Default 5. */
  maxRedirects?: number
  /** Time for the whole fetch (redirects and body included) before it is an `err`. Default 30 s. */
  timeoutMs?: number
  /**
   * Cancels pending fetches when it aborts: an AbortSignal, or a function returning the signal of
   * the call in progress (the sandbox passes one aborted when the guest's call ends, by its
   * deadline or otherwise).
   */
  signal?: SignalSource
}

/** `airssys:host/http@0.1.0#response`, as JS values (DESIGN §4). */
export interface HttpResponse {
  /** The HTTP status code (a redirect that is not followed is returned as it is). */
  status: number
  /** `[name, value]` pairs in arrival order, names lowercase; a repeated header appears once per value. */
  headers: [string, string][]
  /** The whole body, at most `maxBodyBytes` long. */
  body: Uint8Array
}

/** The functions of `airssys:host/http@0.1.0`. */
export interface HttpInterface {
  /** GETs `url`; throws (an `err` for the guest) when denied, failed, too large or too slow. */
  fetch(url: string): Promise<HttpResponse>
}

const DEFAULTS = { maxBodyBytes: 1 << 20, maxRedirects: 5, timeoutMs: 30_000 }
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])

function parse(url: string, base?: URL): URL {
  let parsed: URL
  try {
    parsed = new URL(url, base)
  } catch {
    throw new Error(`${JSON.stringify(url)} is not a valid URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`${JSON.stringify(url)}: only http and https URLs can be fetched`)
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new Error(`${JSON.stringify(url)}: URLs with credentials are not supported`)
  }
  return parsed
}

/** `host:port` as the grants spell it. */
function hostAndPort(url: URL): string {
  return `${url.hostname}:${url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port}`
}

/** The body, streamed; refused (and the download cancelled) once it passes `limit` bytes. */
async function readBody(response: Response, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new Error(`the response body is larger than the ${limit}-byte cap`)
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > limit) {
    await response.body?.cancel()
    throw tooLarge()
  }
  if (response.body === null) return new Uint8Array(0)
  const chunks: Uint8Array[] = []
  let length = 0
  const reader = response.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    length += value.byteLength
    if (length > limit) {
      await reader.cancel()
      throw tooLarge()
    }
    chunks.push(value)
  }
  const body = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return body
}

/** A fetch failure in words for the guest: the network error's code, or why it was stopped. */
function fetchFailure(url: URL, error: unknown, signal: AbortSignal | undefined, timeoutMs: number): Error {
  if (signal?.aborted) {
    const timedOut = signal.reason instanceof DOMException && signal.reason.name === 'TimeoutError'
    return new Error(
      timedOut ? `fetching ${url.href} took longer than ${timeoutMs} ms` : `fetching ${url.href} was aborted`,
      { cause: error },
    )
  }
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause
  const reason = typeof cause?.code === 'string' ? cause.code : String(cause?.message ?? error)
  return new Error(`fetching ${url.href} failed: ${reason}`, { cause: error })
}

/** `airssys:host/http@0.1.0` checked against `permissions`. */
export function createHttp(permissions: Permissions, options: HttpOptions = {}): HttpInterface {
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes, DEFAULTS.maxBodyBytes)
  const maxRedirects = nonNegativeInteger('maxRedirects', options.maxRedirects, DEFAULTS.maxRedirects)
  const timeoutMs = positiveInteger('timeoutMs', options.timeoutMs, DEFAULTS.timeoutMs)
  const source = signalSource('signal', options.signal)

  return {
    async fetch(requested: string): Promise<HttpResponse> {
      let url = parse(requested)
      const signal = signalWithTimeout(source, timeoutMs)
      for (let redirects = 0; ; redirects++) {
        if (!permissions.allowsConnection(url)) {
          const target = hostAndPort(url)
          throw permissions.deny(
            'network.outbound',
            redirects === 0 ? requested : url.href,
            redirects === 0
              ? `${target} is not granted (${url.href})`
              : `${JSON.stringify(requested)} redirected to ${target}, which is not granted (${url.href})`,
          )
        }
        let response: Response
        try {
          response = await fetch(url, { redirect: 'manual', signal })
        } catch (error) {
          throw fetchFailure(url, error, signal, timeoutMs)
        }
        const location = response.headers.get('location')
        try {
          if (REDIRECT_STATUSES.has(response.status) && location !== null) {
            await response.body?.cancel()
            if (redirects === maxRedirects) {
              throw new Error(`${JSON.stringify(requested)}: more than ${maxRedirects} redirects`)
            }
            url = parse(location, url)
            continue
          }
          const body = await readBody(response, maxBodyBytes)
          const headers: [string, string][] = []
          response.headers.forEach((value, name) => headers.push([name, value]))
          return { status: response.status, headers, body }
        } catch (error) {
          throw error instanceof TypeError || signal?.aborted
            ? fetchFailure(url, error, signal, timeoutMs)
            : error
        }
      }
    },
  }
}
