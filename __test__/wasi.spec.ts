import { execFileSync, spawn } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
  mkdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test, { type ExecutionContext } from 'ava'

import {
  ConfigError,
  Engine,
  GuestAbiError,
  HostLimitError,
  LinkError,
  TimeoutError,
  UnreachableError,
  WasiExitError,
  type Instance,
  type WasmError,
  type WasiOptions,
} from '../lib/index.js'
import {
  BUMP_MEMORY_WAT,
  MiB,
  tempDir,
  wasiComponentWasm,
  wasiModuleWasm,
  writingStartWat,
} from './helpers.js'
import { wasiHttpWasm } from '../fixtures/index.js'

const componentWasm = wasiComponentWasm
const moduleWasm = wasiModuleWasm
const RUN = 'wasi:cli/run@0.2.6#run'

const engine = new Engine()
const component = engine.compileComponentSync(componentWasm)
const module = engine.compileModuleSync(moduleWasm)

type Kind = 'component' | 'module'

/** Runs the command once with `args` (after argv[0]) and returns the instance for its output. */
async function run(kind: Kind, args: string[], wasi: WasiOptions = {}): Promise<Instance> {
  const options = {
    limits: { memoryBytes: 16 * MiB },
    timeoutMs: 10_000,
    wasi: { stdout: 'pipe', stderr: 'pipe', ...wasi, args: ['wasi-cli', ...args] } as WasiOptions,
  }
  const instance =
    kind === 'component' ? await component.instantiate(options) : await module.instantiate(options)
  await instance.call(kind === 'component' ? runExport() : '_start')
  return instance
}

function runExport(): string {
  const exported = component.exports.find((item) => item.name.startsWith('wasi:cli/run@'))
  return exported ? `${exported.name}#run` : RUN
}

