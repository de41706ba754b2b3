/**
 * wasi:http outgoing requests of a real guest: a component built by componentize-js from
 * fixtures/js-guest (StarlingMonkey's `fetch` over wasi:http), against local servers. Refusals are
 * proven by servers that count every connection they accept: a refused request never connects.
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import path from 'node:path'
import type { AddressInfo } from 'node:net'

import test, { type ExecutionContext } from 'ava'

import { jsGuestWasm, root, wasiHttpWasm } from '../../fixtures/index.js'
import { createPermissions } from '../../lib/capabilities/permissions.js'
import { createWasiHttpClient, type WasiHttpError } from '../../lib/capabilities/wasi-http.js'
import {
  type Component,
  ConfigError,
  Engine,
  HostLimitError,
  type Instance,
  TimeoutError,
} from '../../lib/index.js'

interface Server {
  url: (pathname: string) => string
  hostPort: string
  connections: () => number
  requests: string[]
  closed: Promise<void>[]
  close: () => Promise<void>
}

/** A server on `host` answering `body from <path>`, or never answering for `/hang`. */
async function serve(host = '127.0.0.1'): Promise<Server> {
  let connections = 0
  const requests: string[] = []
  const closed: Promise<void>[] = []
  const server = http.createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`)
    closed.push(new Promise((resolve) => request.socket.once('close', () => resolve())))
    if (request.url === '/hang') return
    response.end(`body from ${request.url}`)
  })
  server.on('connection', () => connections++)
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: (pathname) => `http://${host}:${port}${pathname}`,
    hostPort: `${host}:${port}`,
    connections: () => connections,
    requests,
    closed,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

const engine = new Engine()
let compiled: Promise<Component> | undefined
const guest = () => (compiled ??= engine.compileComponent(jsGuestWasm))

async function instance(http?: object, timeoutMs = 20_000): Promise<Instance> {
  return (await guest()).instantiate({
    limits: { memoryBytes: 256 << 20 },
    timeoutMs,
    wasi: { stdout: 'pipe', stderr: 'pipe', ...(http === undefined ? {} : { http }) },
  })
}

const run = async (inst: Instance, ok: string, denied: string) =>
  JSON.parse((await inst.call('run', [ok, denied])) as string) as { body: string; error: string | null }

test.after.always(() => engine.close())

test('a granted request returns the body; a request outside the grant fails inside the guest without connecting', async (t) => {
  const granted = await serve()
  const other = await serve('127.0.0.2')
  t.teardown(() => Promise.all([granted.close(), other.close()]))
  const inst = await instance({ allow: [granted.hostPort] })
  const result = await run(inst, granted.url('/ok'), other.url('/secret'))
  t.is(result.body, 'body from /ok')
  t.is(typeof result.error, 'string', 'the refused fetch did not throw in the guest')
  t.deepEqual(granted.requests, ['GET /ok'])
  t.is(other.connections(), 0, 'the refused request connected')
  t.is(inst.metrics().capabilityDenials, 1)
  t.regex(inst.takeOutput().stdout, /hello from js/)
})

test('by default every request is refused and counted, and nothing connects', async (t) => {
  const server = await serve()
  t.teardown(() => server.close())
  const inst = await instance()
  // The first fetch is not caught by the guest: the call fails as a JS error of the guest would.
  const error = await t.throwsAsync(run(inst, server.url('/ok'), server.url('/ok')))
  t.truthy(error)
  t.is(server.connections(), 0)
  t.is(inst.metrics().capabilityDenials, 1)
})

test('a granted name that resolves to a loopback address is refused before connecting', async (t) => {
  const granted = await serve('127.0.0.2')
  const loopback = await serve()
  t.teardown(() => Promise.all([granted.close(), loopback.close()]))
  const port = loopback.hostPort.split(':')[1]
  const inst = await instance({
    allow: [`granted.test:${port}`, granted.hostPort],
    lookup: async () => [{ address: '127.0.0.1', family: 4 }],
  })
  const result = await run(inst, granted.url('/ok'), `http://granted.test:${port}/rebind`)
  t.is(result.body, 'body from /ok')
  t.is(typeof result.error, 'string', 'the rebound name was fetched')
  t.is(loopback.connections(), 0)
  t.is(inst.metrics().capabilityDenials, 1)
})

test("the call's deadline stops a pending request and closes its connection", async (t) => {
  const server = await serve()
  t.teardown(() => server.close())
  const inst = await instance({ allow: [server.hostPort] }, 1_000)
  const started = performance.now()
  await t.throwsAsync(inst.call('run', [server.url('/hang'), server.url('/hang')]), {
    instanceOf: TimeoutError,
  })
  t.true(performance.now() - started < 5_000)
  t.deepEqual(server.requests, ['GET /hang'])
  // The client aborts the request when the guest's call gives up on it.
  await Promise.race([
    server.closed[0],
    new Promise((_, reject) => setTimeout(() => reject(new Error('the request stayed open')), 3_000)),
  ])
  t.pass()
})

test("callSync cannot wait for a request: the guest's fetch fails at once and nothing connects", async (t) => {
  const server = await serve()
  t.teardown(() => server.close())
  const inst = await instance({ allow: [server.hostPort] })
  t.throws(() => inst.callSync('run', [server.url('/ok'), server.url('/ok')]))
  t.is(server.connections(), 0)
})

test('bad wasi.http options are ConfigErrors naming the field', async (t) => {
  const component = await guest()
  const rejects = (http: unknown) =>
    t.throws(
      () => component.instantiateSync({ limits: { memoryBytes: 256 << 20 }, wasi: { http } as never }),
      {
        instanceOf: ConfigError,
      },
    )
  t.is(rejects({ allow: ['no-port'] })?.path, 'wasi.http.allow[0]')
  // A zone id was "options: reading them threw: Invalid URL" (probe Z23).
  t.is(rejects({ allow: ['a.test:80', '[fe80::1%eth0]:443'] })?.path, 'wasi.http.allow[1]')
  // A URL or a bracketed address without a port is named as such, not blamed on its port.
  t.regex(
    rejects({ allow: ['http://127.0.0.1:80'] })?.message ?? '',
    /wasi\.http\.allow\[0\]: "http:\/\/127\.0\.0\.1:80" is a URL, not a host:port pattern: write "127\.0\.0\.1:80"/,
  )
  t.regex(rejects({ allow: ['[::1]'] })?.message ?? '', /"\[::1\]" has no port: write host:port/)
  t.is(rejects({ allowed: [] })?.path, 'wasi.http.allowed')
  t.is(rejects({ maxBodyBytes: 0 })?.path, 'wasi.http.maxBodyBytes')
  t.is(rejects({ lookup: 'x' })?.path, 'wasi.http.lookup')
  t.is(rejects({ maxConcurrentRequests: 0 })?.path, 'wasi.http.maxConcurrentRequests')
  t.is(rejects({ maxConcurrentRequests: 1.5 })?.path, 'wasi.http.maxConcurrentRequests')
})

// The attacks of an outside probe, by a guest that drives wasi:http itself (fixtures/wasi-http).
// Those that time waits run serially, first, before the large JS guest compiles beside them.

const commandGuest = engine.compileComponent(wasiHttpWasm)

/** Runs the wasi-http command with `args`; its `key value` lines (a key seen twice keeps both). */
async function command(
  args: string[],
  http: object,
  timeoutMs = 20_000,
): Promise<{ lines: string[]; inst: Instance }> {
  const component = await commandGuest
  const inst = await component.instantiate({
    limits: { memoryBytes: 16 << 20 },
    timeoutMs,
    wasi: { stdout: 'pipe', stderr: 'pipe', args: ['wasi-http', ...args], http },
  })
  const run = component.exports.find((item) => item.name.startsWith('wasi:cli/run@'))!.name
  await inst.call(`${run}#run`)
  return { lines: inst.takeOutput().stdout.trim().split('\n'), inst }
}

/**
 * A server whose `/big` sends headers, then `size` bytes as fast as the client takes them (or
 * stalls after `stallAfter`), whose `/open` sends headers and keeps the body open, and whose other
 * paths never answer; it counts the bytes the socket accepted and notes when the client went away.
 */
async function bigServer(size: number, options: { stallAfter?: number } = {}) {
  let written = 0
  let connections = 0
  const closed: Promise<void>[] = []
  const server = http.createServer((request, response) => {
    closed.push(new Promise((resolve) => response.once('close', () => resolve())))
    response.writeHead(200, { 'content-length': String(size) })
    const chunk = Buffer.alloc(64 * 1024, 'x')
    const pump = () => {
      while (written < size && !response.destroyed) {
        if (options.stallAfter !== undefined && written >= options.stallAfter) return
        const length = Math.min(chunk.length, size - written)
        written += length
        if (!response.write(chunk.subarray(0, length))) return void response.once('drain', pump)
      }
      if (written >= size) response.end()
    }
    if (request.url === '/big') pump()
    else if (request.url === '/open') response.flushHeaders()
  })
  server.on('connection', () => connections++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: (pathname: string) => `http://127.0.0.1:${port}${pathname}`,
    hostPort: `127.0.0.1:${port}`,
    written: () => written,
    connections: () => connections,
    closed,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

const within = (promise: Promise<unknown>, ms: number, what: string) =>
  Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(what)), ms))])

