import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import {
  AbortError,
  BusyError,
  ComponentError,
  ConfigError,
  DisposedError,
  Engine,
  HostError,
  LinkError,
  Module,
  OutOfFuelError,
  TimeoutError,
  UnreachableError,
  WasiExitError,
  loadComponent,
  type Sandbox,
} from '../../lib/index.js'
import {
  componentDir,
  MiB,
  root,
  typesImports,
  typesWasm,
  wasiComponentWasm,
  wasiModuleWasm,
  watComponentDir,
  writingStartWat,
} from '../helpers.js'

const example = (name: string) => path.join(root, 'examples', name)
const PAGE = 64 * 1024

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-sandbox-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

test('loads hello and calls it under its manifest limits, async and sync', async (t) => {
  using sandbox = await loadComponent(example('hello'))
  t.is(await sandbox.call('greet', ['world']), 'Hello, world!')
  t.is(sandbox.callSync('greet', ['sync']), 'Hello, sync!')
  t.is(sandbox.manifest.component.name, 'hello')
  const metrics = sandbox.metrics()
  t.is(metrics.memory.limitBytes, 2 * MiB, 'the limit is the manifest max_bytes')
  t.is(metrics.calls, 2)
  t.is(metrics.restarts, 0)
  t.true(metrics.fuel.lastCallConsumed > 0, 'calls are metered')
})

test('runaway is stopped by its manifest timeout, and the sandbox keeps working', async (t) => {
  using sandbox = await loadComponent(example('runaway'))
  const started = performance.now()
  const error = await t.throwsAsync(sandbox.call('run'), { instanceOf: TimeoutError })
  t.is(error?.code, 'ERR_WASM_TIMEOUT')
  t.is(error?.timeoutMs, 50)
  t.true((error?.elapsedMs ?? 0) >= 50)
  t.true(performance.now() - started < 5_000)
  t.is(sandbox.metrics().restarts, 1)

  // The replacement is a working instance: the second call times out too, rather than being refused.
  await t.throwsAsync(sandbox.call('run'), { instanceOf: TimeoutError })
  const metrics = sandbox.metrics()
  t.is(metrics.restarts, 2)
  t.is(metrics.traps, 2)
  t.is(metrics.calls, 2)
})

test('memory-hog gets pages up to its manifest limit, then growth is denied without a trap', async (t) => {
  using sandbox = await loadComponent(example('memory-hog'))
  const startBytes = sandbox.metrics().memory.currentBytes
  const granted = await sandbox.call('hog', [64])
  t.is(granted, (MiB - startBytes) / PAGE)
  const { memory, traps } = sandbox.metrics()
  t.deepEqual(memory, { currentBytes: MiB, peakBytes: MiB, limitBytes: MiB, deniedGrowths: 1 })
  t.is(traps, 0)
  t.is(await sandbox.call('hog', [1]), 0, 'the instance is still usable, and still at its limit')
})

test('a manifest with a smaller memory limit denies growth earlier', async (t) => {
  const hogWasm = path.join(example('memory-hog'), 'memory-hog.wasm')
  using roomy = await loadComponent(componentDir(scratch, hogWasm, { maxBytes: MiB }))
  using tight = await loadComponent(componentDir(scratch, hogWasm, { maxBytes: 512 * 1024 }))
  const roomyPages = (await roomy.call('hog', [64])) as number
  const tightPages = (await tight.call('hog', [64])) as number
  t.true(tightPages < roomyPages)
  t.is(roomyPages - tightPages, (MiB - 512 * 1024) / PAGE)
  t.is(tight.metrics().memory.peakBytes, 512 * 1024)
  t.is(tight.metrics().memory.deniedGrowths, 1)
})

test('after a trap the instance is replaced, so the next call works (async and sync)', async (t) => {
  using sandbox = await loadComponent(example('hello'))
  await t.throwsAsync(sandbox.call('greet', ['a'], { fuel: 10 }), { instanceOf: OutOfFuelError })
  t.is(await sandbox.call('greet', ['b']), 'Hello, b!')
  t.throws(() => sandbox.callSync('greet', ['c'], { fuel: 10 }), { instanceOf: OutOfFuelError })
  t.is(sandbox.callSync('greet', ['d']), 'Hello, d!')
  const metrics = sandbox.metrics()
  t.is(metrics.restarts, 2)
  t.is(metrics.traps, 2)
  t.is(metrics.calls, 4, 'counters add up across the replaced instances')
  t.true(metrics.fuel.totalConsumed > metrics.fuel.lastCallConsumed)
})

test("metrics after dispose() still count the last instance's calls, also one that ends after it", async (t) => {
  // dispose() dropped the live instance's counters from the sums: a sandbox that never restarted
  // read all zeros, at the moment a service reads its final figures (probe Z7).
  const sandbox = await loadComponent(example('hello'))
  await sandbox.call('greet', ['a'])
  await t.throwsAsync(sandbox.call('greet', ['b'], { fuel: 10 }), { instanceOf: OutOfFuelError })
  sandbox.callSync('greet', ['c'])
  const running = sandbox.call('greet', ['d'])
  const before = sandbox.metrics()
  sandbox.dispose()
  // Its value, or DisposedError if its thread had not entered the instance yet (not a call then).
  const ended: unknown = await running.catch((error: unknown) => error)
  t.true(ended === 'Hello, d!' || ended instanceof DisposedError, String(ended))
  const after = sandbox.metrics()
  t.is(after.calls, ended === 'Hello, d!' ? 4 : 3)
  t.is(after.traps, 1)
  t.is(after.restarts, 1)
  t.true(after.fuel.totalConsumed >= before.fuel.totalConsumed, 'the running call counts once it ended')
  t.true(after.fuel.lastCallConsumed > 0)
  t.is(after.memory.peakBytes, before.memory.peakBytes)
  t.is(after.memory.currentBytes, 0, 'the instance is gone')
})

test('queued calls run in order and the one after a trap gets the fresh instance', async (t) => {
  using sandbox = await loadComponent(example('hello'))
  const [failed, ok] = await Promise.allSettled([
    sandbox.call('greet', ['a'], { fuel: 10 }),
    sandbox.call('greet', ['b']),
  ])
  t.is(failed.status, 'rejected')
  t.deepEqual(ok, { status: 'fulfilled', value: 'Hello, b!' })
  t.is(sandbox.metrics().restarts, 1)
})

test('a call waiting its turn rejects at once when its signal aborts, and never runs', async (t) => {
  const imports = typesImports()
  let release = () => {}
  const gate = new Promise<void>((resolve) => (release = resolve))
  let hostCalls = 0
  imports.double = async (x: number) => {
    hostCalls++
    await gate
    return x * 2
  }
  const dir = componentDir(scratch, typesWasm, { maxBytes: 4 * MiB, timeoutMs: 10_000 })
  using sandbox = await loadComponent(dir, { hostFunctions: imports })
  // The first call waits on the host until released: only an abort can settle the one behind it.
  const running = sandbox.call('call-double', [2])
  const controller = new AbortController()
  const waiting = sandbox.call('call-double', [3], { signal: controller.signal })
  t.throws(() => sandbox.callSync('get-counter'), { instanceOf: BusyError })
  controller.abort('no longer wanted')
  const error = await t.throwsAsync(waiting, { instanceOf: AbortError })
  t.is(error?.cause, 'no longer wanted')
  release()
  t.is(await running, 4)
  t.is(hostCalls, 1, 'the aborted call never ran')
  const metrics = sandbox.metrics()
  t.is(metrics.calls, 1)
  t.is(metrics.restarts, 0)
  t.is(sandbox.callSync('get-counter'), 0, 'nothing is left waiting once the running call ends')
})

