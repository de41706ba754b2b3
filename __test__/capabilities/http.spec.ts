import { mkdtempSync, rmSync } from 'node:fs'
import type http from 'node:http'
import net, { isIP } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import {
  AbortError,
  CapabilityDeniedError,
  ConfigError,
  createHttp,
  createPermissions,
  loadComponent,
  TimeoutError,
  type HostInterfaceOptions,
  type HttpResponse,
} from '../../lib/index.js'
import { checkedLookup } from '../../lib/capabilities/http.js'
import {
  assertDenied,
  capabilitiesGuest,
  capabilitiesDir,
  denials,
  guestErr,
  startServer,
  type ServedRequest,
  type TestServer,
} from './helpers.js'

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-http-'))
const CAP = 64 * 1024

/** Writes `total` zero bytes in 64 KiB chunks, chunked (no content-length), until done or hung up. */
function stream(response: http.ServerResponse, total: number): void {
  const chunk = Buffer.alloc(64 * 1024)
  let sent = 0
  const pump = () => {
    while (sent < total && !response.destroyed) {
      const size = Math.min(chunk.length, total - sent)
      sent += size
      if (!response.write(chunk.subarray(0, size))) return void response.once('drain', pump)
    }
    if (sent >= total) response.end()
  }
  pump()
}

function handle(request: http.IncomingMessage, response: http.ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1')
  const query = (name: string) => url.searchParams.get(name) ?? ''
  switch (url.pathname) {
    case '/hello':
      response.setHeader('content-type', 'text/plain; charset=utf-8')
      response.setHeader('x-test', 'yes')
      response.setHeader('set-cookie', ['a=1', 'b=2'])
      return void response.end('hello ✓')
    case '/status':
      response.statusCode = Number(query('code'))
      return void response.end(`status ${query('code')}`)
    case '/bytes':
      return stream(response, Number(query('n')))
    case '/declared':
      // Announces a body over the cap: it is refused before any of it is read.
      response.setHeader('content-length', String(CAP * 4))
      return stream(response, CAP * 4)
    case '/redirect':
      response.writeHead(Number(query('code') || 302), { location: query('to') })
      return void response.end()
    case '/loop':
      response.writeHead(302, { location: '/loop' })
      return void response.end()
    case '/slow':
      // Headers and a first chunk, then nothing: a body that never ends.
      response.writeHead(200, { 'content-type': 'text/plain' })
      return void response.write('partial')
    case '/silent':
      return // not even headers
    default:
      response.statusCode = 404
      response.end()
  }
}

let server: TestServer
let other: TestServer
test.before(async () => {
  server = await startServer(handle)
  other = await startServer(handle)
})
test.after.always(async () => {
  await server?.close()
  await other?.close()
  rmSync(scratch, { recursive: true, force: true })
})

/** A guest allowed to reach `server` only (not `other`). */
function guestFor(hostOptions: HostInterfaceOptions = {}, callTimeoutMs?: number) {
  const seen = denials()
  const permissions = createPermissions(
    { networkOutbound: [`127.0.0.1:${server.port}`] },
    { onDenied: seen.onDenied },
  )
  const guest = capabilitiesGuest(permissions, { maxBodyBytes: CAP, ...hostOptions }, callTimeoutMs)
  return { guest, permissions, denied: seen.list }
}

const text = (response: HttpResponse) => Buffer.from(response.body).toString()
const served = (target: TestServer, pathname: string): ServedRequest | undefined =>
  target.requests.find((request) => request.url === pathname)

/** Resolves with `promise`'s value, or 'pending' if it has not settled after `ms`. */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([
    promise,
    new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms).unref()),
  ])

