/**
 * `airssys:host/http.fetch(url) -> result<response, string>`: a real GET through `node:http` /
 * `node:https`, only to `host:port`s the permissions grant. The URL is parsed first (WHATWG rules:
 * lowercase hosts, IPv4 forms normalised, default ports 80/443) and the parsed host and port are
 * checked; redirects are followed by hand so every hop is checked again. The body is streamed and
 * refused once it passes the cap: the guest gets an `err`, never a silently truncated body.
 *
 * A granted *name* is not trusted to stay outside the host's network: it is resolved once per hop,
 * every address it resolves to must be public (not loopback, private, link-local, CGNAT,
 * unspecified, multicast, reserved or a cloud metadata endpoint), and the connection goes to
 * exactly those checked addresses (the socket's `lookup` hands them back, so there is no second
 * DNS answer to rebind to). Internal addresses are reached only through a grant that names the
 * address literally (`10.0.0.5:80`, `[::1]:8080`), or `localhost` for loopback answers.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import http, { type IncomingMessage } from 'node:http'
import https from 'node:https'
import { isIP, type LookupFunction } from 'node:net'

import { CapabilityDeniedError, ConfigError } from '../errors.js'
import {
  capabilityOptions,
  knownKeys,
  positiveInteger,
  nonNegativeInteger,
  signalSource,
} from '../util/options.js'
import { abortReason, isAborted, onAbort, signalWithTimeout, type SignalSource } from '../util/signal.js'
import { internalAddressKind } from './addresses.js'
import { type Permissions } from './permissions.js'
import { quoted } from '../util/quoted.js'

/** One answer of a {@link HttpOptions.lookup} resolver. */
export interface ResolvedAddress {
  /** An IPv4 or IPv6 address, without brackets. */
  address: string
  /** 4 or 6 (taken from the address when it disagrees). */
  family?: number | undefined
}

/** Options of {@link createHttp}. */
export interface HttpOptions {
  /** Largest response body returned; a longer one is an `err` (the rest is not downloaded). Default 1 MiB. */
  maxBodyBytes?: number | undefined
  /** Redirects followed (each checked against the grants) before giving up with an `err`, 0 to 20. Default 5. */
  maxRedirects?: number | undefined
  /** Time for the whole fetch (redirects and body included) before it is an `err`. Default 30 s. */
  timeoutMs?: number | undefined
  /**
   * Cancels pending fetches when it aborts: an AbortSignal, or a function returning the signal of
   * the call in progress (the sandbox passes one aborted when the guest's call ends, by its
   * deadline or otherwise).
   */
  signal?: SignalSource | undefined
  /**
   * Resolves a host name to the addresses to check and connect to. Default: the system resolver
   * (`dns.promises.lookup` with `all: true`, as Node's own connections use).
   */
  lookup?: ((hostname: string) => Promise<readonly ResolvedAddress[]>) | undefined
}

/** The `response` record of `airssys:host/http@0.1.0`, as JS values. */
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

export const systemLookup = (hostname: string) => dnsLookup(hostname, { all: true, verbatim: true })

/**
 * The longest URL a guest may fetch (what common servers accept). Checked before parsing: a denial
 * repeats the URL, and a probe's 4 MiB URLs made 300 denials at once hold about 1 GB.
 */
const MAX_URL_CHARS = 8192