test("a call() from one of the sandbox's own host functions is a BusyError at once, and the instance is kept", async (t) => {
  // It was queued, checked only at its turn: awaited, the two calls waited on each other until
  // the deadline, which replaced the instance; under callSync, the refused call counted as a
  // call, a trap and a restart (probe Z1).
  const imports = typesImports()
  let sandbox!: Sandbox
  let inner: Promise<unknown> | undefined
  imports.double = async (x: number) => {
    inner = sandbox.call('get-counter')
    await inner.catch(() => {})
    return x * 2
  }
  const dir = componentDir(scratch, typesWasm, { maxBytes: 4 * MiB, timeoutMs: 5_000 })
  sandbox = await loadComponent(dir, { hostFunctions: imports })
  using _ = sandbox
  await sandbox.call('set-counter', [7])
  t.is(await sandbox.call('call-double', [2]), 4)
  await t.throwsAsync(inner!, { instanceOf: BusyError, code: 'ERR_WASM_BUSY' })
  t.like(sandbox.metrics(), { calls: 2, traps: 0, restarts: 0 })
  t.is(await sandbox.call('get-counter'), 7, 'the guest state is kept')
  // From a host function reached by callSync (which fails the call, as a Promise was returned).
  await t.throwsAsync(async () => sandbox.callSync('call-double', [2]), { instanceOf: HostError })
  await t.throwsAsync(inner!, { instanceOf: BusyError })
  t.like(sandbox.metrics(), { calls: 4, traps: 1, restarts: 1 })
})

test('a restart loses the guest state; an err result or a bad argument does not restart', async (t) => {
  const dir = componentDir(scratch, typesWasm, { maxBytes: 4 * MiB })
  using sandbox = await loadComponent(dir, { hostFunctions: typesImports() })
  await sandbox.call('set-counter', [7])
  await t.throwsAsync(sandbox.call('fallible', [true]), { instanceOf: ComponentError })
  await t.throwsAsync(sandbox.call('roundtrip-u8', [300]), { instanceOf: TypeError })
  t.is(await sandbox.call('get-counter'), 7)
  t.is(sandbox.metrics().restarts, 0)

  await t.throwsAsync(sandbox.call('trap-unreachable'), { instanceOf: UnreachableError })
  t.is(await sandbox.call('get-counter'), 0, 'the fresh instance starts from the initial state')
  t.is(sandbox.metrics().restarts, 1)
})

test('host functions are linked, and one that throws leads to a restart too', async (t) => {
  const imports = typesImports()
  let fail = true
  imports.double = (x: number) => {
    if (fail) throw new Error('host failure')
    return x * 2
  }
  using sandbox = await loadComponent(componentDir(scratch, typesWasm, { maxBytes: 4 * MiB }), {
    hostFunctions: imports,
  })
  const error = await t.throwsAsync(sandbox.call('call-double', [2]), { instanceOf: HostError })
  t.is((error?.cause as Error).message, 'host failure')
  fail = false
  t.is(await sandbox.call('call-double', [2]), 4)
  t.is(sandbox.metrics().restarts, 1)
})

test('a component whose imports are not provided fails to load with a LinkError', async (t) => {
  await t.throwsAsync(loadComponent(componentDir(scratch, typesWasm, { maxBytes: 4 * MiB })), {
    instanceOf: LinkError,
    message: /double/,
  })
})

test('an aborted call stops the guest and the sandbox recovers', async (t) => {
  // A 5 s deadline and fuel for longer, so that only the abort can stop the call early. The abort
  // waits long enough for the guest to be running on a loaded machine: one that comes before the
  // guest starts refuses the call and keeps the instance (the second case below).
  const runawayWasm = path.join(example('runaway'), 'runaway.wasm')
  const dir = componentDir(scratch, runawayWasm, {
    maxBytes: 512 * 1024,
    maxFuel: 10_000_000_000,
    timeoutMs: 5_000,
  })
  using sandbox = await loadComponent(dir, { policy: { fuel: { max: 10_000_000_000 } } })
  const controller = new AbortController()
  const reason = new Error('no longer wanted')
  setTimeout(() => controller.abort(reason), 500)
  const error = await t.throwsAsync(sandbox.call('run', [], { signal: controller.signal }), {
    instanceOf: AbortError,
  })
  t.is(error?.cause, reason, "the signal's reason, as for a call refused before it ran")
  t.is(sandbox.metrics().restarts, 1)

  // Aborted before it started: the guest never ran, so there is nothing to replace.
  await t.throwsAsync(sandbox.call('run', [], { signal: AbortSignal.abort() }), { instanceOf: AbortError })
  t.is(sandbox.metrics().restarts, 1)
})

test('per-call and per-sandbox limits may lower the manifest limits, never raise them', async (t) => {
  using sandbox = await loadComponent(example('hello'))
  const fuel = await t.throwsAsync(sandbox.call('greet', ['x'], { fuel: 10_000_001 }), {
    instanceOf: ConfigError,
  })
  t.is(fuel?.path, 'fuel')
  t.is(fuel?.value, 10_000_001)
  t.is(fuel?.allowed, '1..10000000')
  t.throws(() => sandbox.callSync('greet', ['x'], { timeoutMs: 1_001 }), {
    instanceOf: ConfigError,
    message: /timeoutMs/,
  })
  t.is(await sandbox.call('greet', ['x'], { fuel: 1_000_000, timeoutMs: 500 }), 'Hello, x!')

  using tight = await loadComponent(example('memory-hog'), { limits: { memoryBytes: 512 * 1024 } })
  t.is(tight.metrics().memory.limitBytes, 512 * 1024)
  const raise = await t.throwsAsync(
    loadComponent(example('memory-hog'), { limits: { memoryBytes: 2 * MiB } }),
    {
      instanceOf: ConfigError,
    },
  )
  t.is(raise?.path, 'limits.memoryBytes')
  // 0 and -1 are refused with the same words (0 was "positive", -1 "from 0": probe Z25).
  for (const fuel of [0, -1, 0.5]) {
    const refused = await t.throwsAsync(sandbox.call('greet', ['x'], { fuel }), { instanceOf: ConfigError })
    t.is(refused?.message, `fuel: expected an integer from 1 to 10000000, got ${fuel}`)
  }
  for (const memoryBytes of [0, -1]) {
    const refused = await t.throwsAsync(loadComponent(example('memory-hog'), { limits: { memoryBytes } }), {
      instanceOf: ConfigError,
    })
    t.regex(refused?.message ?? '', /^limits\.memoryBytes: expected an integer from 1 to \d+, got -?\d$/)
  }
})