for (const kind of ['component', 'module'] as const) {
  test(`a WASI ${kind} gets args and env and its piped stdout and stderr`, async (t) => {
    const instance = await run(kind, ['echo', 'hello', 'wörld'], { env: { MESSAGE: 'hi 🚀' } })
    const output = instance.takeOutput()
    t.is(output.stdout, 'args: hello wörld\nenv count: 1\n')
    t.is(output.stderr, 'env MESSAGE=hi 🚀\n')
    t.deepEqual(instance.takeOutput(), { stdout: '', stderr: '' }, 'a take returns only what is new')
  })

  test(`a WASI ${kind} is locked down by default: no env, no files`, async (t) => {
    const instance = await run(kind, ['echo'])
    t.regex(instance.takeOutput().stderr, /MESSAGE=<unset>/)
    const cat = await t.throwsAsync(run(kind, ['cat', '/etc/hostname']), { instanceOf: WasiExitError })
    t.not(cat?.exitCode, 0)
  })

  test(`a WASI ${kind} reads only through read-only preopens`, async (t) => {
    // base/secret.txt sits beside the preopened base/data: a real file for every escape to reach.
    const base = tempDir(t, 'wasi')
    const dir = path.join(base, 'data')
    mkdirSync(dir)
    writeFileSync(path.join(base, 'secret.txt'), 'SECRET beside the preopen')
    writeFileSync(path.join(dir, 'data.txt'), 'granted content')
    mkdirSync(path.join(dir, 'sub'))
    symlinkSync(base, path.join(dir, 'sub', 'escape'))
    symlinkSync(path.join(base, 'secret.txt'), path.join(dir, 'secret-link.txt'))
    const preopens = { '/data': dir }
    const read = await run(kind, ['cat', '/data/data.txt'], { preopens })
    t.is(read.takeOutput().stdout, 'granted content')
    // The control: granted, the guest does read the secret, so the refusals below are the sandbox's.
    const granted = await run(kind, ['cat', '/base/secret.txt'], { preopens: { ...preopens, '/base': base } })
    t.is(granted.takeOutput().stdout, 'SECRET beside the preopen')
    for (const escape of ['/data/../secret.txt', '/data/sub/escape/secret.txt', '/data/secret-link.txt']) {
      const error = await t.throwsAsync(run(kind, ['cat', escape], { preopens }), {
        instanceOf: WasiExitError,
      })
      t.is(error?.exitCode, kind === 'module' ? 2 : 1, escape)
    }
    const write = await t.throwsAsync(run(kind, ['write', '/data/new.txt'], { preopens }), {
      instanceOf: WasiExitError,
    })
    t.is(write?.exitCode, kind === 'module' ? 3 : 1)
    t.false(existsSync(path.join(dir, 'new.txt')))
  })

  test(`exit(n) from a WASI ${kind} is a WasiExitError; exit(0) is success`, async (t) => {
    const error = await t.throwsAsync(run(kind, ['exit', '3']), { instanceOf: WasiExitError })
    t.is(error?.code, 'ERR_WASM_EXIT')
    // Rust's std on wasip2 reports any non-zero status as 1 (wasi:cli/exit takes a result).
    t.is(error?.exitCode, kind === 'module' ? 3 : 1)
    const exited = await run(kind, ['exit', '0'])
    t.like(exited.metrics(), { calls: 1, traps: 0 }, 'exit(0) is not counted as a trap')
  })

  test(`piped output of a WASI ${kind} is capped, keeping the newest bytes`, async (t) => {
    const instance = await run(kind, ['spam', String(64 * 1024)], { outputLimitBytes: 1000 })
    const { stdout } = instance.takeOutput()
    t.is(stdout.length, 1000)
    t.true(stdout.endsWith('END'))
  })

  test(`outputOverflow 'wait': a WASI ${kind}'s writes wait for takeOutput, nothing dropped`, async (t) => {
    // For a host printing output as it comes (the CLI, probe Z51): a full pipe holds the guest
    // back, as an OS pipe does, where 'drop' loses the oldest bytes.
    const bytes = 4 * MiB
    const start = async (timeoutMs: number) => {
      const options = {
        limits: { memoryBytes: 16 * MiB },
        timeoutMs,
        wasi: {
          stdout: 'pipe',
          outputLimitBytes: 64 * 1024,
          outputOverflow: 'wait',
          args: ['wasi-cli', 'spam', String(bytes)],
        } as WasiOptions,
      }
      return kind === 'component' ? await component.instantiate(options) : await module.instantiate(options)
    }
    const instance = await start(30_000)
    let taken = ''
    const taker = setInterval(() => (taken += instance.takeOutput().stdout), 1)
    await instance.call(kind === 'component' ? runExport() : '_start').finally(() => clearInterval(taker))
    taken += instance.takeOutput().stdout
    t.is(taken.length, bytes + 'END'.length)
    t.true(taken.endsWith('END'))
    // Nobody takes: the guest waits, and its deadline ends the call.
    const unread = await start(2_000)
    await t.throwsAsync(unread.call(kind === 'component' ? runExport() : '_start'), {
      code: 'ERR_WASM_TIMEOUT',
    })
    t.is(unread.takeOutput().stdout.length, 64 * 1024, 'what it wrote before it waited is kept')
    t.throws(
      () =>
        engine
          .compileModuleSync('(module)')
          .instantiateSync({ limits: { memoryBytes: MiB }, wasi: { outputOverflow: 'drop old' } as never }),
      {
        instanceOf: ConfigError,
        message: /wasi\.outputOverflow: expected 'drop' or 'wait', got string "drop old"/,
      },
    )
  })

  test(`a WASI ${kind} has clocks but no network`, async (t) => {
    const clocks = await run(kind, ['time'])
    t.is(clocks.takeOutput().stdout, 'wall clock after 2020: true\nmonotonic clock works: true\n')
    // A real listener on loopback: the guest is refused by the host, not by an empty port.
    let accepted = 0
    const server = net.createServer((socket) => {
      accepted += 1
      socket.destroy()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => server.close())
    const { port } = server.address() as net.AddressInfo
    const network = await run(kind, ['connect', `127.0.0.1:${port}`])
    // wasi:sockets denies the address (os error 2: ERRNO_ACCES); preview 1 has no sockets at all.
    const refusal =
      kind === 'component' ? 'Permission denied (os error 2)' : 'operation not supported on this platform'
    t.is(network.takeOutput().stdout, `connect failed: ${refusal}\n`)
    t.is(accepted, 0)
  })
}

test('a character a guest left unfinished is taken once it stops running, and waits while it runs', async (t) => {
  // Three bytes, "A" and half of U+1F600, then the guest ended: every take gave "A" only, and the
  // half character stayed in the pipe for ever (probe H54).
  const source = `(module
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (import "env" "between" (func $between))
    (memory (export "memory") 1)
    (data (i32.const 100) "A\\f0\\9f\\98\\80")
    (func $out (param $at i32) (param $length i32)
      (i32.store (i32.const 0) (local.get $at))
      (i32.store (i32.const 4) (local.get $length))
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
    (func (export "split") (call $out (i32.const 100) (i32.const 3)) (call $between) (call $out (i32.const 103) (i32.const 2)))
    (func (export "unfinished") (call $out (i32.const 100) (i32.const 3))))`
  const guest = engine.compileModuleSync(source)
  for (const outputOverflow of ['drop', 'wait'] as const) {
    const taken: string[] = []
    const instance = guest.instantiateSync({
      limits: { memoryBytes: MiB },
      wasi: { stdout: 'pipe', outputOverflow },
      imports: { env: { between: () => void taken.push(instance.takeOutput().stdout) } },
    })
    instance.callSync('split')
    taken.push(instance.takeOutput().stdout)
    t.deepEqual(taken, ['A', '\u{1F600}'], `${outputOverflow}: the rest of a character being written waits`)
    await instance.call('unfinished')
    t.is(
      instance.takeOutput().stdout,
      'A\uFFFD',
      `${outputOverflow}: a call that ended leaves nothing behind`,
    )
    instance.callSync('unfinished')
    t.is(instance.takeOutput().stdout, 'A\uFFFD')
    t.is(instance.takeOutput().stdout, '')
  }
})

test("a guest's write past what check-write allowed is its error, and a waiting pipe drops nothing", async (t) => {
  // Probe H56: under outputOverflow 'wait' a write of 4 MiB into a 1 MiB pipe, never asking
  // check-write, returned ok and kept the newest 1 MiB; 100 such streams lost 99 MiB, and the CLI
  // printed 16 of 32 MiB with exit 0. Inherited stdout refused the same write already.
  const guest = engine.compileComponentSync(wasiHttpWasm)
  for (const outputOverflow of ['wait', 'drop'] as const) {
    const instance = await guest.instantiate({
      limits: { memoryBytes: 16 * MiB },
      wasi: { stdout: 'pipe', outputOverflow, args: ['wasi-http', 'write-unpermitted', String(4 * MiB)] },
    })
    await t.throwsAsync(instance.call('wasi:cli/run#run', [], { timeoutMs: 10_000 }), {
      code: 'ERR_WASM_GUEST_ABI',
      message: /write not permitted/,
    })
    t.is(instance.takeOutput().stdout, '', `${outputOverflow}: nothing written, nothing dropped`)
  }
})

test('the permits of many streams of one waiting pipe share its room, and stay within its cap', async (t) => {
  // Probe H57: each stream's check-write was given the same room, 64 KiB at most, and all of it
  // was kept: 8,000 streams made a 1 MiB pipe hold 500 MiB (+504 to +760 MiB of host memory).
  const guest = engine.compileComponentSync(wasiHttpWasm)
  const instance = await guest.instantiate({
    limits: { memoryBytes: 16 * MiB },
    wasi: {
      stdout: 'pipe',
      outputLimitBytes: MiB,
      outputOverflow: 'wait',
      args: ['wasi-http', 'permits', '100'],
    },
  })
  await instance.call('wasi:cli/run#run', [], { timeoutMs: 10_000 })
  t.is(
    instance.takeOutput().stdout,
    'p'.repeat(MiB),
    'the cap, whole: 16 streams of 64 KiB, the rest given nothing',
  )
})

test('a JS function may replace one WASI function, and only where it is given', async (t) => {
  let calls = 0
  const randomGet = (_buffer: number, _length: number) => {
    calls += 1
    return 0
  }
  const options = {
    limits: { memoryBytes: 16 * MiB },
    wasi: { stdout: 'pipe' as const, args: ['wasi-cli', 'time'] },
  }
  const plain = await module.instantiate(options)
  await plain.call('_start')
  t.is(calls, 0)
  const replaced = await module.instantiate({
    ...options,
    imports: { wasi_snapshot_preview1: { random_get: randomGet } },
  })
  await replaced.call('_start')
  t.true(calls > 0, 'the JS random_get was called')
  t.regex(replaced.takeOutput().stdout, /monotonic clock works: true/)
  const before = calls
  const again = await module.instantiate(options)
  await again.call('_start')
  t.is(calls, before, 'an instance linked without the JS function does not call it')
  t.regex(again.takeOutput().stdout, /wall clock after 2020: true/)
})

test("a module's proc_exit(n) is a WasiExitError with exitCode n for every n, also from its start function", async (t) => {
  const exiting = (start: boolean) =>
    engine.compileModuleSync(`(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "exit") (param i32) local.get 0 call $exit)
      ${start ? '(func $start i32.const 5 call $exit) (start $start)' : ''})`)
  const instance = exiting(false).instantiateSync({ limits: { memoryBytes: MiB } })
  for (const status of [1, 125, 126, 255, 300, -1]) {
    const sync = t.throws(() => instance.callSync('exit', [status]), { instanceOf: WasiExitError })
    t.is(sync?.exitCode, status)
    const async = await t.throwsAsync(instance.call('exit', [status]), { instanceOf: WasiExitError })
    t.is(async?.exitCode, status)
  }
  const options = { limits: { memoryBytes: MiB } }
  const sync = t.throws(() => exiting(true).instantiateSync(options), { instanceOf: WasiExitError })
  t.is(sync?.exitCode, 5)
  const async = await t.throwsAsync(exiting(true).instantiate(options), { instanceOf: WasiExitError })
  t.is(async?.exitCode, 5)
})

test('exit(0) ends a call that declares no value as a success, and one that declares a value as a WasiExitError with exitCode 0', async (t) => {
  // Probe Z61: a `func(u32) -> u32` whose guest called exit(0) returned undefined, which its type
  // and its generated declaration say it cannot.
  const component = engine.compileComponentSync(`(component
    (import "wasi:cli/exit@0.2.0" (instance $e (export "exit" (func (param "status" (result))))))
    (alias export $e "exit" (func $exit))
    (core func $exit (canon lower (func $exit)))
    (core module $m (import "x" "exit" (func $exit (param i32)))
      (func (export "f") (param i32) (result i32) local.get 0 call $exit i32.const 42)
      (func (export "g") (param i32) local.get 0 call $exit)
      (func (export "h") (param i32) (result i32) local.get 0 call $exit i32.const 0))
    (core instance $i (instantiate $m (with "x" (instance (export "exit" (func $exit))))))
    (func (export "f") (param "status" u32) (result u32) (canon lift (core func $i "f")))
    (func (export "g") (param "status" u32) (canon lift (core func $i "g")))
    (func (export "h") (param "status" u32) (result (result)) (canon lift (core func $i "h"))))`)
  const module = engine.compileModuleSync(`(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func (export "f") (param i32) (result i32) local.get 0 call $exit i32.const 42)
    (func (export "g") (param i32) local.get 0 call $exit))`)
  const ways: Array<[string, (instance: Instance, name: string) => unknown]> = [
    ['callSync', (instance, name) => instance.callSync(name, [0])],
    ['call', (instance, name) => instance.call(name, [0])],
    [
      'exports',
      (instance, name) => (instance.exports as Record<string, (status: number) => unknown>)[name]!(0),
    ],
    ['function', (instance, name) => instance.function(name)(0)],
  ]
  for (const [kind, compiled] of [
    ['component', component],
    ['module', module],
  ] as const) {
    for (const [how, call] of ways) {
      const fresh = () => compiled.instantiateSync({ limits: { memoryBytes: MiB } })
      // No value declared (a command's run, whose ok carries none): success.
      const succeeding = fresh()
      t.is(await call(succeeding, 'g'), undefined, `${kind} ${how} g`)
      t.like(succeeding.metrics(), { calls: 1, traps: 0 }, `${kind} ${how} g`)
      if (kind === 'component') t.is(await call(fresh(), 'h'), undefined, `${how} h`)
      const failing = fresh()
      const error = await (async () => call(failing, 'f'))().then(
        (value: unknown) => t.fail(`${kind} ${how} f returned ${String(value)}`),
        (thrown: unknown) => thrown,
      )
      t.true(error instanceof WasiExitError, `${kind} ${how} f: ${String(error)}`)
      t.like(error, { code: 'ERR_WASM_EXIT', exitCode: 0 })
      t.regex((error as Error).message, /exited with code 0 before returning/)
      // A failed call, counted as one, as exit(1) is; the call that exits 0 with no value is not.
      t.like(failing.metrics(), { calls: 1, traps: 1 }, `${kind} ${how} f`)
    }
  }
})

test('start code that fails leaves its piped output and memory figures on the error', async (t) => {
  // They went with the failed instance's store: a start that printed why it panicked (a C++ static
  // constructor, a Rust initializer) and trapped left nothing to read.
  const failing = engine.compileModuleSync(
    writingStartWat({
      text: 'panic in start\n',
      then: '(drop (memory.grow (i32.const 1000))) (drop (memory.grow (i32.const 1))) unreachable',
    }),
  )
  const options = { limits: { memoryBytes: MiB }, wasi: { stderr: 'pipe' as const } }
  const left = { stdout: '', stderr: 'panic in start\n', peakBytes: 2 * 65536, deniedGrowths: 1 }
  const sync = t.throws(() => failing.instantiateSync(options), { instanceOf: UnreachableError })
  t.deepEqual(sync?.failedStart, left)
  const async = await t.throwsAsync(failing.instantiate(options), { instanceOf: UnreachableError })
  t.deepEqual(async?.failedStart, left)
  // Not piped: the output went where it was sent, and only the figures are left.
  const inherited = await t.throwsAsync(failing.instantiate({ ...options, wasi: { stderr: 'ignore' } }), {
    instanceOf: UnreachableError,
  })
  t.deepEqual(inherited?.failedStart, { ...left, stderr: '' })
  // A component's start functions alike, and a failure before any start ran has none.
  const component = engine.compileComponentSync(`(component
    (core module $m
      (memory 1)
      (func $start (drop (memory.grow (i32.const 100))) unreachable)
      (start $start))
    (core instance (instantiate $m)))`)
  const started = await t.throwsAsync(component.instantiate({ limits: { memoryBytes: MiB } }), {
    instanceOf: UnreachableError,
  })
  t.deepEqual(started?.failedStart, { stdout: '', stderr: '', peakBytes: 65536, deniedGrowths: 1 })
  // A growth start code asked for under trapOnMemoryDenial is the guest's, worded as in a call,
  // not as memory the instance itself needs (probe H28).
  const grows = engine.compileModuleSync(
    '(module (memory 1) (func $s (drop (memory.grow (i32.const 100)))) (start $s))',
  )
  const denied = t.throws(() =>
    grows.instantiateSync({ limits: { memoryBytes: MiB, trapOnMemoryDenial: true } }),
  )
  t.is((denied as WasmError | undefined)?.code, 'ERR_WASM_MEMORY_LIMIT')
  t.regex((denied as WasmError | undefined)?.message ?? '', /^memory growth to \d+ bytes in total denied/)
  t.like((denied as WasmError | undefined)?.failedStart, { deniedGrowths: 1 })
  const unlinked = t.throws(() => module.instantiateSync({ limits: { memoryBytes: MiB }, wasi: false }))
  t.is((unlinked as WasmError | undefined)?.failedStart, undefined)
  // Nor an initial memory over the limit: no guest code ran.
  const tooLarge = t.throws(() => failing.instantiateSync({ ...options, limits: { memoryBytes: 1 } }))
  t.is((tooLarge as WasmError | undefined)?.code, 'ERR_WASM_MEMORY_LIMIT')
  t.is((tooLarge as WasmError | undefined)?.failedStart, undefined)
})

test('wasi: false leaves WASI unlinked, so its imports are a LinkError', async (t) => {
  const error = await t.throwsAsync(
    component.instantiate({ limits: { memoryBytes: 16 * MiB }, wasi: false }),
    {
      instanceOf: LinkError,
    },
  )
  t.true(error?.message.startsWith('missing import(s): '), error?.message)
  t.true(
    error?.message.includes('wasi:cli/exit@0.2.6 (an object with exit; WASI is not linked (wasi: false))'),
  )
  const core = t.throws(() => module.instantiateSync({ limits: { memoryBytes: 16 * MiB }, wasi: false }), {
    instanceOf: LinkError,
  })
  t.true(core?.message.startsWith('missing import(s): "wasi_snapshot_preview1.'), core?.message)
  t.true(core?.message.includes('"wasi_snapshot_preview1.fd_write": func(i32, i32, i32, i32) -> i32'))
})

/**
 * Runs `script` (ES module source importing the package as `ENTRY`) in a child Node whose stdout
 * and stderr go to `target`: sockets this process reads (as Node's `stdio: 'pipe'` makes them),
 * stdout through an OS pipe (`| cat`), or one file both share. `unread`: stdout is a socket this
 * process never reads.
 */
function inheritingChild(
  script: string,
  target: 'socket' | 'fifo' | 'file' | 'unread' | 'late',
): Promise<{ stdout: string; stderr: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-inherit-'))
  const file = path.join(dir, 'child.mjs')
  writeFileSync(
    file,
    script.replace('ENTRY', JSON.stringify(new URL('../lib/index.js', import.meta.url).href)),
  )
  const out = path.join(dir, 'out.txt')
  // 'late': a pipe read only from 300 ms after the child wrote the file READY names.
  const ready = path.join(dir, 'ready')
  const late = ` | (while [ ! -e "${ready}" ]; do sleep 0.05; done; sleep 0.3; cat)`
  const redirect = { socket: '', unread: '', fifo: ' | cat', file: ` > "${out}" 2>&1`, late }[target]
  const command = `READY="${ready}" "${process.execPath}" --import tsx "${file}"${redirect}`
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
    let stdout = ''
    let stderr = ''
    if (target !== 'unread') child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', () => {
      if (target === 'file') stdout = readFileSync(out, 'utf8')
      rmSync(dir, { recursive: true, force: true })
      resolve({ stdout, stderr })
    })
  })
}