test('a granted host:port is fetched for real: status, headers as pairs, body bytes', async (t) => {
  const { guest, denied } = guestFor()
  const response = (await guest.call('fetch', [server.url('/hello')])) as HttpResponse
  t.is(response.status, 200)
  t.true(response.body instanceof Uint8Array)
  t.is(text(response), 'hello ✓')
  t.deepEqual(
    response.headers.filter(([name]) => ['content-type', 'x-test', 'set-cookie'].includes(name)),
    [
      ['content-type', 'text/plain; charset=utf-8'],
      ['x-test', 'yes'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ],
    'in arrival order',
  )
  t.true(response.headers.every(([name]) => name === name.toLowerCase()))
  t.is(denied.length, 0)
})

test('an error status is a response for the guest, not an err', async (t) => {
  const { guest } = guestFor()
  const response = (await guest.call('fetch', [server.url('/status?code=503')])) as HttpResponse
  t.is(response.status, 503)
  t.is(text(response), 'status 503')
})

test('another port, another host name and other addresses are denied without connecting', async (t) => {
  const { guest, permissions, denied } = guestFor()
  const targets = [
    other.url('/hello'),
    `http://localhost:${server.port}/hello`,
    `http://127.0.0.2:${server.port}/hello`,
    `http://[::1]:${server.port}/hello`,
    'https://127.0.0.1/hello', // port 443
  ]
  for (const target of targets) {
    const err = await guestErr(t, guest.call('fetch', [target]))
    t.regex(err, /^network\.outbound denied: .* is not granted/, target)
  }
  t.is(other.requests.length, 0, 'the other server was never contacted')
  t.is(denied.length, targets.length)
  assertDenied(t, denied[0], 'network.outbound', other.url('/hello'))
  t.regex(denied[0]?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${other.port} is not granted`))
  t.is(permissions.deniedCount, targets.length)
})

test('a body over the cap is cut: the download stops and the guest gets an err', async (t) => {
  const { guest, denied } = guestFor()
  const err = await guestErr(t, guest.call('fetch', [server.url(`/bytes?n=${256 * 1024 * 1024}`)]))
  t.is(err, `the response body is larger than the ${CAP}-byte cap`)
  const request = served(server, `/bytes?n=${256 * 1024 * 1024}`)
  t.is(await within(request?.finished ?? Promise.resolve(true), 5_000), false, 'the client hung up mid-body')
  t.is(denied.length, 0, 'a cap is not a denial')
})

test('a body announced over the cap is refused before it is read', async (t) => {
  const { guest } = guestFor()
  const err = await guestErr(t, guest.call('fetch', [server.url('/declared')]))
  t.is(err, `the response body is larger than the ${CAP}-byte cap`)
})

test('a body of exactly the cap is returned whole', async (t) => {
  const { guest } = guestFor()
  const response = (await guest.call('fetch', [server.url(`/bytes?n=${CAP}`)])) as HttpResponse
  t.is(response.body.length, CAP)
})

test('redirects within the grant are followed and each hop is checked', async (t) => {
  const { guest, denied } = guestFor()
  const relative = (await guest.call('fetch', [server.url('/redirect?to=/hello')])) as HttpResponse
  t.is(relative.status, 200)
  t.is(text(relative), 'hello ✓')
  const absolute = server.url(`/redirect?code=307&to=${encodeURIComponent(server.url('/hello'))}`)
  t.is(text((await guest.call('fetch', [absolute])) as HttpResponse), 'hello ✓')
  t.is(denied.length, 0)
})

test('a redirect to a host that is not granted is denied, and that host is never contacted', async (t) => {
  const { guest, denied } = guestFor()
  for (const target of [other.url('/hello'), `http://localhost:${server.port}/hello`]) {
    const start = server.url(`/redirect?to=${encodeURIComponent(target)}`)
    const err = await guestErr(t, guest.call('fetch', [start]))
    t.regex(err, /^network\.outbound denied: ".*" redirected to .*, which is not granted/)
    assertDenied(t, denied.at(-1), 'network.outbound', target)
  }
  t.is(other.requests.length, 0)
  t.is(denied.length, 2)
})

test('a redirect loop ends after maxRedirects hops with an err', async (t) => {
  const { guest } = guestFor({ maxRedirects: 3 })
  const before = server.requests.filter((request) => request.url === '/loop').length
  const err = await guestErr(t, guest.call('fetch', [server.url('/loop')]))
  t.regex(err, /more than 3 redirects/)
  t.is(server.requests.filter((request) => request.url === '/loop').length - before, 4)
})

test('URLs that are not http(s), invalid, or carry credentials are errs', async (t) => {
  const { guest, denied } = guestFor()
  t.regex(await guestErr(t, guest.call('fetch', ['file:///etc/passwd'])), /only http and https/)
  t.regex(await guestErr(t, guest.call('fetch', ['not a url'])), /is not a valid URL/)
  const withCredentials = server.url('/hello').replace('//', '//user:pw@')
  t.regex(await guestErr(t, guest.call('fetch', [withCredentials])), /credentials/)
  // A URL over 8192 characters is refused before it is parsed, and its err repeats only its start.
  const long = await guestErr(t, guest.call('fetch', [server.url(`/${'a'.repeat(1 << 20)}`)]))
  t.regex(long, /… \(10\d{5} characters\) is longer than 8192 characters$/)
  t.true(long.length < 400)
  t.is(denied.length, 0)
})

test('a refused connection is an err naming the network error', async (t) => {
  const closed = await startServer(handle)
  await closed.close()
  const permissions = createPermissions({ networkOutbound: [`127.0.0.1:${closed.port}`] })
  const err = await guestErr(t, capabilitiesGuest(permissions).call('fetch', [closed.url('/')]))
  t.regex(err, /failed: ECONNREFUSED/)
})

test('a 101 Switching Protocols answer is an err at once, not a fetch that never settles', async (t) => {
  const upgrading = net.createServer((socket) => {
    socket.once('data', () =>
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n'),
    )
  })
  await new Promise<void>((resolve) => upgrading.listen(0, '127.0.0.1', resolve))
  t.teardown(() => upgrading.close())
  const { port } = upgrading.address() as net.AddressInfo
  const http = createHttp(createPermissions({ networkOutbound: [`127.0.0.1:${port}`] }), {
    timeoutMs: 60_000,
  })
  await t.throwsAsync(http.fetch(`http://127.0.0.1:${port}/`), { message: /switched protocols \(101\)/ })
})

test('the host function resolves to the record the guest receives', async (t) => {
  const http = createHttp(createPermissions({ networkOutbound: [`127.0.0.1:${server.port}`] }))
  const response = await http.fetch(server.url('/hello'))
  t.is(response.status, 200)
  t.is(Buffer.from(response.body).toString(), 'hello ✓')
  await t.throwsAsync(http.fetch(other.url('/hello')), { code: 'ERR_WASM_CAPABILITY_DENIED' })
})

test.serial('the fetch timeout ends a response that never comes, as an err', async (t) => {
  const { guest } = guestFor({ timeoutMs: 200 })
  const started = performance.now()
  const err = await guestErr(t, guest.call('fetch', [server.url('/silent')]))
  t.regex(err, /took longer than 200 ms/)
  t.true(performance.now() - started < 3_000)
  t.is(await within(served(server, '/silent')?.finished ?? Promise.resolve(true), 5_000), false)
})

test.serial('the call deadline stops a guest waiting on a slow response, on time', async (t) => {
  const { guest } = guestFor({}, 300)
  const started = performance.now()
  const error = await t.throwsAsync(guest.call('fetch', [server.url('/slow?deadline')]), {
    instanceOf: TimeoutError,
  })
  t.is(error?.code, 'ERR_WASM_TIMEOUT')
  t.is(error?.timeoutMs, 300)
  t.true(performance.now() - started < 3_000, `${performance.now() - started} ms`)
})

test.serial("aborting the call's signal during a slow response rejects with AbortError", async (t) => {
  const { guest } = guestFor()
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 100)
  const error = await t.throwsAsync(
    guest.call('fetch', [server.url('/slow?abort')], { signal: controller.signal }),
    { instanceOf: AbortError },
  )
  t.is(error?.code, 'ABORT_ERR')
})