test("a limit the host lowered is named when a call asks for more: not as the manifest's", async (t) => {
  using sandbox = await loadComponent(example('hello'), { limits: { timeoutMs: 50, fuel: 100_000 } })
  const timeout = await t.throwsAsync(sandbox.call('greet', ['x'], { timeoutMs: 500 }), {
    instanceOf: ConfigError,
  })
  t.is(timeout?.path, 'timeoutMs')
  t.is(timeout?.allowed, '1..50')
  t.regex(
    timeout?.message ?? '',
    /^timeoutMs: 500 is above the manifest's timeout as lowered by limits\.timeoutMs \(50\)/,
  )
  const fuel = t.throws(() => sandbox.callSync('greet', ['x'], { fuel: 5_000_000 }), {
    instanceOf: ConfigError,
  })
  t.regex(
    fuel?.message ?? '',
    /^fuel: 5000000 is above the manifest's max_fuel as lowered by limits\.fuel \(100000\)/,
  )
  // Not lowered: the manifest's own limit is the one named.
  using plain = await loadComponent(example('hello'))
  t.throws(() => plain.callSync('greet', ['x'], { fuel: 10_000_001 }), {
    instanceOf: ConfigError,
    message: /^fuel: 10000001 is above the manifest's max_fuel \(10000000\)/,
  })
})

test('the policy is applied to the manifest', async (t) => {
  const error = await t.throwsAsync(
    loadComponent(example('hello'), { policy: { memoryBytes: { max: MiB } } }),
    {
      instanceOf: ConfigError,
    },
  )
  t.is(error?.path, 'resources.memory.max_bytes')
  t.is(error?.code, 'ERR_WASM_CONFIG')
})

test('an engine without fuel metering is refused with a ConfigError', async (t) => {
  const engine = new Engine()
  t.teardown(() => engine.close())
  const error = await t.throwsAsync(loadComponent(example('hello'), { engine }), { instanceOf: ConfigError })
  t.is(error?.path, 'engine')
  await t.throwsAsync(loadComponent(example('hello'), { nope: true } as never), {
    instanceOf: ConfigError,
    message: /unknown loadComponent option "nope"/,
  })
  // A typo in a limit the host meant to lower would leave the manifest's in place.
  const typo = await t.throwsAsync(loadComponent(example('hello'), { limits: { timeOutMs: 5 } } as never), {
    instanceOf: ConfigError,
    message: /unknown limits option "timeOutMs" \(known: memoryBytes, fuel, timeoutMs\)/,
  })
  t.is(typo?.path, 'limits.timeOutMs')
})

test('a closed engine is a DisposedError, not a complaint about fuel', async (t) => {
  for (const options of [{ fuel: true }, {}]) {
    const engine = new Engine(options)
    engine.close()
    const error = await t.throwsAsync(loadComponent(example('hello'), { engine }), {
      instanceOf: DisposedError,
    })
    t.is(error?.code, 'ERR_WASM_DISPOSED')
    t.regex(error?.message ?? '', /^engine: the engine was closed/)
  }
})