test("inherited stdout and stderr reach the host's own, whole and in order with what the host writes", async (t) => {
  // Each guest write used to pass through a tokio task and a blocking thread (88 µs a write):
  // now the guest writes on its own thread. What it wrote is out when its call returns, before
  // the host's next line, through a pipe (the guest's 1 MB outruns the reader, so some of it
  // waits for room) and into a file.
  const script = `
    import { Engine } from ENTRY
    const engine = new Engine()
    const module = engine.compileModuleSync(\`(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "guest out\\\\nguest err\\\\n")
      (func (export "both")
        (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 10))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (i32.store (i32.const 0) (i32.const 26))
        (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))))\`)
    const inherit = { stdout: 'inherit', stderr: 'inherit' }
    const small = module.instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: inherit })
    for (let i = 0; i < 3; i++) {
      small.callSync('both')
      process.stdout.write('host out\\n')
      await small.call('both')
      process.stderr.write('host err\\n')
    }
    const component = engine.compileComponentSync(${JSON.stringify(componentWasm)})
    for (const compiled of [component, engine.compileModuleSync(${JSON.stringify(moduleWasm)})]) {
      const spam = compiled.instantiateSync({
        limits: { memoryBytes: 16 << 20 },
        wasi: { ...inherit, args: ['wasi-cli', 'spam', '1000000'] },
      })
      await spam.call(compiled === component ? '${runExport()}' : '_start', [], { timeoutMs: 60_000 })
      process.stdout.write('\\nhost after spam\\n')
    }
  `
  const rounds = ['guest out\n', 'host out\n', 'guest out\n']
  const spam = `${'x'.repeat(1_000_000)}END\nhost after spam\n`
  // Compared whole, shown by length and ends: a diff of 2 MB helps no one.
  const same = (actual: string, expected: string, what: string) =>
    t.true(
      actual === expected,
      `${what}: ${actual.length} characters, ${JSON.stringify(actual.slice(0, 60))} … ${JSON.stringify(actual.slice(-60))}`,
    )
  for (const target of ['socket', 'fifo'] as const) {
    const piped = await inheritingChild(script, target)
    same(piped.stdout, rounds.join('').repeat(3) + spam + spam, `stdout, a ${target}`)
    same(piped.stderr, 'guest err\nguest err\nhost err\n'.repeat(3), `stderr, a ${target}`)
  }
  const filed = await inheritingChild(script, 'file')
  const shared = 'guest out\nguest err\nhost out\nguest out\nguest err\nhost err\n'
  same(filed.stdout, shared.repeat(3) + spam + spam, 'one file: the order of every write kept')
})