test.serial('the host signal option cancels a pending fetch; the guest gets an err', async (t) => {
  const controller = new AbortController()
  const { guest } = guestFor({ signal: controller.signal })
  setTimeout(() => controller.abort(), 100)
  const err = await guestErr(t, guest.call('fetch', [server.url('/slow?host-signal')]))
  t.regex(err, /was aborted/)
  t.is(await within(served(server, '/slow?host-signal')?.finished ?? Promise.resolve(true), 5_000), false)
})

test('through loadComponent the manifest grants host:port patterns', async (t) => {
  const dir = capabilitiesDir(scratch, { permissions: [`network.outbound = ["127.0.0.1:${server.port}"]`] })
  const seen = denials()
  using sandbox = await loadComponent(dir, { onDenied: seen.onDenied })
  const response = (await sandbox.call('fetch', [server.url('/hello')])) as HttpResponse
  t.is(response.status, 200)
  t.is(text(response), 'hello ✓')
  t.regex(await guestErr(t, sandbox.call('fetch', [other.url('/hello')])), /not granted/)
  const redirect = server.url(`/redirect?to=${encodeURIComponent(other.url('/hello'))}`)
  t.regex(await guestErr(t, sandbox.call('fetch', [redirect])), /redirected to/)
  t.is(seen.list.length, 2)
  t.is(sandbox.metrics().capabilityDenials, 2)
  t.is(sandbox.metrics().restarts, 0)
  t.is(other.requests.length, 0)
})