test("wasi.preopens and wasi.http.allow are ConfigErrors: a sandbox's grants are its manifest's", async (t) => {
  const wasiTool = path.join(root, 'examples/wasi-tool')
  const preopens = await t.throwsAsync(
    loadComponent(wasiTool, { wasi: { preopens: { '/host': '/' } } } as never),
    { instanceOf: ConfigError },
  )
  t.is(preopens?.path, 'wasi.preopens')
  t.deepEqual(preopens?.value, { '/host': '/' })
  t.regex(
    preopens?.message ?? '',
    /\[permissions\] filesystem\.read .* and filesystem\.write; grant them there$/,
  )
  const allow = await t.throwsAsync(
    loadComponent(wasiTool, { wasi: { http: { allow: ['*.evil.com:443'] } } } as never),
    { instanceOf: ConfigError },
  )
  t.is(allow?.path, 'wasi.http.allow')
  t.regex(allow?.message ?? '', /\[permissions\] network\.outbound/)
  const onDenied = await t.throwsAsync(
    loadComponent(wasiTool, { wasi: { http: { onDenied: () => {} } } } as never),
    { instanceOf: ConfigError },
  )
  t.is(onDenied?.path, 'wasi.http.onDenied')
  t.regex(onDenied?.message ?? '', /loadComponent's onDenied/)
  // What the sandbox does take still works.
  using sandbox = await loadComponent(wasiTool, { wasi: { args: ['tool', 'echo', 'hi'], http: {} } })
  await sandbox.call('wasi:cli/run#run')
  t.regex(sandbox.takeOutput().stdout, /^args: hi\n/)
})

test('compiled code is reused for the same bytes on the same engine', async (t) => {
  const engine = new Engine({ fuel: true })
  const other = new Engine({ fuel: true })
  t.teardown(() => {
    engine.close()
    other.close()
  })
  const [first, second] = await Promise.all([
    loadComponent(example('hello'), { engine }),
    loadComponent(example('hello'), { engine }),
  ])
  const copy = await loadComponent(
    componentDir(scratch, path.join(example('hello'), 'hello.wasm'), { maxBytes: 2 * MiB }),
    {
      engine,
    },
  )
  const elsewhere = await loadComponent(example('hello'), { engine: other })
  t.is(first.component, second.component)
  t.is(copy.component, first.component, 'the cache is keyed by content, not by path')
  t.not(elsewhere.component, first.component)
  t.is(await copy.call('greet', ['cache']), 'Hello, cache!')
  for (const sandbox of [first, second, copy, elsewhere]) sandbox.dispose()
})

test('callSync while an async call is pending is a BusyError', async (t) => {
  using sandbox = await loadComponent(example('runaway'))
  const running = sandbox.call('run')
  t.throws(() => sandbox.callSync('run'), { instanceOf: BusyError, code: 'ERR_WASM_BUSY' })
  await t.throwsAsync(running, { instanceOf: TimeoutError })
})

test('callSync on a disposed sandbox is a DisposedError while its last call still runs, not a BusyError', async (t) => {
  // A caller that retries on BusyError would only learn later that the sandbox is gone (probe Z7).
  const sandbox = await loadComponent(example('runaway'))
  const running = sandbox.call('run')
  sandbox.dispose()
  t.throws(() => sandbox.callSync('run'), { instanceOf: DisposedError, code: 'ERR_WASM_DISPOSED' })
  // Its end as it would have been, or DisposedError if its thread had not entered the instance yet.
  const ended: unknown = await running.catch((error: unknown) => error)
  t.true(ended instanceof TimeoutError || ended instanceof DisposedError, String(ended))
})

test('a disposed sandbox refuses calls', async (t) => {
  const sandbox = await loadComponent(example('hello'))
  sandbox.dispose()
  t.true(sandbox.disposed)
  await t.throwsAsync(sandbox.call('greet', ['x']), { instanceOf: DisposedError, code: 'ERR_WASM_DISPOSED' })
  t.throws(() => sandbox.callSync('greet', ['x']), { instanceOf: DisposedError })
  t.notThrows(() => sandbox.dispose(), 'dispose is idempotent')
})

test('a sandbox disposed during a call that then fails counts no restart: it makes no new instance', async (t) => {
  // runaway loops until its 2 s timeout; dispose comes while it runs (and lets it end).
  const runaway = path.join(example('runaway'), 'runaway.wasm')
  const dir = componentDir(scratch, runaway, { maxBytes: MiB, maxFuel: 10_000_000_000, timeoutMs: 2_000 })
  const sandbox = await loadComponent(dir, { policy: { fuel: { max: 10_000_000_000 } } })
  const call = sandbox.call('run', [])
  let ended = false
  void call.catch(() => undefined).finally(() => (ended = true))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.false(ended)
  sandbox.dispose()
  await t.throwsAsync(call, { instanceOf: TimeoutError })
  t.is(sandbox.metrics().restarts, 0)
})

test('loadComponent runs a WASI command with read-only preopens derived from its grants', async (t) => {
  const read = await loadComponent(path.join(root, 'examples/wasi-tool'), {
    wasi: { stdout: 'pipe', stderr: 'pipe', args: ['wasi-tool', 'cat', '/data/hello.txt'] },
  })
  t.teardown(() => read.dispose())
  await read.call('wasi:cli/run#run')
  t.is(read.takeOutput().stdout, 'read through a WASI preopen\n')

  const escape = await loadComponent(path.join(root, 'examples/wasi-tool'), {
    wasi: { stdout: 'pipe', stderr: 'pipe', args: ['wasi-tool', 'cat', '/data/../Component.toml'] },
  })
  t.teardown(() => escape.dispose())
  await t.throwsAsync(escape.call('wasi:cli/run#run'), { instanceOf: WasiExitError })
  t.regex(escape.takeOutput().stderr, /cannot read/)
})

test('output left untaken across restarts stays within one instance cap, the newest bytes kept', async (t) => {
  // Each run prints "cannot read <path>: ..." (about 300 bytes) to stderr and exits 2, which
  // replaces the instance: before the cap, every restart added its output to what was kept.
  const marker = 'm'.repeat(256)
  using sandbox = await loadComponent(path.join(root, 'examples/wasi-tool'), {
    wasi: { stdout: 'pipe', stderr: 'pipe', outputLimitBytes: 1024, args: ['wasi-tool', 'cat', marker] },
  })
  const runs = 20
  for (let run = 0; run < runs; run++) {
    await t.throwsAsync(sandbox.call('wasi:cli/run#run'), {
      instanceOf: WasiExitError,
      code: 'ERR_WASM_EXIT',
    })
  }
  t.is(sandbox.metrics().restarts, runs)
  const { stderr } = sandbox.takeOutput()
  const bytes = Buffer.byteLength(stderr)
  t.true(bytes <= 1024, `${bytes} bytes kept`)
  t.true(bytes > 1024 - 400, 'the cap is filled, not emptied')
  t.true(
    stderr.endsWith('\n') && stderr.includes(`cannot read ${marker}`),
    'the newest output is the one kept',
  )
  t.deepEqual(sandbox.takeOutput(), { stdout: '', stderr: '' }, 'taking empties it')
})

test('the cap on kept output counts UTF-8 bytes and never splits a character', async (t) => {
  const marker = 'é'.repeat(200)
  using sandbox = await loadComponent(path.join(root, 'examples/wasi-tool'), {
    wasi: { stderr: 'pipe', outputLimitBytes: 333, args: ['wasi-tool', 'cat', marker] },
  })
  for (let run = 0; run < 3; run++) await t.throwsAsync(sandbox.call('wasi:cli/run#run'))
  const { stderr } = sandbox.takeOutput()
  t.true(Buffer.byteLength(stderr) <= 333, `${Buffer.byteLength(stderr)} bytes`)
  t.false(stderr.includes('\uFFFD'), 'no character was cut in half')
  t.true(stderr.endsWith('\n'))
})

test('a sandbox pipes WASI stdout and stderr by default: guest output never reaches the host process', async (t) => {
  using sandbox = await loadComponent(path.join(root, 'examples/wasi-tool'), {
    wasi: { args: ['wasi-tool', 'echo', 'piped'], env: { MESSAGE: 'on stderr' } },
  })
  await sandbox.call('wasi:cli/run#run')
  const output = sandbox.takeOutput()
  t.regex(output.stdout, /^args: piped\n/)
  t.is(output.stderr, 'env MESSAGE=on stderr\n')
})

test("a command component's instance is replaced after its run, which wasi-libc runs once, as a module's after _start", async (t) => {
  // Every second run trapped in the guest and counted a restart (probe Z26).
  using sandbox = await loadComponent(wasiToolDir([], []), {
    engine: wasiEngine,
    limits: { timeoutMs: 1_000 },
    wasi: { args: ['wasi-tool', 'echo', 'again'] },
  })
  for (const path of ['wasi:cli/run#run', 'wasi:cli/run@0.2.0#run', 'wasi:cli/run#run']) {
    await sandbox.call(path)
    t.is(sandbox.takeOutput().stdout, 'args: again\nenv count: 0\n', path)
  }
  t.is(sandbox.callSync('wasi:cli/run#run'), undefined, 'callSync too')
  t.like(sandbox.metrics(), { restarts: 0, traps: 0, calls: 4 })
})

test("a command component's run that returns err is replaced too: it ran, as one that returns ok did", async (t) => {
  // A wit-bindgen command's `Result<(), ()>`: the next run saw the state the last one left (probe H31).
  const command = (result: number) => `(component
    (core module $m
      (global $g (mut i32) (i32.const 0))
      (func (export "run") (result i32) (global.set $g (i32.add (global.get $g) (i32.const 100))) (i32.const ${result}))
      (func (export "count") (result i32) (global.set $g (i32.add (global.get $g) (i32.const 1))) (global.get $g)))
    (core instance $i (instantiate $m))
    (func $run (result (result)) (canon lift (core func $i "run")))
    (func $count (result u32) (canon lift (core func $i "count")))
    (instance $ri (export "run" (func $run)))
    (export "wasi:cli/run@0.2.0" (instance $ri))
    (export "count" (func $count)))`
  for (const result of [0, 1]) {
    using sandbox = await loadComponent(watComponentDir(scratch, command(result), { maxBytes: MiB }))
    for (let run = 0; run < 2; run++) {
      await sandbox
        .call('wasi:cli/run#run')
        .catch((error: unknown) => t.true(error instanceof ComponentError))
      t.is(await sandbox.call('count'), 1, `result ${result}, run ${run}: a fresh instance`)
    }
    t.is(sandbox.metrics().restarts, result === 0 ? 0 : 2, 'a failed run is a restart, as a failed _start is')
  }
})

/** A copy of the WASI command under a Component.toml with these grants, and the directories they name. */
function wasiToolDir(permissions: string[], directories: string[], wasm = wasiComponentWasm): string {
  const dir = componentDir(scratch, wasm, {
    name: 'wasi-tool',
    maxBytes: 4 * MiB,
    maxFuel: 100_000_000,
    timeoutMs: 5_000,
    permissions,
  })
  for (const directory of directories) mkdirSync(path.join(dir, directory), { recursive: true })
  return dir
}

const wasiEngine = new Engine({ fuel: true })

/** Runs the command once in a fresh sandbox of `dir` and returns its exit (0 or WasiExitError's) and output. */
async function runTool(dir: string, args: string[]) {
  using sandbox = await loadComponent(dir, { engine: wasiEngine, wasi: { args: ['wasi-tool', ...args] } })
  const command = sandbox.component instanceof Module ? '_start' : 'wasi:cli/run#run'
  const exitCode = await sandbox.call(command).then(
    () => 0,
    (error: unknown) => {
      if (error instanceof WasiExitError) return error.exitCode
      throw error
    },
  )
  return { exitCode, ...sandbox.takeOutput() }
}

test.serial("a sandbox's output cap is its own option, never one Object.prototype holds", async (t) => {
  // Serial tests run alone, so the pollution lasts only while this one loads its sandbox.
  const dir = wasiToolDir([], [])
  Object.defineProperty(Object.prototype, 'outputLimitBytes', {
    value: 1,
    configurable: true,
    writable: true,
  })
  let sandbox: Awaited<ReturnType<typeof loadComponent>>
  try {
    sandbox = await loadComponent(dir, {
      engine: wasiEngine,
      wasi: { args: ['wasi-tool', 'echo', 'kept whole'] },
    })
  } finally {
    delete (Object.prototype as { outputLimitBytes?: unknown }).outputLimitBytes
  }
  using kept = sandbox
  await kept.call('wasi:cli/run#run')
  t.is(kept.takeOutput().stdout, 'args: kept whole\nenv count: 0\n')
})

test('a read grant of a directory not there yet loads, as validate says: the guest sees no such directory', async (t) => {
  const dir = wasiToolDir(['filesystem.read = ["./later/**", "./data/**"]'], ['data'])
  writeFileSync(path.join(dir, 'data', 'a.txt'), 'A')
  t.is((await runTool(dir, ['cat', '/data/a.txt'])).stdout, 'A')
  const missing = await runTool(dir, ['cat', '/later/b.txt'])
  t.is(missing.exitCode, 1)
  t.regex(missing.stderr, /cannot read \/later\/b\.txt/)
})

test('a filesystem.write grant is a writable preopen at its own path: the guest creates files there', async (t) => {
  const dir = wasiToolDir(['filesystem.write = ["./scratch", "out/nested/"]'], ['scratch', 'out/nested'])
  t.deepEqual(await runTool(dir, ['write', '/scratch/new.txt']), {
    exitCode: 0,
    stdout: 'wrote /scratch/new.txt\n',
    stderr: '',
  })
  t.is(readFileSync(path.join(dir, 'scratch', 'new.txt'), 'utf8'), 'x', 'the file is on the host')
  const nested = await runTool(dir, ['write', '/out/nested/deep.txt'])
  t.is(nested.exitCode, 0, nested.stderr)
  t.true(existsSync(path.join(dir, 'out', 'nested', 'deep.txt')))
  // What it wrote it can read back through the same grant.
  t.is((await runTool(dir, ['cat', '/scratch/new.txt'])).stdout, 'x')
})

test('a restart preopens the granted directory that was checked, even after its path is swapped for a symlink', async (t) => {
  const dir = wasiToolDir(['filesystem.write = ["./scratch"]'], ['scratch'])
  const outside = mkdtempSync(path.join(scratch, 'outside-'))
  using sandbox = await loadComponent(dir, {
    engine: wasiEngine,
    wasi: { args: ['wasi-tool', 'write', '/scratch/after.txt'] },
  })
  renameSync(path.join(dir, 'scratch'), path.join(dir, 'scratch-moved'))
  symlinkSync(outside, path.join(dir, 'scratch'))
  // Out of fuel: the instance is poisoned and the sandbox instantiates a fresh one.
  await t.throwsAsync(sandbox.call('wasi:cli/run#run', [], { fuel: 1 }))
  await sandbox.call('wasi:cli/run#run')
  t.is(sandbox.metrics().restarts, 1)
  t.false(existsSync(path.join(outside, 'after.txt')), 'the restart followed the swapped-in symlink')
  t.is(readFileSync(path.join(dir, 'scratch-moved', 'after.txt'), 'utf8'), 'x')
})

test('a sandbox with granted directories that is garbage-collected undisposed closes them quietly', (t) => {
  // In a child process, whose warnings can be read: Node closes a FileHandle it collects with a
  // warning and a deprecation warning (DEP0137), in the host's output.
  const dir = wasiToolDir(
    ['filesystem.read = ["./data/**"]', 'filesystem.write = ["./scratch"]'],
    ['scratch', 'data'],
  )
  const script = `
    const { loadComponent } = await import(${JSON.stringify(path.join(root, 'lib/index.ts'))})
    for (let i = 0; i < 3; i++) await loadComponent(${JSON.stringify(dir)})
    for (let i = 0; i < 5; i++) {
      globalThis.gc()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    console.log('done')`
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 60_000 },
  )
  t.is(child.stdout, 'done\n', child.stderr)
  t.notRegex(child.stderr, /Closing file descriptor|DEP0137/)
})