test('a guest writing newlines to an inherited terminal nobody reads ends by its deadline', async (t) => {
  // Probe H57: a terminal with room took a 256-byte write, but makes each newline two bytes, so
  // 256 of them blocked inside write(2): a callSync held the JS thread 18.9 s past its 1 s
  // deadline, for as long as nobody read the terminal. A blocking terminal (or pipe) is written
  // on a blocking thread again, the guest's future pending. The child runs under script(1) on a
  // pseudo-terminal whose reader, this process, never reads; it reports through a file.
  if (process.platform !== 'linux' || !existsSync('/usr/bin/script')) return t.pass('needs script(1)')
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-tty-'))
  const file = path.join(dir, 'child.mjs')
  const report = path.join(dir, 'report.json')
  writeFileSync(
    file,
    `import { writeFileSync } from 'node:fs'
     import { Engine } from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
     const module = new Engine().compileModuleSync(\`(module
       (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
       (memory (export "memory") 1)
       (func (export "newlines")
         (memory.fill (i32.const 4096) (i32.const 10) (i32.const 4096))
         (i32.store (i32.const 0) (i32.const 4096)) (i32.store (i32.const 4) (i32.const 4096))
         (loop $next (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $next))))\`)
     const instance = module.instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: { stdout: 'inherit' } })
     const started = Date.now()
     let code
     try { instance.callSync('newlines', [], { timeoutMs: 1000 }) } catch (error) { code = error.code }
     writeFileSync(${JSON.stringify(report)}, JSON.stringify({ code, elapsed: Date.now() - started }))
     process.exit(0)`,
  )
  const command = `"${process.execPath}" --import tsx "${file}"`
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] })
  child.stdout.pause()
  const started = Date.now()
  // Beside the CLI specs, the child's start alone may take tens of seconds.
  while (!existsSync(report) && Date.now() - started < 90_000)
    await new Promise((resolve) => setTimeout(resolve, 50))
  child.kill('SIGKILL')
  const result = existsSync(report)
    ? (JSON.parse(readFileSync(report, 'utf8')) as { code?: string; elapsed?: number })
    : {}
  rmSync(dir, { recursive: true, force: true })
  t.is(result.code, 'ERR_WASM_TIMEOUT', JSON.stringify(result))
  t.true((result.elapsed ?? Infinity) < 3_000, `ended after ${result.elapsed} ms`)
})

/** A preview 1 module whose export `out` writes a line, "guest", to fd 1 and returns fd_write's errno. */
const GUEST_LINE_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "guest\\n")
  (func (export "out") (result i32)
    (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 6))
    (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))`

/** Runs \`command\` in a shell (which sets the child's fd 1), and resolves with what it wrote to stderr. */
function stderrOf(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 90_000 })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', () => resolve(stderr))
  })
}

test("inherited stdout is the process's fd 1 as it is at each write: refused where it is read-only, followed where the host moves it", async (t) => {
  // Probe H56: fd 1 was reopened once through /proc/self/fd/1 for writing, whatever its access
  // mode (a guest wrote into the read end of the host's own stdin pipe), and that copy was kept:
  // after the host pointed fd 1 at a file, guests still wrote to the old pipe, which stayed open
  // until the process exited. Here fd 1 starts as the read end of a pipe (`1<&0`).
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-fd1-'))
  const file = path.join(dir, 'child.mjs')
  const moved = path.join(dir, 'moved.txt')
  writeFileSync(
    file,
    `import { closeSync, openSync, readFileSync } from 'node:fs'
     import { Engine } from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
     const module = new Engine().compileModuleSync(${JSON.stringify(GUEST_LINE_WAT)})
     const fresh = () => module.instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: { stdout: 'inherit' } })
     // A stream that failed stays closed, as WASI's do: the one made before the move has not.
     const [failing, before] = [fresh(), fresh()]
     const readOnly = failing.callSync('out')
     closeSync(1)
     const fd = openSync(${JSON.stringify(moved)}, 'w')
     const after = [before.callSync('out'), fresh().callSync('out')]
     process.stderr.write(JSON.stringify({ readOnly, fd, after, file: readFileSync(${JSON.stringify(moved)}, 'utf8') }))`,
  )
  const report = await stderrOf(`sleep 2 | "${process.execPath}" --import tsx "${file}" 1<&0`)
  rmSync(dir, { recursive: true, force: true })
  // WASI's errno 8 is EBADF, as a native write(1) gets.
  t.deepEqual(JSON.parse(report), { readOnly: 8, fd: 1, after: [0, 0], file: 'guest\nguest\n' }, report)
})

/**
 * A child whose guest takes 64 KiB of check-write permit on each of `streams` inherited stdout
 * streams, writes them all, and drops them unflushed (the wasi-http fixture's `permits` mode);
 * `after` runs once the call reported its outcome on stderr. Checks that the call succeeded and
 * that stdout, read as `target` reads it, got every byte.
 */
async function permitsChild(
  t: ExecutionContext,
  streams: number,
  after: string,
  target: 'socket' | 'late',
): Promise<void> {
  const { stdout, stderr } = await inheritingChild(
    `
    import { writeFileSync } from 'node:fs'
    import { Engine } from ENTRY
    const compiled = await new Engine().compileComponent(${JSON.stringify(wasiHttpWasm)})
    const instance = await compiled.instantiate({
      limits: { memoryBytes: 16 << 20 },
      wasi: { stdout: 'inherit', args: ['wasi-http', 'permits', '${streams}'] },
    })
    const outcome = await instance.call('wasi:cli/run#run', [], { timeoutMs: 10000 }).then(
      () => 'ok',
      (error) => error.code,
    )
    console.error(outcome)
    ${after}
  `,
    target,
  )
  t.is(stderr.trim(), 'ok')
  t.is(stdout.length, streams * 64 * 1024)
  t.regex(stdout, /^p*$/)
}

test('what check-write allowed on an inherited stdout arrives whole, though the guest drops its streams before the socket has room', async (t) => {
  // Probe H58: a write past the room a socket (or non-blocking pipe) had waited in its stream,
  // and went with the stream when the guest dropped it unflushed: 64 streams of 64 KiB each, one
  // write each in reverse order, delivered a fraction. What waits is now the descriptor's, in
  // write order, for one writer thread. The child waits for it before it exits.
  await permitsChild(t, 64, 'await new Promise((resolve) => setTimeout(resolve, 3000))', 'socket')
})

test('what guests queued on an inherited stdout and did not flush is written before the process exits', async (t) => {
  // Probe H59: bytes still queued for the writer thread when the host exited were lost (65,536 of
  // 1,048,576 behind a late reader). The child exits as soon as the call returns, its stdout a
  // pipe whose reader starts only after that.
  await permitsChild(t, 64, "writeFileSync(process.env.READY, ''); process.exit(0)", 'late')
})

test('inherited stdout moved by the host away from a pipe nobody reads: later writes follow it, not waiting behind the old pipe', async (t) => {
  // Probe H59: the writer thread blocked in write(2) on a blocking pipe nobody read stayed there
  // after the host moved fd 1 to a file, and every later guest's flush waited behind it, to its
  // deadline, with nothing in the file. fd 1 starts as a blocking FIFO whose reader never reads.
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-moved-'))
  const fifo = path.join(dir, 'stdout')
  const moved = path.join(dir, 'moved.txt')
  execFileSync('mkfifo', [fifo])
  const file = path.join(dir, 'child.mjs')
  writeFileSync(
    file,
    `import { closeSync, constants, openSync, readFileSync } from 'node:fs'
     import { Engine } from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
     openSync(${JSON.stringify(fifo)}, constants.O_RDONLY | constants.O_NONBLOCK)
     closeSync(1)
     openSync(${JSON.stringify(fifo)}, 'w')
     const engine = new Engine()
     const flood = engine.compileModuleSync(${JSON.stringify(moduleWasm)}).instantiateSync({
       limits: { memoryBytes: 16 << 20 },
       wasi: { stdout: 'inherit', args: ['wasi-cli', 'spam', '4000000'] },
     })
     const flooded = await flood.call('_start', [], { timeoutMs: 500 }).then(() => 'ok', (error) => error.code)
     closeSync(1)
     openSync(${JSON.stringify(moved)}, 'w')
     const line = engine.compileModuleSync(${JSON.stringify(GUEST_LINE_WAT)})
     const started = Date.now()
     const written = await line
       .instantiateSync({ limits: { memoryBytes: 1 << 16 }, wasi: { stdout: 'inherit' } })
       .call('out', [], { timeoutMs: 5000 })
       .then((errno) => errno, (error) => error.code)
     const elapsedMs = Date.now() - started
     process.stderr.write(JSON.stringify({ flooded, written, elapsedMs, tail: readFileSync(${JSON.stringify(moved)}, 'utf8').slice(-6) }))
     process.exit(0)`,
  )
  const report = await stderrOf(`"${process.execPath}" --import tsx "${file}"`)
  rmSync(dir, { recursive: true, force: true })
  const result = JSON.parse(report) as {
    flooded: string
    written: number | string
    elapsedMs: number
    tail: string
  }
  t.is(result.flooded, 'ERR_WASM_TIMEOUT', report)
  t.is(result.written, 0, report)
  t.is(result.tail, 'guest\n', report)
  t.true(result.elapsedMs < 4_000, report)
})

test('a guest writing to an inherited stdout socket nobody reads ends by its deadline', async (t) => {
  // Written without waiting (MSG_DONTWAIT), the guest's future waits for room: its deadline
  // ends the call, as for a full pipe (escapes.spec.ts).
  const { stderr } = await inheritingChild(
    `
    import { Engine } from ENTRY
    const compiled = new Engine().compileModuleSync(${JSON.stringify(moduleWasm)})
    const instance = compiled.instantiateSync({
      limits: { memoryBytes: 16 << 20 },
      wasi: { stdout: 'inherit', args: ['wasi-cli', 'spam', '50000000'] },
    })
    const started = Date.now()
    await instance.call('_start', [], { timeoutMs: 300 }).catch((error) => console.error(error.code, Date.now() - started))
    process.exit(0)
  `,
    'unread',
  )
  const [code, elapsed] = stderr.trim().split(' ')
  t.is(code, 'ERR_WASM_TIMEOUT', stderr)
  t.true(Number(elapsed) < 5_000, stderr)
})

for (const kind of ['component', 'module'] as const) {
  test(`a WASI ${kind} reads the stdin it is given, as text or bytes, then end of file`, async (t) => {
    const text = await run(kind, ['stdin'], { stdin: 'hello ✓\nline two' })
    t.is(text.takeOutput().stdout, 'stdin: hello ✓\nline two\n')
    const bytes = await run(kind, ['stdin'], { stdin: new TextEncoder().encode('bytes') })
    t.is(bytes.takeOutput().stdout, 'stdin: bytes\n')
    const none = await run(kind, ['stdin'])
    t.is(none.takeOutput().stdout, 'stdin: \n', 'no stdin given: end of file at once')
  })

  test(`a WASI ${kind} writes only inside a preopen granted with write: true`, async (t) => {
    const dir = tempDir(t, 'wasi-rw')
    const writable = await run(kind, ['write', '/scratch/new.txt'], {
      preopens: { '/scratch': { host: dir, write: true } },
    })
    t.is(writable.takeOutput().stdout, 'wrote /scratch/new.txt\n')
    t.true(existsSync(path.join(dir, 'new.txt')))
    const error = await t.throwsAsync(
      run(kind, ['write', '/scratch/other.txt'], { preopens: { '/scratch': dir } }),
      { instanceOf: WasiExitError },
    )
    t.true((error?.exitCode ?? 0) !== 0)
    t.false(existsSync(path.join(dir, 'other.txt')), 'a read-only preopen refuses the write')
  })
}

/**
 * Runs `wasi-cli stdin` with `stdin: 'inherit'` in a child process whose stdin is a pipe from this
 * one; `feed` is written to it and the pipe closed, or (when undefined) the pipe stays open and
 * silent. Prints one line per call: the output, or the error code and how long the call took.
 */
function inheritedStdin(kind: Kind, calls: string, feed: string | undefined): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'airssys-stdin-'))
  const file = path.join(dir, 'child.mjs')
  const wasm = kind === 'component' ? componentWasm : moduleWasm
  writeFileSync(
    file,
    `import { Engine } from ${JSON.stringify(new URL('../lib/index.js', import.meta.url).href)}
     const engine = new Engine()
     const kind = ${JSON.stringify(kind)}
     const compiled = kind === 'component'
       ? engine.compileComponentSync(${JSON.stringify(wasm)})
       : engine.compileModuleSync(${JSON.stringify(wasm)})
     const name = kind === 'component'
       ? compiled.exports.find((item) => item.name.startsWith('wasi:cli/run@')).name + '#run'
       : '_start'
     const fresh = () => compiled.instantiateSync({
       limits: { memoryBytes: ${16 * MiB} },
       timeoutMs: 400,
       wasi: { stdout: 'pipe', stdin: 'inherit', args: ['wasi-cli', 'stdin'] },
     })
     const report = async (call) => {
       const started = performance.now()
       try {
         const instance = fresh()
         await call(instance)
         console.log(JSON.stringify(instance.takeOutput().stdout))
       } catch (error) {
         console.log(error.code, Math.round(performance.now() - started))
       }
     }
     for (const how of ${JSON.stringify(calls)}.split(',')) {
       if (how === 'sync') await report((instance) => instance.callSync(name))
       if (how === 'async') await report((instance) => instance.call(name))
       if (how === 'abort')
         await report((instance) => instance.call(name, [], { timeoutMs: 60_000, signal: AbortSignal.timeout(150) }))
     }
     process.exit(0)`,
  )
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['pipe', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    // Beside the CLI specs' dozens of processes, a child's start alone passed 20 s.
    const killer = setTimeout(() => child.kill('SIGKILL'), 90_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(killer)
      child.stdin.destroy()
      rmSync(dir, { recursive: true, force: true })
      if (code === 0) resolve(stdout)
      else reject(new Error(`the child ended with ${signal ?? code}: ${stdout}`))
    })
    if (feed !== undefined) child.stdin.end(feed)
  })
}

for (const kind of ['component', 'module'] as const) {
  test(`a WASI ${kind} given stdin: 'inherit' reads the process's stdin`, async (t) => {
    t.is(await inheritedStdin(kind, 'async', 'from the parent'), '"stdin: from the parent\\n"\n')
  })

  // Every wait a guest can cause ends at its deadline: a read from a stdin that never delivers too.
  test(`a WASI ${kind} waiting on an inherited stdin that stays silent stops at its deadline and on abort`, async (t) => {
    const lines = (await inheritedStdin(kind, 'sync,async,abort', undefined)).trim().split('\n')
    t.is(lines.length, 3, lines.join('\n'))
    const [sync, async, abort] = lines.map((line) => line.split(' '))
    for (const [code, ms] of [sync!, async!]) {
      t.is(code, 'ERR_WASM_TIMEOUT')
      t.true(Number(ms) >= 390 && Number(ms) < 2_000, `stopped after ${ms} ms`)
    }
    t.is(abort![0], 'ABORT_ERR')
    t.true(Number(abort![1]) >= 140 && Number(abort![1]) < 2_000, `stopped after ${abort![1]} ms`)
  })
}