test.serial('through loadComponent the manifest deadline stops a slow fetch and cancels it', async (t) => {
  const dir = capabilitiesDir(scratch, {
    permissions: [`network.outbound = ["127.0.0.1:${server.port}"]`],
    timeoutMs: 300,
  })
  using sandbox = await loadComponent(dir)
  const started = performance.now()
  const error = await t.throwsAsync(sandbox.call('fetch', [server.url('/slow?sandbox-deadline')]), {
    instanceOf: TimeoutError,
  })
  t.is(error?.timeoutMs, 300)
  t.true(performance.now() - started < 3_000)
  const request = served(server, '/slow?sandbox-deadline')
  t.is(await within(request?.finished ?? Promise.resolve(true), 2_000), false, 'the fetch was cancelled')
  // The instance was replaced; the next call works.
  t.is(text((await sandbox.call('fetch', [server.url('/hello')])) as HttpResponse), 'hello ✓')
})

test.serial('through loadComponent aborting a call cancels its pending fetch', async (t) => {
  const dir = capabilitiesDir(scratch, { permissions: [`network.outbound = ["127.0.0.1:${server.port}"]`] })
  using sandbox = await loadComponent(dir)
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 100)
  await t.throwsAsync(
    sandbox.call('fetch', [server.url('/slow?sandbox-abort')], { signal: controller.signal }),
    {
      instanceOf: AbortError,
    },
  )
  const request = served(server, '/slow?sandbox-abort')
  t.is(await within(request?.finished ?? Promise.resolve(true), 2_000), false, 'the fetch was cancelled')
})

/** A resolver for `createHttp({ lookup })` that answers from `table` and records every question. */
function resolver(table: Record<string, string[] | (() => string[])>) {
  const asked: string[] = []
  const lookup = async (hostname: string) => {
    asked.push(hostname)
    const entry = table[hostname]
    const addresses = typeof entry === 'function' ? entry() : (entry ?? [])
    return addresses.map((address) => ({ address, family: isIP(address) }))
  }
  return { asked, lookup }
}

const isLoopbackHost = (host: unknown) =>
  host === 'localhost' || host === '::1' || (typeof host === 'string' && /^127\./.test(host))

/**
 * Records every TCP connection started in this process, as `host:port`, followed for a name by
 * `-> addresses` that the socket's own lookup would connect to (`-> system resolver` when it
 * would ask DNS again). Only connections to loopback hosts go ahead: any other is destroyed before
 * its lookup or connect, so a regression here can never send traffic off the machine. Serial
 * tests only.
 */
function spyOnConnections(): { attempts: string[]; restore: () => void } {
  const attempts: string[] = []
  const original = net.Socket.prototype.connect
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    // net.connect hands over its normalised [options, callback] array as one argument.
    const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0]
    const options = (
      typeof first === 'object' && first !== null ? first : { port: first, host: args[1] }
    ) as {
      host?: string
      port?: unknown
      lookup?: net.LookupFunction
    }
    const index = attempts.push(`${String(options.host)}:${String(options.port)}`) - 1
    if (isIP(options.host ?? '') === 0) {
      if (options.lookup === undefined) attempts[index] += ' -> system resolver'
      else {
        // Answered on a later turn (see checkedLookup): recorded when it comes.
        options.lookup(options.host ?? '', { all: true }, (_error, addresses) => {
          const list = Array.isArray(addresses) ? addresses.map((entry) => entry.address) : [addresses]
          attempts[index] += ` -> ${list.join(', ')}`
        })
      }
    }
    if (isLoopbackHost(options.host)) return original.apply(this, args as never)
    process.nextTick(() => this.destroy(new Error('the test refused a connection off loopback')))
    return this
  } as typeof original
  return { attempts, restore: () => void (net.Socket.prototype.connect = original) }
}