test('a guest with a write grant cannot write outside it, nor in a read-only grant', async (t) => {
  const outside = mkdtempSync(path.join(scratch, 'outside-'))
  const dir = wasiToolDir(
    ['filesystem.read = ["./data/**"]', 'filesystem.write = ["./scratch"]'],
    ['scratch', 'data', 'out'],
  )
  // Created after validation: a symlink inside the grant that leads out of it.
  symlinkSync(outside, path.join(dir, 'scratch', 'link'))
  const attempts: [string, string][] = [
    ['/data/new.txt', path.join(dir, 'data', 'new.txt')],
    ['/scratch/../escape.txt', path.join(dir, 'escape.txt')],
    ['/out/new.txt', path.join(dir, 'out', 'new.txt')],
    ['/scratch/link/new.txt', path.join(outside, 'new.txt')],
    ['/new.txt', path.join(dir, 'new.txt')],
  ]
  for (const [guest, host] of attempts) {
    const result = await runTool(dir, ['write', guest])
    // Rust's std on wasip2 reports any non-zero exit as 1.
    t.is(result.exitCode, 1, guest)
    t.regex(result.stderr, new RegExp(`^cannot write ${guest.replaceAll('.', '\\.')}: `), guest)
    t.false(existsSync(host), `${guest} did not land at ${host}`)
  }
  // The control: the same command inside the grant works, so the refusals above are the sandbox's.
  t.is((await runTool(dir, ['write', '/scratch/ok.txt'])).exitCode, 0)
  t.true(existsSync(path.join(dir, 'scratch', 'ok.txt')))
})