test('a response body streams: the host reads only as far as the guest does and drops the rest', async (t) => {
  const server = await bigServer(256 << 20)
  t.teardown(() => server.close())
  const { lines } = await command(['get', server.url('/big'), '1'], {
    allow: [server.hostPort],
    maxBodyBytes: 1 << 30,
  })
  t.deepEqual(lines, ['status 200', 'read 1'])
  // The connection closes when the guest drops the body, long before 256 MiB went through.
  await within(server.closed[0]!, 3_000, 'the response stayed open')
  t.true(server.written() < 32 << 20, `the server wrote ${server.written()} bytes`)
})

test.serial(
  'status and headers reach the guest as soon as they arrive, before a body that is slow',
  async (t) => {
    const server = await bigServer(1 << 20, { stallAfter: 1 })
    t.teardown(() => server.close())
    const { lines } = await command(['get', server.url('/big'), '1'], {
      allow: [server.hostPort],
      timeoutMs: 1_000,
    })
    t.deepEqual(lines, ['status 200', 'read 1'])
  },
)

test('maxBodyBytes is enforced as the body flows: the stream fails with http-response-body-size', async (t) => {
  const server = await bigServer(64 << 20)
  t.teardown(() => server.close())
  const { lines } = await command(['get', server.url('/big')], {
    allow: [server.hostPort],
    maxBodyBytes: 100_000,
  })
  t.is(lines[0], 'status 200')
  const read = Number(lines[1]!.split(' ')[1])
  // Every byte up to the cap, then the error: the read that passed it used to fail whole (the
  // guest got 65,437 bytes of a body just over the cap).
  t.is(read, 100_000)
  t.regex(lines[2]!, /^body-error None .*response body size exceeds limit/)
  await within(server.closed[0]!, 3_000, 'the response stayed open')
  t.true(server.written() < 32 << 20, `the server wrote ${server.written()} bytes`)
})