test('wasi.preopens and wasi.stdin options are checked where they enter', (t) => {
  const instantiate = (wasi: unknown) => () =>
    module.instantiateSync({ limits: { memoryBytes: 16 * MiB }, wasi: wasi as WasiOptions })
  const unknown = t.throws(instantiate({ preopens: { '/x': { host: '.', writable: true } } }), {
    code: 'ERR_WASM_CONFIG',
    message: /writable/,
  })
  // Named under its entry, as every nested option's path is (it was `writable` alone: probe H32).
  t.is((unknown as ConfigError | undefined)?.path, 'wasi.preopens./x.writable')
  const http = t.throws(instantiate({ http: { ['k'.repeat(300)]: 1 } }), { instanceOf: ConfigError })
  t.is(http?.path, 'wasi.http.(a string of 300 UTF-16 units)', 'a long key by its length, as elsewhere')
  t.throws(instantiate({ preopens: { '/x': { write: true } } }), { message: /wasi\.preopens\.\/x\.host/ })
  t.throws(instantiate({ stdin: 42 }), { code: 'ERR_WASM_CONFIG', message: /wasi\.stdin/ })
  // A Proxy passes `instanceof`, and the addon cannot read its bytes.
  t.throws(instantiate({ stdin: new Proxy(new Uint8Array(1), {}) }), {
    code: 'ERR_WASM_CONFIG',
    message: /^wasi\.stdin: expected a string, a Uint8Array/,
  })
})

test('wasi.env and wasi.args refuse what a guest would read as something else: = in a name, NUL anywhere', (t) => {
  const instantiate = (wasi: WasiOptions) => () =>
    module.instantiateSync({ limits: { memoryBytes: 16 * MiB }, wasi })
  const envs: Record<string, string>[] = [{ 'A=B': 'c' }, { '': 'x' }, { 'A\0B': 'c' }, { A: 'b\0c' }]
  for (const env of envs) {
    t.throws(instantiate({ env }), { code: 'ERR_WASM_CONFIG', message: /^wasi\.env: / }, JSON.stringify(env))
  }
  const error = t.throws(instantiate({ args: ['ok', 'cut\0short'] }), { instanceOf: ConfigError })
  // Spelled as its message and every other list's path spell it (it was `wasi.args.1`: probe Z25).
  t.is(error?.path, 'wasi.args[1]')
  const nulName = t.throws(instantiate({ env: { 'A\0B': 'c' } }), { instanceOf: ConfigError })
  t.is(nulName?.path, 'wasi.env.A\\u0000B', 'a NUL in a path is escaped as in a message')
  t.notThrows(instantiate({ env: { A: 'b=c' }, args: ['x=y'] }), '= in a value or an argument is fine')
  // eslint-disable-next-line no-sparse-arrays -- a hole is what is refused
  const holes = t.throws(instantiate({ args: ['a', , 'b'] as string[] }), { instanceOf: ConfigError })
  t.is(holes?.path, 'wasi.args')
})