function parse(url: string, base?: URL): URL {
  if (url.length > MAX_URL_CHARS) {
    throw new Error(`${quoted(url)} is longer than ${MAX_URL_CHARS} characters`)
  }
  let parsed: URL
  try {
    parsed = new URL(url, base)
  } catch {
    throw new Error(`${quoted(url)} is not a valid URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`${quoted(url)}: only http and https URLs can be fetched`)
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new Error(`${quoted(url)}: URLs with credentials are not supported`)
  }
  return parsed
}

/** `host:port` as the grants spell it. */
export function hostAndPort(url: URL): string {
  return `${url.hostname}:${url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : url.port}`
}

/**
 * The codes of name resolution failures (node:dns and getaddrinfo) a guest may be told: any other
 * `code` a host's resolver sets is its own text, which may say anything.
 */
const RESOLVER_CODES: ReadonlySet<string> = new Set([
  'ENOTFOUND',
  'ENODATA',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'EAI_NODATA',
  'ESERVFAIL',
  'EREFUSED',
  'ETIMEOUT',
  'ECONNREFUSED',
  'EBADRESP',
  'EBADNAME',
  'EBADFAMILY',
  'ENOTIMP',
  'EFORMERR',
  'ECANCELLED',
])

/**
 * The addresses `resolve(host)` answers, each with its family (0: not an address). A failure is
 * told by its `code` alone, whether the resolver rejects or answers what cannot be read (a getter
 * that throws, no list): what a host's resolver says (its socket, its source paths, a bug's text)
 * is not for the guest, whose `err` the failure becomes.
 */
async function lookedUp(
  resolve: (hostname: string) => Promise<readonly ResolvedAddress[]>,
  host: string,
): Promise<{ address: string; family: number }[]> {
  try {
    const answers = await resolve(host)
    return Array.from(answers, ({ address }) => ({
      address,
      family: typeof address === 'string' ? isIP(address) : 0,
    }))
  } catch (error) {
    let code: unknown
    try {
      code = (error as { code?: unknown } | null)?.code
    } catch {
      // A getter that throws: no code.
    }
    throw Object.assign(new Error(`${host} could not be resolved`), {
      code: typeof code === 'string' && RESOLVER_CODES.has(code) ? code : 'EAI_FAIL',
    })
  }
}

/** The URL's host without IPv6 brackets, as resolvers and sockets take it. */
export function bareHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
}

/** Rejects with the signal's reason once it aborts, so waits that cannot be cancelled still end. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (isAborted(signal)) return Promise.reject(abortReason(signal))
  return new Promise<T>((resolve, reject) => {
    const stop = onAbort(signal, () => reject(abortReason(signal)))
    promise.then(resolve, reject).finally(stop)
  })
}

/** A `lookup` for the socket that answers with the addresses already checked, and nothing else. */
export function checkedLookup(addresses: readonly { address: string; family: number }[]): LookupFunction {
  return (_hostname, options, callback) => {
    // Answered on a later turn, as a real lookup is: answered at once, a connect that failed at
    // once (no route to the address) emitted its 'error' before the request listened for it,
    // which ended the process (an outside probe, with a v4-only host and an AAAA answer).
    setImmediate(() => {
      if (options.all) callback(null, [...addresses])
      else callback(null, addresses[0]?.address ?? '', addresses[0]?.family ?? 4)
    })
  }
}

/** GETs `url`, connecting (for a name) only to `addresses`; resolves once the headers arrive. */
function get(
  url: URL,
  addresses: readonly { address: string; family: number }[] | undefined,
  signal: AbortSignal | undefined,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'GET',
      headers: { accept: '*/*' },
      // A fresh connection each time: a pooled one may have been opened under another check.
      agent: false,
      signal,
      ...(addresses === undefined ? {} : { lookup: checkedLookup(addresses) }),
    })
    request.once('response', resolve)
    request.on('error', reject)
    // A 101 answer goes to 'upgrade' only: without this the fetch never settled, its timeoutMs
    // included (the request's timer ends with the socket Node hands over).
    request.once('upgrade', (_response, socket) => {
      socket.destroy()
      reject(new Error('the server switched protocols (101), which a fetch does not follow'))
    })
    request.end()
  })
}

/** The body, streamed; refused (and the download cancelled) once it passes `limit` bytes. */
export async function readBody(response: IncomingMessage, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new Error(`the response body is larger than the ${limit}-byte cap`)
  const declared = Number(response.headers['content-length'] ?? Number.NaN)
  if (declared > limit) {
    response.destroy()
    throw tooLarge()
  }
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of response as AsyncIterable<Buffer>) {
    length += chunk.byteLength
    if (length > limit) {
      response.destroy()
      throw tooLarge()
    }
    chunks.push(chunk)
  }
  // A body that stopped before its content-length is an error, not a short body.
  if (!response.complete) throw Object.assign(new Error('the response ended early'), { code: 'ECONNRESET' })
  const body = new Uint8Array(length)
  let offset = 0
  for (const chunk of chunks) {
    body.set(chunk, offset)
    offset += chunk.byteLength
  }
  return body
}

/** The headers in arrival order, names lowercase, one pair per value. */
export function headerPairs(response: IncomingMessage): [string, string][] {
  const pairs: [string, string][] = []
  const raw = response.rawHeaders
  for (let index = 0; index + 1 < raw.length; index += 2) {
    pairs.push([(raw[index] ?? '').toLowerCase(), raw[index + 1] ?? ''])
  }
  return pairs
}

/** A fetch failure in words for the guest: the network error's code, or why it was stopped. */
function fetchFailure(url: URL, error: unknown, signal: AbortSignal | undefined, timeoutMs: number): Error {
  if (isAborted(signal)) {
    const reason = abortReason(signal)
    const timedOut = reason instanceof DOMException && reason.name === 'TimeoutError'
    return new Error(
      timedOut ? `fetching ${url.href} took longer than ${timeoutMs} ms` : `fetching ${url.href} was aborted`,
      { cause: error },
    )
  }
  const { code, message } = error as { code?: unknown; message?: unknown }
  const reason = typeof code === 'string' ? code : String(message ?? error)
  return new Error(`fetching ${url.href} failed: ${reason}`, { cause: error })
}

/**
 * Checks where `url` may be connected to, for `permissions`: the addresses its host may be reached
 * at, or undefined for an IP literal (granted by name already, so connected to as it is). Throws
 * `describe(reason)` when any answer is internal and not granted literally: refusing the whole
 * name leaves no fallback to an unchecked address.
 */
export function addressChecker(
  permissions: Permissions,
  resolve: (hostname: string) => Promise<readonly ResolvedAddress[]>,
): (
  url: URL,
  describe: (reason: string) => Error,
  signal?: AbortSignal,
) => Promise<{ address: string; family: number }[] | undefined> {
  /** Whether a grant names `address` itself, at `url`'s port. */
  const grantsLiteral = (url: URL, address: string) => {
    const literal = new URL(url.href)
    literal.hostname = isIP(address) === 6 ? `[${address}]` : address
    // A hostname the URL refuses (`[::1%lo]`) leaves the name in place, which is granted.
    return literal.hostname !== url.hostname && permissions.allowsConnection(literal)
  }

  /**
   * The addresses `url`'s host may be reached at, or undefined for an IP literal (granted by
   * name already, so connected to as it is). Throws a denial when any answer is internal and not
   * granted literally: refusing the whole name leaves no fallback to an unchecked address.
   */
  const checkedAddresses = async (url: URL, describe: (reason: string) => Error, signal?: AbortSignal) => {
    const host = bareHost(url)
    if (isIP(host) !== 0) return undefined
    // `localhost.` is `localhost` fully qualified, which the hosts file (and so Node's lookup) lists
    // without its dot: one name, looked up and judged as one.
    const name = host === 'localhost.' ? 'localhost' : host
    const addresses = await untilAborted(lookedUp(resolve, name), signal)
    if (addresses.length === 0 || addresses.some(({ family }) => family === 0)) {
      throw Object.assign(new Error(`${host} did not resolve to an address`), { code: 'ENOTFOUND' })
    }
    for (const { address } of addresses) {
      // A zone (`fe80::1%eth0`, `::1%lo`) scopes an address to a link of this host: never public.
      const kind = address.includes('%') ? 'reserved' : internalAddressKind(address)
      if (kind === undefined || grantsLiteral(url, address)) continue
      if (name === 'localhost' && kind === 'loopback') continue
      // Not which kind: the guest would learn what the host's network holds (a cloud's metadata
      // endpoint, its private ranges) by naming hosts under a wildcard grant.
      throw describe(
        'resolves to an internal address (private, loopback, link-local or reserved), which only a grant ' +
          'naming that address (or localhost, for a loopback one) may reach',
      )
    }
    return addresses
  }
  return checkedAddresses
}

/** The keys of {@link HttpOptions}. */
export const HTTP_OPTIONS: ReadonlySet<string> = new Set([
  'maxBodyBytes',
  'maxRedirects',
  'timeoutMs',
  'signal',
  'lookup',
])

/** `airssys:host/http@0.1.0` checked against `permissions`. */
export function createHttp(permissions: Permissions, given: HttpOptions = {}): HttpInterface {
  const options = capabilityOptions(given)
  knownKeys('createHttp', options, HTTP_OPTIONS)
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes, DEFAULTS.maxBodyBytes)
  const maxRedirects = nonNegativeInteger('maxRedirects', options.maxRedirects, DEFAULTS.maxRedirects)
  const timeoutMs = positiveInteger('timeoutMs', options.timeoutMs, DEFAULTS.timeoutMs)
  const source = signalSource('signal', options.signal)
  const resolve = options.lookup ?? systemLookup
  if (typeof resolve !== 'function') {
    throw new ConfigError('lookup: expected a function resolving a host name to addresses', {
      path: 'lookup',
      value: resolve,
    })
  }

  const checkedAddresses = addressChecker(permissions, resolve)

  return {
    async fetch(requested: string): Promise<HttpResponse> {
      let url = parse(requested)
      const signal = signalWithTimeout(source, timeoutMs)
      for (let redirects = 0; ; redirects++) {
        const deny = (reason: string) =>
          permissions.deny(
            'network.outbound',
            redirects === 0 ? requested : url.href,
            redirects === 0
              ? `${hostAndPort(url)} ${reason} (${url.href})`
              : `${quoted(requested)} redirected to ${hostAndPort(url)}, ${reason} (${url.href})`,
          )
        if (!permissions.allowsConnection(url)) {
          throw deny(redirects === 0 ? 'is not granted' : 'which is not granted')
        }
        let response: IncomingMessage
        try {
          const addresses = await checkedAddresses(
            url,
            (reason) => deny(redirects === 0 ? reason : `which ${reason}`),
            signal,
          )
          response = await get(url, addresses, signal)
        } catch (error) {
          if (error instanceof CapabilityDeniedError) throw error
          throw fetchFailure(url, error, signal, timeoutMs)
        }
        const location = response.headers.location
        try {
          if (REDIRECT_STATUSES.has(response.statusCode ?? 0) && location !== undefined) {
            response.destroy()
            if (redirects === maxRedirects) {
              throw new Error(`${quoted(requested)}: more than ${maxRedirects} redirects`)
            }
            url = parse(location, url)
            continue
          }
          const body = await readBody(response, maxBodyBytes)
          return { status: response.statusCode ?? 0, headers: headerPairs(response), body }
        } catch (error) {
          const networkError = typeof (error as { code?: unknown }).code === 'string'
          throw networkError || isAborted(signal) ? fetchFailure(url, error, signal, timeoutMs) : error
        } finally {
          response.destroy()
        }
      }
    },
  }
}