test.serial(
  'timeoutMs bounds each wait for the body: a body that stalls fails, the status came at once',
  async (t) => {
    const server = await bigServer(1 << 20, { stallAfter: 1 })
    t.teardown(() => server.close())
    await commandGuest
    const started = performance.now()
    const { lines } = await command(['get', server.url('/big')], { allow: [server.hostPort], timeoutMs: 300 })
    t.deepEqual(lines.slice(0, 1), ['status 200'])
    t.regex(lines.at(-1)!, /^body-error None .*connection read timeout/)
    t.true(performance.now() - started < 5_000)
  },
)

test.serial(
  'the guest may only shorten the host timeouts: connect-, first-byte- and between-bytes-timeout',
  async (t) => {
    const server = await bigServer(1 << 20, { stallAfter: 1 })
    t.teardown(() => server.close())
    const allow = [server.hostPort]
    await commandGuest
    const started = performance.now()
    // /hang sends no headers: the guest's first-byte-timeout of 200 ms ends the wait.
    const firstByte = await command(['get', server.url('/hang'), '0', '200'], { allow })
    t.deepEqual(firstByte.lines, ['error ErrorCode::ConnectionReadTimeout'])
    const between = await command(['get', server.url('/big'), '100000', '0', '200'], { allow })
    t.is(between.lines[0], 'status 200')
    t.regex(between.lines.at(-1)!, /^body-error None .*connection read timeout/)
    t.true(performance.now() - started < 5_000, 'a guest timeout was ignored')
    // A guest timeout longer than the host's is cut to the host's (timeoutMs 300).
    const longer = await command(['get', server.url('/hang'), '0', '60000'], { allow, timeoutMs: 300 })
    t.deepEqual(longer.lines, ['error ErrorCode::ConnectionReadTimeout'])
    // Connecting includes the lookup: one that never answers ends at the guest's connect-timeout.
    const unresolved = { allow: ['slow.test:80'], lookup: () => new Promise<never>(() => {}) }
    const connect = await command(['get', 'http://slow.test/', '0', '0', '0', '200'], unresolved)
    t.deepEqual(connect.lines, ['error ErrorCode::ConnectionTimeout'])
    const hostConnect = await command(['get', 'http://slow.test/'], { ...unresolved, timeoutMs: 300 })
    t.deepEqual(hostConnect.lines, ['error ErrorCode::ConnectionTimeout'])
  },
)