/** `many(n)` polls n clock subscriptions at once: a pollable each, in WASI's handle table. */
const pollGuest = engine.compileModuleSync(`(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 16)
  (func (export "many") (param i32) (result i32)
    (call $poll (i32.const 0) (i32.const 524288) (local.get 0) (i32.const 1048000))))`)

test("a guest that fills WASI's handle table is a HostLimitError, not a GuestAbiError", async (t) => {
  // poll_oneoff makes a pollable per subscription: past the table's bound the guest broke no
  // ABI; it asked the host to hold too much.
  const inst = await pollGuest.instantiate({ limits: { memoryBytes: 160 * MiB } })
  // A clock subscription takes two entries of the table.
  t.is(inst.callSync('many', [4_000]), 0, 'below the bound')
  const error = t.throws(() => inst.callSync('many', [10_001]), { instanceOf: HostLimitError })
  t.is(error.code, 'ERR_WASM_HOST_LIMIT')
  t.regex(error.message, /WASI handles/)
  await t.throwsAsync(inst.call('many', [10_001]), { instanceOf: HostLimitError })
})

test('the WASI handles an instance may hold grow with its memory limit: a small guest holds few', async (t) => {
  // Each handle can hold host memory the guest's limit does not count (a pending 64 KiB read, a
  // wasi:http body's buffered chunks, a directory's listing): 10,000 of them let a 1 MiB guest
  // make the host hold 2.4 GB. Now one handle per 16 KiB of limits.memoryBytes, 256 to 10,000.
  const small = await pollGuest.instantiate({ limits: { memoryBytes: MiB } })
  // A clock subscription takes two entries of the table: 256 entries, then 4,096.
  t.is(small.callSync('many', [100]), 0)
  t.throws(() => small.callSync('many', [150]), { instanceOf: HostLimitError, message: /WASI handles/ })
  const larger = await pollGuest.instantiate({ limits: { memoryBytes: 64 * MiB } })
  t.is(larger.callSync('many', [1_900]), 0)
  t.throws(() => larger.callSync('many', [2_100]), { instanceOf: HostLimitError, message: /WASI handles/ })
})

test("a WASI reactor's _initialize runs at instantiation, before any export; a command's does not", async (t) => {
  // The WASI application ABI: a reactor (`_initialize`, no `_start`) is set up once before use;
  // Go's -buildmode=c-shared modules trap without it.
  const module = (start: string) => `(module
    (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
    (global $ready (mut i32) (i32.const 0))
    (func (export "_initialize") (global.set $ready (i32.add (global.get $ready) (i32.const 1))))
    ${start}
    (func (export "ready") (result i32) (global.get $ready)))`
  const reactor = engine.compileModuleSync(module(''))
  t.is((await reactor.instantiate({ limits: { memoryBytes: 0 } })).callSync('ready'), 1)
  t.is(reactor.instantiateSync({ limits: { memoryBytes: 0 } }).callSync('ready'), 1)
  const command = engine.compileModuleSync(module('(func (export "_start"))'))
  t.is((await command.instantiate({ limits: { memoryBytes: 0 } })).callSync('ready'), 0)
  // One of another type is refused, as wasmtime run refuses it: it was skipped, and the exports
  // ran on a runtime never set up (probe H34).
  const mistyped = engine.compileModuleSync(`(module
    (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
    (func (export "_initialize") (param i32)))`)
  const refused = {
    instanceOf: LinkError,
    message: /_initialize must be a func\(\) with no results, not func\(i32\)/,
  }
  t.throws(() => mistyped.instantiateSync({ limits: { memoryBytes: 0 } }), refused)
  await t.throwsAsync(mistyped.instantiate({ limits: { memoryBytes: 0 } }), refused)
})

test('random bytes beyond what the guest may hold are refused before the host makes them', async (t) => {
  // wasmtime-wasi makes the bytes a guest asks for (up to 64 MiB) before it looks where they go:
  // 16 instances of 64 KiB each asking at once had the host hold 1 GB and spend 0.2 s of CPU
  // each. The bound is now the guest's own limits.memoryBytes.
  const limits = { memoryBytes: 64 * 1024 }
  const preview1 = engine.compileModuleSync(`(module
    (import "wasi_snapshot_preview1" "random_get" (func $get (param i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "get") (param i32) (result i32) (call $get (i32.const 0) (local.get 0))))`)
  const core = preview1.instantiateSync({ limits })
  t.is(core.callSync('get', [limits.memoryBytes]), 0)
  const refused = t.throws(() => core.callSync('get', [limits.memoryBytes + 1]), {
    instanceOf: HostLimitError,
  })
  const why = /random bytes at once than one call may make \(limits\.memoryBytes, at most 64 MiB\)/
  t.regex(refused?.message ?? '', new RegExp(`${why.source}.*requested len 65537`))
  t.is(preview1.instantiateSync({ limits }).callSync('get', [16]), 0, 'the process goes on')
  // Above 64 MiB wasmtime-wasi's own bound refuses, whatever memoryBytes is (probe Z55: the message
  // named memoryBytes alone).
  const large = preview1.instantiateSync({ limits: { memoryBytes: 128 << 20 } })
  const beyond = t.throws(() => large.callSync('get', [(64 << 20) + 1]), { instanceOf: HostLimitError })
  t.regex(beyond?.message ?? '', new RegExp(`${why.source}.*requested len 67108865`))

  const preview2 = engine.compileComponentSync(`(component
    (import "wasi:random/random@0.2.0" (instance $r
      (export "get-random-bytes" (func (param "len" u64) (result (list u8))))))
    ${BUMP_MEMORY_WAT}
    (alias export $r "get-random-bytes" (func $bytes))
    (core func $bytes_core (canon lower (func $bytes) (memory $memory) (realloc $realloc)))
    (core module $m
      (import "h" "bytes" (func $bytes (param i64 i32)))
      (import "h" "memory" (memory 1))
      (func (export "get") (param i64) (result i32)
        (call $bytes (local.get 0) (i32.const 0)) (i32.load (i32.const 4))))
    (core instance $i (instantiate $m (with "h" (instance
      (export "bytes" (func $bytes_core)) (export "memory" (memory $memory))))))
    (func (export "get") (param "len" u64) (result u32) (canon lift (core func $i "get"))))`)
  t.is(preview2.instantiateSync({ limits }).callSync('get', [1000n]), 1000)
  const denied = t.throws(() => preview2.instantiateSync({ limits }).callSync('get', [64n << 20n]), {
    instanceOf: HostLimitError,
  })
  t.regex(denied?.message ?? '', new RegExp(`${why.source}.*requested len 67108864`))
})

test('a preview 1 read of a file takes at most 1 MiB at a time, and a loop of reads still gets it all', async (t) => {
  // Probe H61: wasmtime-wasi read into a host buffer as large as the guest's iovec, on a thread
  // that went on after the call's deadline: timed-out reads of a large file held gigabytes of
  // host memory. A read takes at most 1 MiB now; the guest's iovec is as it was after the call,
  // and one read over its own iovec holds what it read (a first version cut the iovec in the
  // guest's memory for the call and put its length back over the bytes read).
  const dir = tempDir(t, 'wasi-read')
  writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc((3 << 20) | 5, 7))
  const module = engine.compileModuleSync(`(module
    (import "wasi_snapshot_preview1" "path_open"
      (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 128)
    (data (i32.const 64) "big.bin")
    (func $opened (result i32)
      (drop (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 7) (i32.const 0)
        (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 32)))
      (i32.load (i32.const 32)))
    ;; One read into an iovec of 4 MiB at 1 MiB (an empty one before it): what it read, and the
    ;; iovec's length after it, as one number (read * 16 + length in MiB).
    (func (export "once") (result i32) (local $fd i32)
      (local.set $fd (call $opened))
      (i64.store (i32.const 0) (i64.const 0))
      (i32.store (i32.const 8) (i32.const 0x100000)) (i32.store (i32.const 12) (i32.const 0x400000))
      (drop (call $read (local.get $fd) (i32.const 0) (i32.const 2) (i32.const 24)))
      (i32.add (i32.mul (i32.load (i32.const 24)) (i32.const 16))
        (i32.shr_u (i32.load (i32.const 12)) (i32.const 20))))
    ;; One read of 4 MiB into 1 MiB that holds its iovec: the word where the length was.
    (func (export "over") (result i32) (local $fd i32)
      (local.set $fd (call $opened))
      (i32.store (i32.const 0x100008) (i32.const 0x100000)) (i32.store (i32.const 0x10000c) (i32.const 0x400000))
      (drop (call $read (local.get $fd) (i32.const 0x100008) (i32.const 1) (i32.const 24)))
      (i32.load (i32.const 0x10000c)))
    ;; Reads until the end: the bytes read in all.
    (func (export "all") (result i32) (local $fd i32) (local $total i32)
      (local.set $fd (call $opened))
      (i32.store (i32.const 8) (i32.const 0x100000)) (i32.store (i32.const 12) (i32.const 0x400000))
      (loop $more
        (drop (call $read (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 24)))
        (local.set $total (i32.add (local.get $total) (i32.load (i32.const 24))))
        (br_if $more (i32.load (i32.const 24))))
      (local.get $total)))`)
  const options = { limits: { memoryBytes: 128 * 65536 }, wasi: { preopens: { '/data': dir } } }
  const once = (await module.instantiate(options).then((instance) => instance.call('once'))) as number
  t.is(once >> 4, 1 << 20, 'one read took 1 MiB of the 4 asked for')
  t.is(once & 15, 4, "the guest's iovec still says 4 MiB")
  t.is(await module.instantiateSync(options).call('over'), 0x07070707, 'the bytes read, over the iovec')
  t.is(await module.instantiateSync(options).call('all'), (3 << 20) | 5)
})