test.serial('a granted name that resolves to 127.0.0.1 is refused, before any connection', async (t) => {
  const { asked, lookup } = resolver({ 'granted.test': ['127.0.0.1'] })
  const seen = denials()
  const permissions = createPermissions(
    { networkOutbound: [`granted.test:${server.port}`] },
    { onDenied: seen.onDenied },
  )
  const http = createHttp(permissions, { lookup })
  const before = server.requests.length
  const spy = spyOnConnections()
  try {
    const error = await t.throwsAsync(http.fetch(`http://granted.test:${server.port}/hello`), {
      instanceOf: CapabilityDeniedError,
    })
    t.is(error?.code, 'ERR_WASM_CAPABILITY_DENIED')
    t.is(error?.capability, 'network.outbound')
    t.is(error?.request, `http://granted.test:${server.port}/hello`)
    t.regex(error?.message ?? '', /resolves to an internal address/)
    t.false(error?.message.includes('127.0.0.1'), 'the resolved address is not told to the guest')
  } finally {
    spy.restore()
  }
  t.deepEqual(asked, ['granted.test'], 'the name was resolved')
  t.deepEqual(spy.attempts, [], 'no socket was opened')
  t.is(server.requests.length, before)
  t.is(seen.list.length, 1)
})

/** Addresses of every internal kind (addresses.spec.ts checks which kind each is). */
const internalAddresses: string[] = [
  '10.1.2.3',
  '172.16.0.1',
  '172.31.255.254',
  '192.168.1.1',
  'fc00::1',
  'fd12:3456::1',
  '169.254.1.1',
  'fe80::1',
  '100.64.0.1',
  '100.127.255.254',
  '0.0.0.0',
  '::',
  '224.0.0.1',
  'ff02::1',
  '169.254.169.254',
  'fd00:ec2::254',
  '127.0.0.53',
  '::1',
  '::ffff:10.0.0.1',
  '::ffff:169.254.169.254',
  '64:ff9b::a9fe:a9fe',
  '2002:a00:1::1',
]

test.serial(
  'names resolving to private, link-local, CGNAT, unspecified, multicast or metadata addresses are refused without connecting',
  async (t) => {
    const table = Object.fromEntries(internalAddresses.map((address, index) => [`n${index}.test`, [address]]))
    const { asked, lookup } = resolver(table)
    const permissions = createPermissions({ networkOutbound: ['*.test:80'] })
    const http = createHttp(permissions, { lookup })
    const spy = spyOnConnections()
    try {
      for (const [index, address] of internalAddresses.entries()) {
        const error = await t.throwsAsync(http.fetch(`http://n${index}.test/`), {
          instanceOf: CapabilityDeniedError,
        })
        t.is(error?.code, 'ERR_WASM_CAPABILITY_DENIED', address)
        // Not which kind: the guest is not told (probe Z19).
        t.true(error?.message.includes('resolves to an internal address'), `${address}: ${error?.message}`)
      }
      // One internal answer among public ones is enough to refuse: a connection could pick it.
      const mixed = createHttp(permissions, {
        lookup: async () => [
          { address: '8.8.8.8', family: 4 },
          { address: '10.0.0.1', family: 4 },
        ],
      })
      await t.throwsAsync(mixed.fetch('http://mixed.test/'), { instanceOf: CapabilityDeniedError })
    } finally {
      spy.restore()
    }
    t.is(asked.length, internalAddresses.length, 'every name was resolved')
    t.deepEqual(spy.attempts, [], 'no socket was opened')
    t.is(permissions.deniedCount, internalAddresses.length + 1)
  },
)