test('a Component.toml may name a preview 1 core module: its grants are its preopens there too', async (t) => {
  // Go, TinyGo and wasi-sdk build preview 1 modules only.
  const dir = wasiToolDir(
    ['filesystem.read = ["./data/**"]', 'filesystem.write = ["./scratch"]'],
    ['scratch', 'data'],
    wasiModuleWasm,
  )
  writeFileSync(path.join(dir, 'data', 'hello.txt'), 'read by a module')
  t.deepEqual(await runTool(dir, ['cat', '/data/hello.txt']), {
    exitCode: 0,
    stdout: 'read by a module',
    stderr: '',
  })
  t.is((await runTool(dir, ['write', '/scratch/new.txt'])).exitCode, 0)
  t.is(readFileSync(path.join(dir, 'scratch', 'new.txt'), 'utf8'), 'x')
  const denied = await runTool(dir, ['write', '/data/new.txt'])
  t.is(denied.exitCode, 3, 'preview 1 keeps the exit code')
  t.regex(denied.stderr, /^cannot write \/data\/new\.txt: /)
  t.false(existsSync(path.join(dir, 'data', 'new.txt')))
  using sandbox = await loadComponent(dir, { engine: wasiEngine, wasi: { args: ['wasi-tool', 'exit', '9'] } })
  t.true(sandbox.component instanceof Module)
  t.is(sandbox.metrics().memory.limitBytes, 4 * MiB)
  await t.throwsAsync(sandbox.call('_start'), { instanceOf: WasiExitError })
})

test('a sandbox of a core module replaces its instance after a failure, and after _start, which wasi-libc runs once', async (t) => {
  // wasmtime lets a core instance run on after a trap, but a second _start traps in wasi-libc,
  // and what a guest left in memory when it failed is not to be trusted.
  const dir = wasiToolDir([], [], wasiModuleWasm)
  using sandbox = await loadComponent(dir, {
    engine: wasiEngine,
    limits: { timeoutMs: 300 },
    wasi: { args: ['wasi-tool', 'echo', 'again'] },
  })
  for (let run = 0; run < 3; run++) {
    await sandbox.call('_start')
    t.is(sandbox.takeOutput().stdout, 'args: again\nenv count: 0\n', `run ${run}`)
  }
  t.is(sandbox.callSync('_start'), undefined, 'callSync too')
  t.is(sandbox.metrics().restarts, 0, 'a command that ran to its end is no restart')
  using sleeper = await loadComponent(dir, {
    engine: wasiEngine,
    limits: { timeoutMs: 100 },
    wasi: { args: ['wasi-tool', 'sleep', '5000'] },
  })
  await t.throwsAsync(sleeper.call('_start'), { instanceOf: TimeoutError })
  t.is(sleeper.metrics().restarts, 1)
  t.throws(
    () => sleeper.callSync('_start'),
    { instanceOf: TimeoutError },
    'a fresh instance, which sleeps again',
  )
  t.is(sleeper.metrics().restarts, 2)
})

test("a core module's sandbox keeps its instance when an abort came before the guest ran", async (t) => {
  // Any AbortError retired a core instance, though one that lands before the pool thread enters
  // the guest leaves it untouched: the guest's state was lost (probe R, with components).
  const dir = watComponentDir(
    scratch,
    `(module
      (global $n (mut i32) (i32.const 0))
      (func (export "bump") (result i32)
        global.get $n i32.const 1 i32.add global.set $n global.get $n))`,
    { name: 'counter', maxBytes: 1 << 20, maxFuel: 1_000_000, timeoutMs: 60_000 },
  )
  using sandbox = await loadComponent(dir, { engine: wasiEngine })
  let aborted = 0
  for (let i = 0; i < 300; i++) {
    const controller = new AbortController()
    const first = sandbox.call('bump')
    const second = sandbox.call('bump', [], { signal: controller.signal })
    // As the first settles, the second starts: the abort lands now and then before its guest does.
    void first.then(() => controller.abort())
    t.is(typeof (await first), 'number')
    const outcome = await second.then(
      (value) => value,
      (error: unknown) => error,
    )
    if (outcome instanceof AbortError) aborted++
    else t.is(typeof outcome, 'number')
  }
  // A restart only where an abort stopped the guest itself, which counts as a trap.
  const { restarts, traps } = sandbox.metrics()
  t.log({ aborted, restarts, traps })
  t.is(restarts, traps)
})

test("a spent instance is replaced at the next call, under that call's deadline and signal, not the failed call's", async (t) => {
  // The replacement runs the guest's start code. Made while the failed call settled, it ran under
  // the manifest's timeout whatever the caller asked: a start that waits held every call, abort
  // and deadline for the manifest's whole timeout (and callSync held the event loop).
  const dir = watComponentDir(
    scratch,
    `(module
      (import "env" "wait" (func $wait))
      (func $start (call $wait))
      (start $start)
      (func (export "boom") unreachable)
      (func (export "ok") (result i32) i32.const 1))`,
    { name: 'spent', maxBytes: 1 << 20, maxFuel: 1_000_000, timeoutMs: 60_000 },
  )
  let starts = 0
  let waiting = (): void => undefined
  // The first start returns at once; every later one waits for ever.
  const wait = () => {
    if (++starts === 1) return undefined
    waiting()
    return new Promise<void>(() => {})
  }
  using sandbox = await loadComponent(dir, { engine: wasiEngine, hostFunctions: { env: { wait } } })
  await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
  t.is(starts, 1, 'the failed call settled without starting a replacement')
  const late = await t.throwsAsync(sandbox.call('ok', [], { timeoutMs: 100 }), { instanceOf: TimeoutError })
  t.is(late?.timeoutMs, 100, "the replacement's start ran under the call's own deadline")
  const controller = new AbortController()
  // Aborted once the replacement's start runs: an abort that came first would refuse the call.
  waiting = () => setTimeout(() => controller.abort(), 10)
  const aborted = sandbox.call('ok', [], { signal: controller.signal })
  await t.throwsAsync(aborted, { instanceOf: AbortError })
  t.is(starts, 3)
  // Starts that failed count as calls, and as traps when they stopped a running guest: the
  // timed-out one, and the aborted one, as an abort once the guest runs is (probe Z9).
  t.like(sandbox.metrics(), { calls: 3, traps: 3, restarts: 1 })
  // An abort that came before the replacement's start is neither.
  await t.throwsAsync(sandbox.call('ok', [], { signal: AbortSignal.abort() }), { instanceOf: AbortError })
  t.like(sandbox.metrics(), { calls: 3, traps: 3, restarts: 1 })
})

test("a replacement's failed start keeps what it printed and its memory figures in the sandbox's", async (t) => {
  // They went with its store: the sandbox's deniedGrowths, peakBytes and takeOutput() missed them
  // (probe Z14, H22).
  const dir = watComponentDir(
    scratch,
    writingStartWat({
      text: 'starting\n',
      imports: '(import "env" "fails" (func $fails (result i32)))',
      then: `(drop (memory.grow (i32.const 1000)))
        (if (call $fails) (then (drop (memory.grow (i32.const 3))) unreachable))`,
      exports: '(func (export "boom") unreachable) (func (export "ok") (result i32) i32.const 1)',
    }),
    { name: 'failed-start', maxBytes: 1 << 20, maxFuel: 1_000_000 },
  )
  let starts = 0
  using sandbox = await loadComponent(dir, {
    engine: wasiEngine,
    hostFunctions: { env: { fails: () => (++starts > 1 ? 1 : 0) } },
  })
  await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
  const failed = await t.throwsAsync(sandbox.call('ok'), { instanceOf: UnreachableError })
  t.like(failed?.failedStart, { stdout: '', stderr: 'starting\n', peakBytes: 4 * 65536, deniedGrowths: 1 })
  t.like(sandbox.metrics(), { memory: { peakBytes: 4 * 65536, deniedGrowths: 2 }, calls: 2, traps: 2 })
  t.deepEqual(sandbox.takeOutput(), { stdout: '', stderr: 'starting\nstarting\n' })
})