test('a preview 1 write goes 1 MiB at a time to the end of its buffer, to a file or stdout, and writes what the guest gave', async (t) => {
  // Probe H62: a write to a file copied the guest's iovec whole into a host buffer that outlived a
  // timed-out call: 40 timed-out writes of 64 MiB held 1.7 GiB. A long write now goes through a
  // buffer of 1 MiB, a piece at a time (the deadline looked at between them) to the end, as one
  // write did before: guests that ignore the count still write it all. A first version wrote one
  // piece to a file and returned, cutting the guest's iovec in its memory for the call, so a
  // write of memory that held the iovec wrote the cut length, not the guest's.
  const dir = tempDir(t, 'wasi-write')
  const module = engine.compileModuleSync(`(module
    (import "wasi_snapshot_preview1" "path_open"
      (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
    (memory (export "memory") 128)
    (data (i32.const 64) "out.bin")
    (func $file (result i32)
      ;; O_CREAT | O_TRUNC, rights to write
      (drop (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 7) (i32.const 9)
        (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
      (i32.load (i32.const 32)))
    ;; One write of 4 MiB to $fd with its count to go to a misaligned place: the errno.
    (func (export "misaligned") (param $fd i32) (result i32)
      (i32.store (i32.const 8) (i32.const 0x100000)) (i32.store (i32.const 12) (i32.const 0x400000))
      (call $write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 0x2002)))
    ;; One write of 4 MiB from 1 MiB, whose first bytes are its iovec: what it wrote, and the
    ;; iovec's length after it in MiB.
    (func (export "once") (param $fd i32) (param $at i64) (result i32)
      (if (i32.eqz (local.get $fd)) (then (local.set $fd (call $file))))
      (memory.fill (i32.const 0x100000) (i32.const 7) (i32.const 0x400000))
      (i32.store (i32.const 0x100000) (i32.const 0x100000)) (i32.store (i32.const 0x100004) (i32.const 0x400000))
      (drop (if (result i32) (i64.lt_s (local.get $at) (i64.const 0))
        (then (call $write (local.get $fd) (i32.const 0x100000) (i32.const 1) (i32.const 24)))
        (else (call $pwrite (local.get $fd) (i32.const 0x100000) (i32.const 1) (local.get $at) (i32.const 24)))))
      (i32.add (i32.mul (i32.load (i32.const 24)) (i32.const 16))
        (i32.shr_u (i32.load (i32.const 0x100004)) (i32.const 20)))))`)
  const options = {
    limits: { memoryBytes: 128 * 65536 },
    wasi: {
      preopens: { '/data': { host: dir, write: true } },
      stdout: 'pipe' as const,
      outputLimitBytes: 8 << 20,
    },
  }
  const expected = (4 << 24) + 4
  const written = (offset: number) => {
    const bytes = readFileSync(path.join(dir, 'out.bin'))
    t.is(bytes.length, offset + (4 << 20))
    t.deepEqual([...bytes.subarray(offset, offset + 12)], [0, 0, 16, 0, 0, 0, 64, 0, 7, 7, 7, 7])
    t.is(
      bytes.subarray(offset + 8).every((byte) => byte === 7),
      true,
    )
  }
  t.is(await module.instantiateSync(options).call('once', [0, -1n]), expected, 'fd_write to a file')
  written(0)
  t.is(await module.instantiateSync(options).call('once', [0, 5n]), expected, 'fd_pwrite to a file')
  written(5)
  const piped = module.instantiateSync(options)
  t.is(await piped.call('once', [1, -1n]), expected, 'fd_write to stdout')
  t.is(piped.takeOutput().stdout.length, 4 << 20)
  // fd_pwrite on stdout is refused at its first piece, as before.
  t.is(await module.instantiateSync(options).call('once', [1, 0n]), 4, 'nothing written')
  // A count to go where it cannot traps as wasmtime-wasi's write does: after the write, so a
  // descriptor that is not open is still EBADF (probe Z58: a first version checked it first).
  t.is(module.instantiateSync(options).callSync('misaligned', [99]), 8)
  t.throws(() => module.instantiateSync(options).callSync('misaligned', [1]), { instanceOf: GuestAbiError })
})

/** The error codes of wasi:filesystem/types, in order. */
const ERROR_CODES = `"access" "would-block" "already" "bad-descriptor" "busy" "deadlock" "quota" "exist"
  "file-too-large" "illegal-byte-sequence" "in-progress" "interrupted" "invalid" "io" "is-directory"
  "loop" "too-many-links" "message-size" "name-too-long" "no-device" "no-entry" "no-lock"
  "insufficient-memory" "insufficient-space" "not-directory" "not-empty" "not-recoverable"
  "unsupported" "no-tty" "no-such-device" "overflow" "not-permitted" "pipe" "read-only"
  "invalid-seek" "text-file-busy" "cross-device"`