test.serial('the address checked is the one connected to: a name is looked up once per hop', async (t) => {
  // DNS rebinding: the first answer passes the check, a second lookup would lead elsewhere.
  let answers = 0
  const { asked, lookup } = resolver({
    localhost: () => (answers++ === 0 ? ['127.0.0.1'] : ['127.0.0.2']),
  })
  const http = createHttp(createPermissions({ networkOutbound: [`localhost:${server.port}`] }), { lookup })
  const spy = spyOnConnections()
  let response: HttpResponse | undefined
  try {
    response = await http.fetch(`http://localhost:${server.port}/hello`)
  } finally {
    spy.restore()
  }
  t.is(response?.status, 200)
  t.is(text(response as HttpResponse), 'hello ✓')
  t.deepEqual(asked, ['localhost'], 'one lookup')
  t.deepEqual(spy.attempts, [`localhost:${server.port} -> 127.0.0.1`], 'its answer is what the socket used')
})

test.serial(
  'an answer with an IPv6 zone is refused: it scopes an address to a link of this host',
  async (t) => {
    // `[::1%lo]` is no URL host, so a check of a grant naming it once found the granted name instead.
    const seen = denials()
    const permissions = createPermissions(
      { networkOutbound: [`evil.test:${server.port}`] },
      { onDenied: seen.onDenied },
    )
    const spy = spyOnConnections()
    try {
      for (const address of ['::1%lo', 'fe80::1%lo', '::ffff:127.0.0.1%lo']) {
        const http = createHttp(permissions, { lookup: async () => [{ address, family: 6 }] })
        await t.throwsAsync(http.fetch(`http://evil.test:${server.port}/`), {
          instanceOf: CapabilityDeniedError,
          message: /resolves to an internal address/,
        })
      }
    } finally {
      spy.restore()
    }
    t.deepEqual(spy.attempts, [], 'no socket was opened')
    t.is(seen.list.length, 3)
  },
)

test('the checked addresses reach the socket on a later turn, as a real lookup answers', (t) => {
  // Answered at once, a connect that failed at once emitted an 'error' nothing listened to yet.
  let answered = false
  checkedLookup([{ address: '127.0.0.1', family: 4 }])('granted.test', { all: true }, () => (answered = true))
  t.false(answered)
})

test.serial('localhost is granted only to loopback addresses', async (t) => {
  const { lookup } = resolver({ localhost: ['10.0.0.1'] })
  const http = createHttp(createPermissions({ networkOutbound: [`localhost:${server.port}`] }), { lookup })
  const spy = spyOnConnections()
  try {
    await t.throwsAsync(http.fetch(`http://localhost:${server.port}/hello`), {
      instanceOf: CapabilityDeniedError,
      message: /resolves to an internal address/,
    })
  } finally {
    spy.restore()
  }
  t.deepEqual(spy.attempts, [])
})

test('a denial does not say which kind of internal address a name resolves to, nor a resolver what it said', async (t) => {
  // Both were the guest's err: under a wildcard grant it could list the host's internal names by
  // the kind of network each is on (a cloud's metadata endpoint among them), and read a host
  // resolver's own text (its socket, its source paths): probe Z19.
  const { lookup } = resolver({
    'db.example.test': ['10.0.0.5'],
    'meta.example.test': ['169.254.169.254'],
    'admin.example.test': ['127.0.0.1'],
  })
  const http = createHttp(createPermissions({ networkOutbound: ['*.example.test:80'] }), { lookup })
  const denials = await Promise.all(
    ['db', 'meta', 'admin'].map(async (name) => {
      const error = await t.throwsAsync(http.fetch(`http://${name}.example.test/`), {
        instanceOf: CapabilityDeniedError,
      })
      return error?.message.replaceAll(`${name}.example.test`, 'NAME')
    }),
  )
  t.is(new Set(denials).size, 1, denials.join('\n'))
  t.regex(denials[0] ?? '', /resolves to an internal address \(private, loopback, link-local or reserved\)/)
  const failing = (thrown: unknown) =>
    createHttp(createPermissions({ networkOutbound: ['*.example.test:80'] }), {
      lookup: () => Promise.reject(thrown),
    })
  const secret = new Error('resolver /var/run/corp-dns.sock refused (uid 1001)')
  for (const [thrown, code] of [
    [Object.assign(secret, { code: 'ENOTFOUND' }), 'ENOTFOUND'],
    // A code a resolver made up is its own text (probe H28).
    [Object.assign(new Error('x'), { code: 'DB_PASSWORD_HUNTER2' }), 'EAI_FAIL'],
    [Object.assign(new Error('x'), { code: 'E'.repeat(1 << 20) }), 'EAI_FAIL'],
    [new TypeError('Cannot read properties of undefined at /srv/app/dns.js:12'), 'EAI_FAIL'],
    [Object.assign(new Error('x'), { code: 'not a code: /srv/app' }), 'EAI_FAIL'],
  ] as const) {
    const error = await t.throwsAsync(failing(thrown).fetch('http://a.example.test/'))
    t.is(error?.message, `fetching http://a.example.test/ failed: ${code}`)
  }
  // An answer that cannot be read is no less the resolver's text (probe H27).
  const answering = (answer: () => unknown) =>
    createHttp(createPermissions({ networkOutbound: ['*.example.test:80'] }), {
      lookup: async () => answer() as never,
    })
  const secretGetter = {
    get address(): string {
      throw new Error('resolver secret: /run/internal/resolver.sock')
    },
  }
  for (const answer of [() => [secretGetter], () => undefined, () => [null], () => 42]) {
    const error = await t.throwsAsync(answering(answer).fetch('http://a.example.test/'))
    t.regex(
      error?.message ?? '',
      /^fetching http:\/\/a\.example\.test\/ failed: (EAI_FAIL|ENOTFOUND)$/,
      String(answer),
    )
  }
})