test("a replacement's start that fails in a host function counts the fuel it burnt", async (t) => {
  // A HostError carries no fuel figure, so such a start added none (probe H26); a call failing so
  // counts its own.
  const dir = watComponentDir(
    scratch,
    `(module
      (import "env" "check" (func $check))
      (func $start (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
        (call $check))
      (start $start)
      (func (export "boom") unreachable)
      (func (export "ok") (result i32) i32.const 1))`,
    { name: 'start-host-fails', maxBytes: 1 << 20, maxFuel: 1_000_000 },
  )
  let starts = 0
  const check = () => {
    if (++starts > 1) throw new Error('no second start')
  }
  using sandbox = await loadComponent(dir, { engine: wasiEngine, hostFunctions: { env: { check } } })
  const first = sandbox.metrics().fuel.totalConsumed
  t.true(first > 500, String(first))
  await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
  const before = sandbox.metrics().fuel.totalConsumed
  const failed = await t.throwsAsync(sandbox.call('ok'), { instanceOf: HostError })
  t.is(failed?.failedStart?.fuelConsumed, first)
  t.like(sandbox.metrics(), {
    fuel: { totalConsumed: before + first, lastCallConsumed: first },
    calls: 2,
    traps: 2,
  })
})

test("loadComponent's signal stops the first instance's start code", async (t) => {
  // Loading took no signal: start code that spun held loadComponent (and the CLI's Ctrl-C, probe
  // H21) until the manifest's deadline.
  const dir = watComponentDir(
    scratch,
    `(module (func $spin (loop $l (br $l))) (start $spin) (func (export "ok") (result i32) i32.const 1))`,
    { name: 'spins', maxBytes: 1 << 20, maxFuel: 100_000_000, timeoutMs: 60_000 },
  )
  const controller = new AbortController()
  const loading = loadComponent(dir, { engine: wasiEngine, signal: controller.signal })
  // Well before its fuel runs out; an abort before the start code ran is an AbortError too.
  setTimeout(() => controller.abort(), 20)
  await t.throwsAsync(loading, { instanceOf: AbortError })
  await t.throwsAsync(loadComponent(dir, { engine: wasiEngine, signal: 'soon' as never }), {
    instanceOf: ConfigError,
    message: /^signal: expected an AbortSignal/,
  })
})

test("a replacement's start is part of the fuel of the call that made it", async (t) => {
  // lastCallConsumed gave the export's alone, though totalConsumed had both (probe Z14).
  const dir = watComponentDir(
    scratch,
    `(module
      (func $start (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (i32.const 1000)))))
      (start $start)
      (func (export "boom") unreachable)
      (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))`,
    { name: 'start-fuel', maxBytes: 1 << 20, maxFuel: 1_000_000, timeoutMs: 60_000 },
  )
  using sandbox = await loadComponent(dir, { engine: wasiEngine })
  const start = sandbox.metrics().fuel.totalConsumed
  t.true(start > 7_000, `start: ${start}`)
  t.is(await sandbox.call('add', [1, 2]), 3)
  const add = sandbox.metrics().fuel.lastCallConsumed
  t.is(add, 4, 'the first instance started at load: not part of a call')
  for (const sync of [false, true]) {
    await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
    t.is(sync ? sandbox.callSync('add', [1, 2]) : await sandbox.call('add', [1, 2]), 3)
    t.is(sandbox.metrics().fuel.lastCallConsumed, start + add, sync ? 'callSync' : 'call')
    t.is(await sandbox.call('add', [1, 2]), 3)
    t.is(sandbox.metrics().fuel.lastCallConsumed, add, 'the next call is its own')
  }
  t.like(sandbox.metrics(), { restarts: 2 })
})

/** A core module sandbox whose start code calls `env.back` from its second start on. */
async function backAtRestart(back: () => unknown): Promise<Sandbox> {
  const dir = watComponentDir(
    scratch,
    `(module
      (import "env" "back" (func $back))
      (func $start (call $back))
      (start $start)
      (func (export "boom") unreachable)
      (func (export "plain") (result i32) i32.const 1))`,
    { name: 'back', maxBytes: 1 << 20, maxFuel: 1_000_000, timeoutMs: 2_000 },
  )
  let starts = 0
  return loadComponent(dir, {
    engine: wasiEngine,
    hostFunctions: { env: { back: () => (++starts === 1 ? undefined : back()) } },
  })
}

test("a replacement's start code that calls its own sandbox gets BusyError at once, on call() and callSync", async (t) => {
  // The re-entry check asked the sandbox's instance, which a replacement does not have yet while
  // its start code runs: call() waited for itself until the deadline, and callSync ran on a third
  // instance whose state and counters were lost (probe H17).
  const seen: unknown[] = []
  let sandbox!: Sandbox
  sandbox = await backAtRestart(async () => {
    await sandbox.call('plain').catch((error: unknown) => seen.push(error))
  })
  await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
  t.is(await sandbox.call('plain'), 1)
  t.true(seen[0] instanceof BusyError, String(seen[0]))
  sandbox.dispose()

  const sync: unknown[] = []
  let other!: Sandbox
  other = await backAtRestart(() => {
    for (const attempt of [() => other.callSync('plain'), () => other.call('plain')]) {
      try {
        const made = attempt()
        if (made instanceof Promise) made.catch((error: unknown) => sync.push(error))
      } catch (error) {
        sync.push(error)
      }
    }
  })
  t.throws(() => other.callSync('boom'), { instanceOf: UnreachableError })
  t.is(other.callSync('plain'), 1)
  await new Promise((resolve) => setImmediate(resolve))
  t.is(sync.length, 2)
  for (const error of sync) t.true(error instanceof BusyError, String(error))
  t.like(other.metrics(), { calls: 2, traps: 1, restarts: 1 })
  other.dispose()
})

/** A sandbox of the types fixture whose `call-double` waits in its host function until `release()`. */
async function heldSandbox(): Promise<{ sandbox: Sandbox; release: () => void }> {
  let release = () => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  const imports = typesImports()
  imports.double = async (x: number) => {
    await held
    return x * 2
  }
  const dir = componentDir(scratch, typesWasm, { maxBytes: 4 * MiB, timeoutMs: 5_000 })
  return { sandbox: await loadComponent(dir, { hostFunctions: imports }), release }
}

test('call() on a disposed sandbox or instance rejects at once, not when the running call ends', async (t) => {
  // It waited in the queue behind the running call, and only then said DisposedError (probe H17).
  const { sandbox, release } = await heldSandbox()
  const running = sandbox.call('call-double', [2])
  await new Promise((resolve) => setTimeout(resolve, 50))
  sandbox.dispose()
  let settled = false
  const later = sandbox.call('get-counter').finally(() => (settled = true))
  await new Promise((resolve) => setImmediate(resolve))
  t.true(settled, 'rejected before the running call ended')
  await t.throwsAsync(later, { instanceOf: DisposedError })
  release()
  t.is(await running, 4)
})