/** A component writing to a file of its first preopen: through a stream (`write`), or `descriptor.write` (`pwrite`). */
const FILE_WRITER_WAT = `(component
  (type $error-interface (instance (export "error" (type (sub resource)))))
  (import "wasi:io/error@0.2.0" (instance $io-error (type $error-interface)))
  (alias export $io-error "error" (type $error))
  (type $streams-interface (instance
    (alias outer 1 $error (type)) (export "error" (type (eq 0)))
    (export "output-stream" (type (sub resource)))
    (type (own 1)) (type (variant (case "last-operation-failed" 3) (case "closed")))
    (export "stream-error" (type (eq 4)))
    (type (borrow 2)) (type (list u8)) (type (result (error 5)))
    (export "[method]output-stream.write" (func (param "self" 6) (param "contents" 7) (result 8)))
    (export "[method]output-stream.blocking-flush" (func (param "self" 6) (result 8)))))
  (import "wasi:io/streams@0.2.0" (instance $streams (type $streams-interface)))
  (alias export $streams "output-stream" (type $output-stream))
  (type $types-interface (instance
    (export "descriptor" (type (sub resource)))
    (alias outer 1 $output-stream (type)) (export "output-stream" (type (eq 1)))
    (type (enum ${ERROR_CODES})) (export "error-code" (type (eq 3)))
    (type (flags "read" "write" "file-integrity-sync" "data-integrity-sync" "requested-write-sync"
      "mutate-directory"))
    (export "descriptor-flags" (type (eq 5)))
    (type (flags "symlink-follow")) (export "path-flags" (type (eq 7)))
    (type (flags "create" "directory" "exclusive" "truncate")) (export "open-flags" (type (eq 9)))
    (type (borrow 0)) (type (own 0)) (type (result 12 (error 4)))
    (export "[method]descriptor.open-at" (func (param "self" 11) (param "path-flags" 8)
      (param "path" string) (param "open-flags" 10) (param "flags" 6) (result 13)))
    (type (own 2)) (type (result 15 (error 4)))
    (export "[method]descriptor.write-via-stream" (func (param "self" 11) (param "offset" u64) (result 16)))
    ;; 17 is the inline type of the function above.
    (type (list u8)) (type (result u64 (error 4)))
    (export "[method]descriptor.write" (func (param "self" 11) (param "buffer" 18) (param "offset" u64)
      (result 19)))))
  (import "wasi:filesystem/types@0.2.0" (instance $types (type $types-interface)))
  (alias export $types "descriptor" (type $descriptor))
  (type $preopens-interface (instance
    (alias outer 1 $descriptor (type)) (export "descriptor" (type (eq 0)))
    (type (own 1)) (type (tuple 2 string)) (type (list 3))
    (export "get-directories" (func (result 4)))))
  (import "wasi:filesystem/preopens@0.2.0" (instance $preopens (type $preopens-interface)))
  ${BUMP_MEMORY_WAT}
  (core func $directories (canon lower (func $preopens "get-directories") (memory $memory) (realloc $realloc)))
  (core func $open (canon lower (func $types "[method]descriptor.open-at") (memory $memory)))
  (core func $stream (canon lower (func $types "[method]descriptor.write-via-stream") (memory $memory)))
  (core func $write (canon lower (func $streams "[method]output-stream.write") (memory $memory)))
  (core func $flush (canon lower (func $streams "[method]output-stream.blocking-flush") (memory $memory)))
  (core func $pwrite (canon lower (func $types "[method]descriptor.write") (memory $memory)))
  (core module $guest
    (import "m" "memory" (memory 1))
    (import "w" "directories" (func $directories (param i32)))
    (import "w" "open" (func $open (param i32 i32 i32 i32 i32 i32 i32)))
    (import "w" "stream" (func $stream (param i32 i64 i32)))
    (import "w" "write" (func $write (param i32 i32 i32 i32)))
    (import "w" "flush" (func $flush (param i32 i32)))
    (import "w" "pwrite" (func $pwrite (param i32 i32 i32 i64 i32)))
    (data (i32.const 100) "big.bin")
    ;; open-at(create, write) of big.bin on the first preopen, with room for $length bytes at
    ;; 64 KiB: the descriptor, or -1.
    (func $file (param $length i32) (result i32)
      (drop (memory.grow (i32.add (i32.const 2) (i32.shr_u (local.get $length) (i32.const 16)))))
      (call $directories (i32.const 16))
      (call $open (i32.load (i32.load (i32.const 16))) (i32.const 0) (i32.const 100) (i32.const 7)
        (i32.const 1) (i32.const 2) (i32.const 32))
      (if (result i32) (i32.load8_u (i32.const 32)) (then (i32.const -1)) (else (i32.load (i32.const 36)))))
    ;; Writes $length bytes at 64 KiB to big.bin with one descriptor.write: what it wrote, or -1.
    (func (export "pwrite") (param $length i32) (result i64)
      (call $pwrite (call $file (local.get $length)) (i32.const 65536) (local.get $length) (i64.const 0)
        (i32.const 64))
      (if (result i64) (i32.load8_u (i32.const 64)) (then (i64.const -1)) (else (i64.load (i32.const 72)))))
    ;; Writes $length bytes to big.bin in one stream write, then flushes: 0 when both succeed.
    (func (export "write") (param $length i32) (result i32)
      (i32.store (i32.const 36) (call $file (local.get $length)))
      (call $stream (i32.load (i32.const 36)) (i64.const 0) (i32.const 48))
      (if (i32.load8_u (i32.const 48)) (then (return (i32.const 2))))
      (call $write (i32.load (i32.const 52)) (i32.const 65536) (local.get $length) (i32.const 64))
      (if (i32.load8_u (i32.const 64)) (then (return (i32.const 3))))
      (call $flush (i32.load (i32.const 52)) (i32.const 64))
      (i32.load8_u (i32.const 64))))
  (core instance $g (instantiate $guest
    (with "m" (instance (export "memory" (memory $memory))))
    (with "w" (instance (export "directories" (func $directories)) (export "open" (func $open))
      (export "stream" (func $stream)) (export "write" (func $write)) (export "flush" (func $flush))
      (export "pwrite" (func $pwrite))))))
  (func (export "write") (param "length" u32) (result u32) (canon lift (core func $g "write")))
  (func (export "pwrite") (param "length" u32) (result s64) (canon lift (core func $g "pwrite"))))`

test("a component's write to a file stream of more than check-write allows traps, as to stdout: the host holds no more", async (t) => {
  // Probe Z57: wasmtime-wasi's file streams took a write of any size whole and handed it to a
  // blocking thread, where stdout and wasi:http bodies trap past the 64 KiB check-write offers:
  // a 16 MiB guest with 120 streams on one file made the host hold 1.4 GB past dispose().
  const component = engine.compileComponentSync(FILE_WRITER_WAT)
  const dir = tempDir(t, 'stream-write')
  const options = {
    limits: { memoryBytes: 4 * MiB },
    wasi: { preopens: { '/data': { host: dir, write: true } } },
  }
  t.is(component.instantiateSync(options).callSync('write', [65536]), 0, 'what check-write offers')
  t.is(statSync(path.join(dir, 'big.bin')).size, 65536)
  t.throws(() => component.instantiateSync(options).callSync('write', [MiB]), {
    instanceOf: GuestAbiError,
    message: /more bytes than check-write allowed/,
  })
})

test("a component's descriptor.write goes 1 MiB at a time: a timed-out one leaves no write going on", async (t) => {
  // Probe H65: wasmtime-wasi handed a blocking thread the whole buffer, which went on writing
  // after the call's deadline: 16 timed-out writes of 240 MiB left the process holding 2.4 GB.
  const component = engine.compileComponentSync(FILE_WRITER_WAT)
  const dir = tempDir(t, 'descriptor-write')
  const file = path.join(dir, 'big.bin')
  const options = {
    limits: { memoryBytes: 300 * MiB },
    wasi: { preopens: { '/data': { host: dir, write: true } } },
  }
  // Long enough for the buffer to reach the host (its lift takes tens of ms), far too short to
  // write it all (this machine's page cache takes about 1 GB/s).
  const length = 256 * MiB
  t.throws(() => component.instantiateSync(options).callSync('pwrite', [length], { timeoutMs: 100 }), {
    instanceOf: TimeoutError,
  })
  // What a blocking thread still had when the call ended is written by now.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.true(statSync(file).size < length, `${statSync(file).size} bytes written after the deadline`)
  t.is(
    component.instantiateSync(options).callSync('pwrite', [length]),
    BigInt(length),
    'in pieces, all of it',
  )
  t.is(statSync(file).size, length)
})

// tmpfs takes offsets up to 2^63 - 1, where ext4 stops at 16 TiB (EFBIG whatever the write).
;(existsSync('/dev/shm') ? test : test.skip)(
  'a preview 1 fd_pwrite or fd_write whose end passes the largest file offset writes nothing, as one write would',
  async (t) => {
    // Probes H64 and H65: the kernel refuses such a write whole (EINVAL), but its first pieces
    // fit, and were written: 1 MiB at 2^63 - 1 MiB, the file's size 2^63.
    const dir = mkdtempSync(path.join('/dev/shm', 'airssys-pwrite-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const module = engine.compileModuleSync(`(module
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_seek" (func $seek (param i32 i64 i32 i32) (result i32)))
      (memory (export "memory") 160)
      (data (i32.const 64) "far.bin")
      (func $file (result i32)
        (drop (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 7) (i32.const 9)
          (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
        (i32.store (i32.const 8) (i32.const 0x100000)) (i32.store (i32.const 12) (i32.const 0x800000))
        (i32.load (i32.const 32)))
      (func (export "far") (param $at i64) (result i32)
        (call $pwrite (call $file) (i32.const 8) (i32.const 1) (local.get $at) (i32.const 24)))
      ;; The same through fd_write, after a seek to $at.
      (func (export "seek-far") (param $at i64) (result i32) (local $fd i32)
        (local.set $fd (call $file))
        (drop (call $seek (local.get $fd) (local.get $at) (i32.const 0) (i32.const 40)))
        (call $write (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 24))))`)
    const options = {
      limits: { memoryBytes: 160 * 65536 },
      wasi: { preopens: { '/data': { host: dir, write: true } } },
    }
    const einval = 28
    for (const name of ['far', 'seek-far']) {
      t.is(module.instantiateSync(options).callSync(name, [2n ** 63n - 2n ** 20n - 5n]), einval, name)
      t.is(statSync(path.join(dir, 'far.bin'), { bigint: true }).size, 0n, `${name}: nothing written`)
    }
    // One that ends there exactly is written, a piece at a time, as before.
    t.is(module.instantiateSync(options).callSync('far', [2n ** 63n - 1n - 8n * 2n ** 20n]), 0)
    t.is(statSync(path.join(dir, 'far.bin'), { bigint: true }).size, 2n ** 63n - 1n)
  },
)