test.serial('a grant naming the address itself lets a name that resolves to it through', async (t) => {
  const { asked, lookup } = resolver({ 'granted.test': ['127.0.0.1'] })
  const permissions = createPermissions({
    networkOutbound: [`granted.test:${server.port}`, `127.0.0.1:${server.port}`],
  })
  const response = await createHttp(permissions, { lookup }).fetch(`http://granted.test:${server.port}/hello`)
  t.is(text(response), 'hello ✓')
  t.deepEqual(asked, ['granted.test'])
  const literal = await createHttp(permissions, { lookup }).fetch(server.url('/hello'))
  t.is(text(literal), 'hello ✓', 'an IP literal that is granted is not looked up')
  t.deepEqual(asked, ['granted.test'])
})

test.serial('a redirect to a granted name that resolves to an internal address is refused', async (t) => {
  const { asked, lookup } = resolver({ 'metadata.test': ['169.254.169.254'] })
  const seen = denials()
  const permissions = createPermissions(
    { networkOutbound: [`127.0.0.1:${server.port}`, 'metadata.test:80'] },
    { onDenied: seen.onDenied },
  )
  const target = 'http://metadata.test/latest/meta-data/'
  const spy = spyOnConnections()
  try {
    await t.throwsAsync(
      createHttp(permissions, { lookup }).fetch(server.url(`/redirect?to=${encodeURIComponent(target)}`)),
      {
        instanceOf: CapabilityDeniedError,
        message: /redirected to .* which resolves to an internal address/,
      },
    )
  } finally {
    spy.restore()
  }
  t.deepEqual(asked, ['metadata.test'])
  t.deepEqual(spy.attempts, [`127.0.0.1:${server.port}`], 'only the first, granted hop connected')
  assertDenied(t, seen.list[0], 'network.outbound', target)
})

test('lookup must be a function', (t) => {
  const error = t.throws(() => createHttp(createPermissions(), { lookup: 'dns' as never }), {
    instanceOf: ConfigError,
  })
  t.is(error?.path, 'lookup')
})

test.serial(
  'a grant of localhost written fully qualified, localhost., reaches loopback as localhost does',
  async (t) => {
    // Probe H33: the grant was accepted and could never be used; H34: the system's lookup (the
    // hosts file) knows the name without its dot only.
    const { asked, lookup } = resolver({ localhost: () => ['127.0.0.1'] })
    const grant = [`localhost.:${server.port}`]
    const response = await createHttp(createPermissions({ networkOutbound: grant }), { lookup }).fetch(
      `http://localhost.:${server.port}/hello`,
    )
    t.is(response.status, 200)
    t.deepEqual(asked, ['localhost'])
    const system = createHttp(createPermissions({ networkOutbound: grant }))
    t.is((await system.fetch(`http://localhost.:${server.port}/hello`)).status, 200)
  },
)