test('requests in progress per instance are bounded: past maxConcurrentRequests a request fails with connection-limit-reached', async (t) => {
  // /open answers headers and keeps the body open: every held response holds a connection.
  const server = await bigServer(0)
  t.teardown(() => server.close())
  const { lines } = await command(['many', '40', server.url('/open')], {
    allow: [server.hostPort],
    maxConcurrentRequests: 8,
  })
  t.deepEqual(lines, ['ok 8', 'error ErrorCode::ConnectionLimitReached 32', 'next 200'])
  t.is(server.connections(), 9)
})

test('request bodies reach the server whole, and maxBodyBytes bounds those an instance holds at once', async (t) => {
  // Probe Z45: a guest's 1 GiB body was copied on the JS thread (held 2.3 s, past the deadline)
  // into a second 1 GiB, and each of maxConcurrentRequests bodies could hold maxBodyBytes. The
  // server answers once it has read a body whole, 300 ms later, so that the bodies meet.
  const received: { length: number; intact: boolean }[] = []
  const server = http.createServer((request, response) => {
    let length = 0
    let intact = true
    request.on('data', (piece: Buffer) => {
      for (let index = 0; index < piece.length; index++) {
        if (piece[index] !== (length + index) % 251) intact = false
      }
      length += piece.length
    })
    request.on('end', () => {
      received.push({ length, intact })
      setTimeout(() => response.end('thanks'), 300)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  const http8 = { allow: [`127.0.0.1:${port}`], maxBodyBytes: 8 << 20 }
  // 5 MiB, more than the 1 MiB pieces the addon hands over, arrives byte for byte.
  const one = await command(['post', '1', String(5 << 20), `http://127.0.0.1:${port}/`], http8)
  t.deepEqual(one.lines, ['status 200'])
  t.deepEqual(received, [{ length: 5 << 20, intact: true }])
  // Two at once, 5 MiB each: the second would take the instance past 8 MiB while the first is held.
  const two = await command(['post', '2', String(5 << 20), `http://127.0.0.1:${port}/`], http8)
  t.deepEqual(two.lines, ['status 200', 'error ErrorCode::HttpRequestBodySize(Some(3211264))'])
  t.is(received.length, 2)
  // Within the bound together, both go.
  const both = await command(['post', '2', String(3 << 20), `http://127.0.0.1:${port}/`], http8)
  t.deepEqual(both.lines, ['status 200', 'status 200'])
  t.deepEqual(received.slice(2), [
    { length: 3 << 20, intact: true },
    { length: 3 << 20, intact: true },
  ])
})

test('a request body counts against maxBodyBytes until its response ends, not when the head arrives', async (t) => {
  // Probe H47: a server that answers at once and never reads the body left each body queued in
  // the client while the count had ended with the head: 64 bodies of 30 MB under a 32 MiB bound
  // held 1.3-1.7 GB. The body now counts until its response ends or is dropped.
  const sockets = new Set<net.Socket>()
  const server = http.createServer((request, response) => {
    request.pause()
    response.writeHead(200, { 'content-type': 'text/plain' })
    response.write('never ends')
  })
  server.on('connection', (socket) => sockets.add(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const { port } = server.address() as AddressInfo
  // 16 bodies of 4 MiB under 8 MiB: two fit (the code before sent 13).
  const { lines } = await command(['post', '16', String(4 << 20), `http://127.0.0.1:${port}/`], {
    allow: [`127.0.0.1:${port}`],
    maxBodyBytes: 8 << 20,
  })
  t.is(lines.filter((line) => line === 'status 200').length, 2, lines.join('\n'))
  t.is(lines.filter((line) => line.startsWith('error ErrorCode::HttpRequestBodySize')).length, 14)
})

test('once a response ends the client closes its request, whose body the server may never have read', async (t) => {
  // Probe H48: a server answering at once (the response whole) without reading the body left the
  // body queued on the open socket after the response ended; 64 bodies of 30 MB sent one after
  // another held 2 GB though each was counted only until its response ended. A raw server (Node's
  // own closes a connection whose request body it left unread) answers and stops reading; once
  // the response was read, it reads on: a closed connection ends long before the 16 MiB body.
  let sockets: net.Socket[] = []
  const server = net.createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      socket.pause()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    sockets = []
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const { port } = server.address() as AddressInfo
  const client = createWasiHttpClient(createPermissions({ networkOutbound: [`127.0.0.1:${port}`] }), {
    maxBodyBytes: 64 << 20,
    timeoutMs: 10_000,
  })
  const pieces = Array.from({ length: 16 }, () => new Uint8Array(1 << 20))
  const answer = await client('POST', `http://127.0.0.1:${port}/`, [], pieces)
  if ('error' in answer) return t.fail(answer.message)
  t.is(answer.status, 200)
  let read: Uint8Array | null | WasiHttpError
  do read = await answer.read()
  while (read instanceof Uint8Array)
  t.is(read, null)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const socket = sockets[0]!
  let received = 0
  const ended = new Promise<void>((resolve) => {
    socket.on('data', (data: Buffer) => (received += data.length))
    socket.once('close', () => resolve())
  })
  socket.resume()
  await within(ended, 5_000, 'the connection stayed open')
  t.true(received < 12 << 20, `the server read ${received} bytes: the body was still being sent`)
})

test('a connection reset before the guest reads the body fails its read, not the process', async (t) => {
  const server = http.createServer((_, response) => {
    response.flushHeaders()
    setTimeout(() => response.socket?.destroy(), 50)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as AddressInfo
  const client = createWasiHttpClient(createPermissions({ networkOutbound: [`127.0.0.1:${port}`] }), {
    maxBodyBytes: 1 << 20,
    timeoutMs: 5_000,
  })
  const answer = await client('GET', `http://127.0.0.1:${port}/`, [], [])
  if (!('read' in answer)) return t.fail(answer.message)
  t.is(answer.status, 200)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.like(await answer.read(), { error: 'connection-terminated' })
})

/**
 * A server answering every connection with `reply` (raw bytes; `end`: and closing), and a GET of
 * it through a client granted only that server.
 */
async function rawServer(t: ExecutionContext, reply: string, how: 'write' | 'end', timeoutMs = 10_000) {
  // The client resets the connection when it gives up: not this server's failure.
  const server = net.createServer((socket) =>
    socket
      .on('error', () => {})
      .resume()
      [how](reply),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(() => resolve(undefined))))
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`
  const client = createWasiHttpClient(createPermissions({ networkOutbound: [host] }), {
    maxBodyBytes: 1 << 20,
    timeoutMs,
  })
  return (method = 'GET') => client(method, `http://${host}/`, [], [])
}

test('TLS and HTTP failures get their own wasi:http error codes, and large response headers are taken as hyper takes them', async (t) => {
  const tls = path.join(root, 'fixtures/tls')
  const selfSigned = https.createServer(
    {
      key: readFileSync(path.join(tls, 'self-signed.key')),
      cert: readFileSync(path.join(tls, 'self-signed.pem')),
    },
    (_, response) => response.end('over TLS'),
  )
  const plain = http.createServer((request, response) => {
    const size = Number(new URL(request.url!, 'http://x').searchParams.get('header') ?? 0)
    if (size > 0) response.setHeader('x-big', 'a'.repeat(size))
    response.end('plain')
  })
  // Not HTTP at all: a reply the HTTP parser refuses.
  const garbled = net.createServer((socket) => socket.resume().end('NOT HTTP AT ALL\r\n\r\n'))
  const servers = [selfSigned, plain, garbled]
  await Promise.all(
    servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))),
  )
  t.teardown(() => Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve)))))
  const [tlsHost, plainHost, garbledHost] = servers.map(
    (server) => `127.0.0.1:${(server.address() as AddressInfo).port}`,
  )
  const client = createWasiHttpClient(
    createPermissions({ networkOutbound: [tlsHost!, plainHost!, garbledHost!] }),
    { maxBodyBytes: 1 << 20, timeoutMs: 5_000 },
  )
  const get = (url: string) => client('GET', url, [], [])
  t.like(await get(`https://${tlsHost}/`), { error: 'tls-certificate-error' }, 'an untrusted certificate')
  t.like(await get(`https://${plainHost}/`), { error: 'tls-protocol-error' }, 'TLS to a plain HTTP port')
  t.like(await get(`http://${garbledHost}/`), { error: 'http-protocol-error' })
  // 20 KB of response headers is over Node's default of 16 KiB, not over hyper's (wasmtime's own).
  const large = await get(`http://${plainHost}/?header=20000`)
  t.like(large, { status: 200 })
  if ('cancel' in large) large.cancel()
  t.like(await get(`http://${plainHost}/?header=200000`), { error: 'http-response-header-section-size' })
  // Interim (1xx) heads count too: a server sending them without end held the request (and host
  // memory) until the deadline.
  const hints = Array.from(
    { length: 200 },
    () => `HTTP/1.1 103 Early Hints\r\nLink: <${'a'.repeat(2000)}>\r\n\r\n`,
  )
  const hinted = await rawServer(t, hints.join(''), 'write', 60_000)
  t.like(await hinted(), { error: 'http-response-header-section-size' })
  // A 101 answer ends the request at once: wasi:http has no upgraded connections (it waited for a
  // final head until the deadline).
  const upgrading = await rawServer(
    t,
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n',
    'write',
  )
  t.like(await upgrading(), { error: 'http-protocol-error' })
  // Without an Upgrade header Node takes a 101 for a final answer: it is refused the same.
  const bare = await rawServer(t, 'HTTP/1.1 101\r\n\r\n', 'end')
  t.like(await bare(), { error: 'http-protocol-error' })
  // A 2xx answer to CONNECT opens a tunnel, another connection wasi:http cannot use: it waited
  // for a head until timeoutMs, holding its slot of maxConcurrentRequests (probe Z23).
  const tunnel = await rawServer(t, 'HTTP/1.1 200 Connection established\r\n\r\n', 'write')
  t.like(await tunnel('CONNECT'), { error: 'http-protocol-error' })
  // What a guest sees of them.
  const allow = { allow: [plainHost, garbledHost] }
  const protocol = await command(['get', `http://${garbledHost}/`], allow)
  t.deepEqual(protocol.lines, ['error ErrorCode::HttpProtocolError'])
  const overflow = await command(['get', `http://${plainHost}/?header=200000`], allow)
  t.deepEqual(overflow.lines, ['error ErrorCode::HttpResponseHeaderSectionSize(None)'])
})

test('a guest that makes the host exceed its header size bound gets a HostLimitError', async (t) => {
  const error = await t.throwsAsync(command(['header', '100000', 'http://127.0.0.1:1/'], {}), {
    instanceOf: HostLimitError,
  })
  t.is(error?.code, 'ERR_WASM_HOST_LIMIT')
  t.regex(error?.message ?? '', /header/)
})