test('calls queued when a sandbox or an instance is disposed reject at once, not when the running call ends', async (t) => {
  // They waited for the running call (up to its deadline) before saying DisposedError (probe H18).
  const { sandbox, release } = await heldSandbox()
  const running = sandbox.call('call-double', [2])
  const queued = [sandbox.call('get-counter'), sandbox.call('get-counter', [], { fuel: 1000 })]
  let settled = 0
  for (const call of queued) void call.catch(() => {}).finally(() => settled++)
  await new Promise((resolve) => setTimeout(resolve, 50))
  sandbox.dispose()
  await new Promise((resolve) => setImmediate(resolve))
  t.is(settled, 2, 'both rejected before the running call ended')
  for (const call of queued) await t.throwsAsync(call, { instanceOf: DisposedError })
  release()
  t.is(await running, 4)
})

test("a replacement's start that fails in a host function or by exit() counts a trap, as such a call does", async (t) => {
  // Only failures carrying a trap code counted: a start whose host function threw, or that called
  // exit(), was a call without a trap, though the guest ran (probe H18).
  for (const how of ['throws', 'exits', 'exits-0'] as const) {
    const dir = watComponentDir(
      scratch,
      `(module
        (import "env" "again" (func $again (result i32)))
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (func $start (if (call $again) (then (call $exit (i32.const ${how === 'exits-0' ? 0 : 3})))))
        (start $start)
        (func (export "boom") unreachable)
        (func (export "ok") (result i32) i32.const 1))`,
      { name: `start-${how}`, maxBytes: 1 << 20, maxFuel: 1_000_000, timeoutMs: 5_000 },
    )
    let starts = 0
    const again = () => {
      if (++starts === 1) return 0
      if (how === 'throws') throw new Error('no')
      return 1
    }
    using sandbox = await loadComponent(dir, { engine: wasiEngine, hostFunctions: { env: { again } } })
    await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
    const failed = await sandbox.call('ok').catch((error: unknown) => error)
    t.true(how === 'throws' ? failed instanceof HostError : failed instanceof WasiExitError, String(failed))
    // exit(0) is a command's success, no trap, as in a call (probe H19); the start still failed.
    t.like(sandbox.metrics(), { calls: 2, traps: how === 'exits-0' ? 1 : 2, restarts: 1 }, how)
  }
})

test("a replacement's start that runs out of fuel is the last call's fuel in the metrics", async (t) => {
  // Its fuel counted in the total, but lastCallConsumed still named the call before (probe Z9).
  const dir = watComponentDir(
    scratch,
    `(module
      (import "env" "again" (func $again (result i32)))
      (func $start (if (call $again) (then (loop $l (br $l)))))
      (start $start)
      (func (export "boom") unreachable)
      (func (export "ok") (result i32) i32.const 1))`,
    { name: 'start-fuel', maxBytes: 1 << 20, maxFuel: 100_000_000, timeoutMs: 60_000 },
  )
  let starts = 0
  using sandbox = await loadComponent(dir, {
    engine: wasiEngine,
    hostFunctions: { env: { again: () => (++starts === 1 ? 0 : 1) } },
  })
  t.is(await sandbox.call('ok'), 1)
  const small = sandbox.metrics().fuel.lastCallConsumed
  t.true(small < 1000, String(small))
  await t.throwsAsync(sandbox.call('boom'), { instanceOf: UnreachableError })
  await t.throwsAsync(sandbox.call('ok', [], { fuel: 5000 }), { instanceOf: OutOfFuelError })
  const { fuel, calls, traps } = sandbox.metrics()
  t.is(fuel.lastCallConsumed, 5000)
  // A start a deadline stopped inside wasm is 0, as a call's is (FuelMetrics), not the one before;
  // one it stopped in the host function (on a loaded machine) is what the error says was burnt.
  // (The loop burns the manifest's 10^8 units in about 50 ms here: a 5 ms deadline comes first.)
  const late = await t.throwsAsync(sandbox.call('ok', [], { timeoutMs: 5 }), { instanceOf: TimeoutError })
  t.is(sandbox.metrics().fuel.lastCallConsumed, late?.fuelConsumed ?? 0)
  t.true(fuel.totalConsumed >= 5000 + small, String(fuel.totalConsumed))
  t.like({ calls, traps }, { calls: 3, traps: 2 })
  t.like(sandbox.metrics(), { calls: 4, traps: 3 })
})

test("the fuel a start burns counts in the metrics, and a start's earlier denied growth does not name its trap", (t) => {
  // The start loops 1,000 times, and with `grow` set asks for more memory than its limit
  // (memory.grow gives -1, no trap) and then traps with unreachable.
  const engine = new Engine({ fuel: true })
  t.teardown(() => engine.close())
  const module = engine.compileModuleSync(`(module
    (import "env" "grow" (func $grow (result i32)))
    (memory 1)
    (func $start (local $i i32)
      (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
      (if (call $grow) (then (drop (memory.grow (i32.const 100))) unreachable)))
    (start $start)
    (func (export "ok") (result i32) i32.const 1))`)
  const quiet = module.instantiateSync({
    limits: { memoryBytes: 1 << 20 },
    fuel: 1_000_000,
    imports: { env: { grow: () => 0 } },
  })
  t.true(
    quiet.metrics().fuel.totalConsumed > 1000,
    `start fuel counted: ${quiet.metrics().fuel.totalConsumed}`,
  )
  t.is(quiet.metrics().calls, 0, 'instantiation is no call')
  t.throws(
    () =>
      module.instantiateSync({
        limits: { memoryBytes: 1 << 20 },
        fuel: 1_000_000,
        imports: { env: { grow: () => 1 } },
      }),
    { instanceOf: UnreachableError },
  )
})

test('a write grant and a read grant of the same directory make one writable preopen', async (t) => {
  const dir = wasiToolDir(['filesystem.read = ["./data/**"]', 'filesystem.write = ["./data"]'], ['data'])
  writeFileSync(path.join(dir, 'data', 'in.txt'), 'granted')
  t.is((await runTool(dir, ['cat', '/data/in.txt'])).stdout, 'granted')
  t.is((await runTool(dir, ['write', '/data/out.txt'])).exitCode, 0)
  t.true(existsSync(path.join(dir, 'data', 'out.txt')))
})

test('a read grant of "**" and of "./**" both preopen the manifest directory read-only at /', async (t) => {
  // "./**" preopened it, "**" (the same set of files) preopened nothing.
  for (const glob of ['**', './**']) {
    const dir = wasiToolDir([`filesystem.read = ["${glob}"]`], ['data'])
    writeFileSync(path.join(dir, 'data', 'in.txt'), 'granted')
    t.is((await runTool(dir, ['cat', '/data/in.txt'])).stdout, 'granted', glob)
    t.is((await runTool(dir, ['write', '/data/out.txt'])).exitCode, 1, glob)
    t.false(existsSync(path.join(dir, 'data', 'out.txt')), glob)
  }
})
