/**
 * The soak's mixed load on the main thread: one `round()` runs every kind of operation a few
 * times and checks every result and every error class, so that a leak shows in the samples and a
 * wrong answer or an unexpected error fails the run (see `problems`).
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { inspect, isDeepStrictEqual } from 'node:util'

import { root, typesEverything, typesImports, typesWasm, wasiComponentWasm } from '../fixtures/index.js'
import {
  AbortError,
  ArithmeticTrapError,
  ComponentError,
  Engine,
  HostError,
  InstancePoisonedError,
  MemoryOutOfBoundsError,
  OutOfFuelError,
  StackOverflowError,
  TimeoutError,
  UnreachableError,
  WasiExitError,
  loadComponent,
  type Component,
  type Imports,
  type Instance,
  type InstantiateOptions,
  type Module,
  type Sandbox,
} from '../lib/index.js'
import { CORE_WAT, PAGE, checksum } from './guests.js'

/** What the table counts, one column each. */
export const KINDS = ['callSync', 'call', 'instantiate', 'trap', 'hostAsync', 'wasi', 'worker'] as const
export type Kind = (typeof KINDS)[number]
export type Counts = Record<Kind, number>

export function zeroCounts(): Counts {
  return { callSync: 0, call: 0, instantiate: 0, trap: 0, hostAsync: 0, wasi: 0, worker: 0 }
}

/** Wrong results and unexpected errors: counted, the first few kept for the report. */
export class Problems {
  count = 0
  readonly first: string[] = []

  add(message: string): void {
    // Printed as it happens too, so that a long run's log says when.
    console.error(`problem at ${new Date().toISOString()}: ${message}`)
    this.count++
    if (this.first.length < 20) this.first.push(message)
  }
}

export function describe(error: unknown): string {
  if (!(error instanceof Error)) return inspect(error)
  const code = (error as { code?: unknown }).code
  return `${error.constructor.name}${code === undefined ? '' : ` (${String(code)})`}: ${error.message}`
}

type ErrorClass = abstract new (...args: never[]) => Error

const MiB = 1024 * 1024
const GREET = 'test:types/numbers@0.1.0#greet'
const ADD = 'test:types/numbers@0.1.0#add'
const RUN = 'wasi:cli/run#run'
const CHECKSUM_1000 = checksum(1000)
/**
 * The deadline of the calls that must succeed: they take microseconds, so it only bounds a hang.
 * One second was too tight on the shared 2-core machine: under a load average of 13 to 19 an
 * async host call once waited more than a second to be scheduled.
 */
const CALL_TIMEOUT_MS = 10_000
const example = (name: string) => path.join(root, 'examples', name)

const PERSON = { firstName: 'Ada', age: 36, tags: ['math', 'engines'] }
const BYTES = new Uint8Array(1024).map((_, index) => index & 0xff)
const TEXT = 'soak ✓ 🚀 '.repeat(20)

/** The `types` fixture's imports with async host functions (settling on a microtask or a later turn). */
function asyncTypesImports(): Imports {
  const imports = typesImports()
  const host = imports['test:types/host@0.1.0'] as Record<string, unknown>
  imports.double = async (x: number) => {
    if (x % 2 === 1) await nextTurn()
    return x * 2
  }
  host.echo = async (value: unknown) => value
  host.failMaybe = async (x: number) => {
    await nextTurn()
    if (x === 0) throw Object.assign(new Error('zero'), { payload: 'zero is not allowed' })
    return x + 1
  }
  return imports
}

/**
 * A copy of examples/<name> in `parent` whose manifest allows CALL_TIMEOUT_MS per call, for the
 * sandboxes whose calls must succeed: the examples' deadlines (1 s for hello) are wall-clock time,
 * and on the shared machine, at a load average of 80, a `greet` was once descheduled for 1.3 s.
 */
function relaxedExample(parent: string, name: string): string {
  const dir = path.join(parent, name)
  cpSync(example(name), dir, {
    recursive: true,
    filter: (source) => !['target', 'src', 'wit'].includes(path.basename(source)),
  })
  const manifest = path.join(dir, 'Component.toml')
  const text = readFileSync(manifest, 'utf8')
  const relaxed = text.replace(/^timeout_(seconds|ms) = .*$/m, `timeout_ms = ${CALL_TIMEOUT_MS}`)
  if (relaxed === text) throw new Error(`${name}: no timeout line in its Component.toml`)
  writeFileSync(manifest, relaxed)
  return dir
}

/** A Component.toml directory for the `types` fixture (examples/ has none), in `parent`. */
function typesDir(parent: string): string {
  const dir = mkdtempSync(path.join(parent, 'types-'))
  copyFileSync(typesWasm, path.join(dir, 'types.wasm'))
  writeFileSync(
    path.join(dir, 'Component.toml'),
    [
      '[component]',
      'name = "types"',
      'version = "0.1.0"',
      'wasm = "types.wasm"',
      '[resources.memory]',
      `max_bytes = ${4 * MiB}`,
      '[resources.cpu]',
      'max_fuel = 10000000',
      `timeout_ms = ${CALL_TIMEOUT_MS}`,
    ].join('\n'),
  )
  return dir
}

interface Guests {
  plain: Engine
  metered: Engine
  core: Module
  types: Component
  wasi: Component
  coreOptions: InstantiateOptions
  typesOptions: () => InstantiateOptions
  coreSync: Instance
  coreAsync: Instance
  add: (...args: unknown[]) => unknown
  typesSync: Instance
  typesAsync: Instance
  victim: Instance
  hello: Sandbox
  runaway: Sandbox
  typesSandbox: Sandbox
  wasiTool: Sandbox
  scratch: string
  memoryHogDir: string
}

export class Load {
  readonly counts = zeroCounts()
  readonly problems = new Problems()
  readonly #guests: Guests
  #rounds = 0

  private constructor(guests: Guests) {
    this.#guests = guests
  }

  /** Compiles the guests and creates the long-lived instances and sandboxes. */
  static async create(): Promise<Load> {
    const plain = new Engine()
    const metered = new Engine({ fuel: true })
    const core = plain.compileModuleSync(CORE_WAT)
    const types = plain.compileComponentSync(typesWasm)
    const wasi = plain.compileComponentSync(wasiComponentWasm)
    const coreOptions: InstantiateOptions = {
      limits: { memoryBytes: 4 * PAGE },
      timeoutMs: CALL_TIMEOUT_MS,
      imports: { env: { host: (x: number) => x + 1 } },
    }
    const typesOptions = (): InstantiateOptions => ({
      limits: { memoryBytes: 4 * MiB },
      timeoutMs: CALL_TIMEOUT_MS,
      imports: typesImports(),
    })
    const coreSync = core.instantiateSync(coreOptions)
    const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-soak-'))
    const sandboxImports = typesImports()
    sandboxImports.double = (x: number) => {
      if (x === 13) throw new Error('the host refuses 13')
      return x * 2
    }
    return new Load({
      plain,
      metered,
      core,
      types,
      wasi,
      coreOptions,
      typesOptions,
      coreSync,
      coreAsync: core.instantiateSync({
        ...coreOptions,
        imports: { env: { host: async (x: number) => x + 1 } },
      }),
      add: coreSync.function('add'),
      typesSync: types.instantiateSync(typesOptions()),
      typesAsync: types.instantiateSync({ ...typesOptions(), imports: asyncTypesImports() }),
      victim: types.instantiateSync(typesOptions()),
      hello: await loadComponent(relaxedExample(scratch, 'hello'), { engine: metered }),
      runaway: await loadComponent(example('runaway'), { engine: metered }),
      typesSandbox: await loadComponent(typesDir(scratch), {
        engine: metered,
        hostFunctions: sandboxImports,
      }),
      wasiTool: await loadComponent(relaxedExample(scratch, 'wasi-tool'), {
        engine: metered,
        wasi: { args: ['wasi-tool', 'cat', '/data/hello.txt'] },
      }),
      scratch,
      memoryHogDir: relaxedExample(scratch, 'memory-hog'),
    })
  }

  /** One round of every kind: the calls on the JS thread first, then the async ones together. */
  async round(): Promise<void> {
    const round = this.#rounds++
    this.#replacePoisoned()
    await this.#step('calls on the JS thread', () => this.#onJsThread(round))
    await Promise.all([
      this.#step('async calls', () => this.#asyncCalls()),
      this.#step('async host calls', () => this.#hostCalls(round)),
      this.#step('instantiate and dispose', () => this.#instantiations(round)),
      this.#step('traps', () => this.#traps(round)),
      this.#step('WASI output', () => this.#wasiOutput(round)),
    ])
  }

  /**
   * A long-lived component instance that an unexpected failure poisoned is one problem, not one
   * per round for the rest of the run: it is counted and replaced.
   */
  #replacePoisoned(): void {
    const g = this.#guests
    if (g.typesSync.poisoned) {
      this.problems.add('the long-lived component instance (sync imports) was poisoned; replaced')
      g.typesSync.dispose()
      g.typesSync = g.types.instantiateSync(g.typesOptions())
    }
    if (g.typesAsync.poisoned) {
      this.problems.add('the long-lived component instance (async imports) was poisoned; replaced')
      g.typesAsync.dispose()
      g.typesAsync = g.types.instantiateSync({ ...g.typesOptions(), imports: asyncTypesImports() })
    }
  }

  /** The `types` fixture precompiled, for the worker threads (same engine settings as theirs). */
  serializeTypes(): Uint8Array {
    return this.#guests.types.serialize()
  }

  /** Frees every guest and closes the engines. */
  close(): void {
    const g = this.#guests
    for (const disposable of [g.coreSync, g.coreAsync, g.typesSync, g.typesAsync, g.victim]) {
      disposable.dispose()
    }
    for (const sandbox of [g.hello, g.runaway, g.typesSandbox, g.wasiTool]) sandbox.dispose()
    g.plain.close()
    g.metered.close()
    rmSync(g.scratch, { recursive: true, force: true })
  }

  async #step(what: string, body: () => unknown): Promise<void> {
    try {
      await body()
    } catch (error) {
      this.problems.add(`${what}: unexpected ${describe(error)}`)
    }
  }

  #equal(what: string, actual: unknown, expected: unknown): void {
    if (!isDeepStrictEqual(actual, expected)) {
      this.problems.add(`${what}: got ${inspect(actual)}, expected ${inspect(expected)}`)
    }
  }

  #throws(what: string, expected: ErrorClass, body: () => unknown): void {
    try {
      body()
      this.problems.add(`${what}: returned, expected ${expected.name}`)
    } catch (error) {
      if (!(error instanceof expected))
        this.problems.add(`${what}: ${describe(error)}, expected ${expected.name}`)
    }
  }

  async #rejects(what: string, expected: ErrorClass, pending: Promise<unknown>): Promise<void> {
    try {
      await pending
      this.problems.add(`${what}: resolved, expected ${expected.name}`)
    } catch (error) {
      if (!(error instanceof expected))
        this.problems.add(`${what}: ${describe(error)}, expected ${expected.name}`)
    }
  }

  /** callSync and function handles on core and component exports, and traps on the JS thread. */
  #onJsThread(round: number): void {
    const g = this.#guests
    const counts = this.counts
    for (let i = 0; i < 100; i++) this.#equal('core function(add)', g.add(i, round), i + round)
    for (let i = 0; i < 50; i++) this.#equal('core callSync add', g.coreSync.callSync('add', [i, 1]), i + 1)
    for (let i = 0; i < 20; i++)
      this.#equal('core callSync viaHost', g.coreSync.callSync('viaHost', [i]), i + 2)
    for (let i = 0; i < 10; i++) {
      const sum = g.coreSync.callSync('checksum', [1000], { timeoutMs: CALL_TIMEOUT_MS })
      this.#equal('core callSync checksum with a deadline', sum, CHECKSUM_1000)
    }
    counts.callSync += 180
    for (let i = 0; i < 20; i++)
      this.#equal('component callSync add', g.typesSync.callSync(ADD, [i, round]), i + round)
    for (let i = 0; i < 10; i++)
      this.#equal('component callSync greet', g.typesSync.callSync(GREET, [`s${i}`]), `Hello, s${i}!`)
    for (let i = 0; i < 5; i++)
      this.#equal('component record', g.typesSync.callSync('roundtrip-record', [PERSON]), PERSON)
    for (let i = 0; i < 5; i++)
      this.#equal('component list<u8>', g.typesSync.callSync('roundtrip-list-u8', [BYTES]), BYTES)
    for (let i = 0; i < 2; i++)
      this.#equal(
        'component host echo',
        g.typesSync.callSync('call-echo', [typesEverything]),
        typesEverything,
      )
    for (let i = 0; i < 5; i++)
      this.#equal('sandbox callSync greet', g.hello.callSync('greet', [`h${i}`]), `Hello, h${i}!`)
    counts.callSync += 47

    this.#throws('core trap', UnreachableError, () => g.coreSync.callSync('trap'))
    this.#throws('core out of bounds', MemoryOutOfBoundsError, () => g.coreSync.callSync('oob'))
    this.#throws('sandbox out of fuel', OutOfFuelError, () => g.hello.callSync('greet', ['x'], { fuel: 10 }))
    this.#throws('component trap', UnreachableError, () => g.victim.callSync('trap-unreachable'))
    this.#throws('poisoned component', InstancePoisonedError, () => g.victim.callSync('get-counter'))
    counts.trap += 5
    g.victim.dispose()
    g.victim = g.types.instantiateSync(g.typesOptions())
    counts.instantiate++
  }

  /** `call` on core and component instances and on a sandbox, many queued at once. */
  async #asyncCalls(): Promise<void> {
    const g = this.#guests
    const core = Array.from({ length: 20 }, (_, i) => g.coreSync.call('add', [i, 2]))
    const adds = Array.from({ length: 10 }, (_, i) => g.typesSync.call(ADD, [i, 3]))
    const strings = Array.from({ length: 5 }, () => g.typesSync.call('roundtrip-string', [TEXT]))
    const greetings = Array.from({ length: 3 }, (_, i) => g.hello.call('greet', [`a${i}`]))
    this.#equal(
      'core call add',
      await Promise.all(core),
      core.map((_, i) => i + 2),
    )
    this.#equal(
      'component call add',
      await Promise.all(adds),
      adds.map((_, i) => i + 3),
    )
    this.#equal(
      'component call string',
      await Promise.all(strings),
      strings.map(() => TEXT),
    )
    this.#equal('sandbox call greet', await Promise.all(greetings), [
      'Hello, a0!',
      'Hello, a1!',
      'Hello, a2!',
    ])
    this.counts.call += 38
  }

  /** Guests awaiting async host functions; a pending host Promise cut by a deadline or an abort. */
  async #hostCalls(round: number): Promise<void> {
    const g = this.#guests
    const doubled = Array.from({ length: 5 }, (_, i) => g.typesAsync.call('call-double', [i]))
    const viaHost = Array.from({ length: 5 }, (_, i) => g.coreAsync.call('viaHost', [i]))
    this.#equal('async host double', await Promise.all(doubled), [0, 2, 4, 6, 8])
    this.#equal('async host core', await Promise.all(viaHost), [2, 3, 4, 5, 6])
    this.#equal('async host echo', await g.typesAsync.call('call-echo', [typesEverything]), typesEverything)
    this.#equal('async host result', await g.typesAsync.call('call-fail-maybe', [3]), 4)
    await this.#rejects('async host rejection', ComponentError, g.typesAsync.call('call-fail-maybe', [0]))
    this.counts.hostAsync += 13
    if (round % 10 === 3 || round % 10 === 8) {
      // The pending Promise is held until the call ends, as a real host holds what it waits
      // for: one that nothing references is collected, and the call then fails (finding S1).
      const held: Array<Promise<never>> = []
      const imports = typesImports()
      imports.double = () => {
        const never = new Promise<never>(() => undefined)
        held.push(never)
        return never
      }
      const hanging = await g.types.instantiate({ ...g.typesOptions(), imports })
      if (round % 10 === 3) {
        await this.#rejects(
          'pending host Promise past the deadline',
          TimeoutError,
          hanging.call('call-double', [1], { timeoutMs: 20 }),
        )
      } else {
        const controller = new AbortController()
        setTimeout(() => controller.abort(), 10)
        await this.#rejects(
          'pending host Promise aborted',
          AbortError,
          hanging.call('call-double', [1], { signal: controller.signal }),
        )
      }
      hanging.dispose()
      held.length = 0
      this.counts.hostAsync++
      this.counts.instantiate++
    }
  }

  /** Instances created and disposed (or dropped for the GC), sandboxes and engines created and closed. */
  async #instantiations(round: number): Promise<void> {
    const g = this.#guests
    const counts = this.counts
    const coreSync = g.core.instantiateSync(g.coreOptions)
    this.#equal('fresh core instance', coreSync.callSync('add', [1, 2]), 3)
    coreSync.dispose()
    const coreAsync = await g.core.instantiate(g.coreOptions)
    this.#equal('fresh async core instance', await coreAsync.call('add', [2, 2]), 4)
    coreAsync.dispose()
    // Dropped without dispose: its finalizer must free it.
    this.#equal('dropped core instance', g.core.instantiateSync(g.coreOptions).callSync('add', [3, 3]), 6)
    const component = g.types.instantiateSync(g.typesOptions())
    this.#equal('fresh component instance', component.callSync('get-counter'), 0)
    component.dispose()
    const asyncComponent = await g.types.instantiate(g.typesOptions())
    this.#equal('fresh async component instance', await asyncComponent.call('get-counter'), 0)
    asyncComponent.dispose()
    counts.instantiate += 5
    if (round % 10 === 1) {
      this.#equal(
        'dropped component instance',
        g.types.instantiateSync(g.typesOptions()).callSync(ADD, [1, 1]),
        2,
      )
      counts.instantiate++
    }
    if (round % 10 === 4) {
      // An engine of its own: its ticker thread starts and stops, and its code is freed.
      const engine = new Engine()
      const instance = engine.compileModuleSync(CORE_WAT).instantiateSync(g.coreOptions)
      this.#equal('module on a new engine', await instance.call('add', [4, 4]), 8)
      instance.dispose()
      engine.close()
      counts.instantiate++
    }
    if (round % 10 === 6) {
      const hog = await loadComponent(g.memoryHogDir, { engine: g.metered })
      const granted = await hog.call('hog', [64])
      this.#equal('memory-hog pages up to its limit', typeof granted === 'number' && granted > 0, true)
      this.#equal('memory-hog at its limit', await hog.call('hog', [1]), 0)
      hog.dispose()
      counts.instantiate++
      counts.call += 2
    }
    if (round % 25 === 12) {
      // A sandbox with its own engine, closed by dispose.
      const hello = await loadComponent(path.join(g.scratch, 'hello'))
      this.#equal('new sandbox greet', await hello.call('greet', ['new']), 'Hello, new!')
      await this.#rejects('new sandbox out of fuel', OutOfFuelError, hello.call('greet', ['x'], { fuel: 10 }))
      hello.dispose()
      counts.instantiate++
      counts.trap++
    }
  }

  /** Traps that replace a sandbox's instance, deadlines, and traps that leave a core instance usable. */
  async #traps(round: number): Promise<void> {
    const g = this.#guests
    const counts = this.counts
    await this.#rejects('sandbox unreachable', UnreachableError, g.typesSandbox.call('trap-unreachable'))
    await this.#rejects(
      'sandbox divide by zero',
      ArithmeticTrapError,
      g.typesSandbox.call('trap-divide', [1, 0]),
    )
    await this.#rejects('sandbox host failure', HostError, g.typesSandbox.call('call-double', [13]))
    this.#equal('sandbox after restarts', await g.typesSandbox.call('trap-divide', [6, 3]), 2)
    await this.#rejects(
      'sandbox async out of fuel',
      OutOfFuelError,
      g.hello.call('greet', ['y'], { fuel: 10 }),
    )
    counts.trap += 4
    counts.call++
    if (round % 5 === 2) {
      await this.#rejects(
        'sandbox stack overflow',
        StackOverflowError,
        g.typesSandbox.call('recurse', [1_000_000_000n]),
      )
      counts.trap++
    }
    if (round % 10 === 5) {
      await this.#rejects('runaway past its deadline', TimeoutError, g.runaway.call('run'))
      counts.trap++
    }
    if (round % 10 === 7) {
      await this.#rejects(
        'core spin past its deadline',
        TimeoutError,
        g.coreSync.call('spin', [], { timeoutMs: 5 }),
      )
      counts.trap++
    }
  }

  /** WASI commands with piped output, taken after each run; an exit status; a capped stream. */
  async #wasiOutput(round: number): Promise<void> {
    const g = this.#guests
    const counts = this.counts
    const echo = await g.wasi.instantiate({
      limits: { memoryBytes: 16 * MiB },
      timeoutMs: 10_000,
      wasi: {
        stdout: 'pipe',
        stderr: 'pipe',
        env: { MESSAGE: `m${round}` },
        args: ['wasi-cli', 'echo', 'round', String(round)],
      },
    })
    await echo.call(RUN)
    this.#equal('WASI echo output', echo.takeOutput(), {
      stdout: `args: round ${round}\nenv count: 1\n`,
      stderr: `env MESSAGE=m${round}\n`,
    })
    this.#equal('WASI output taken', echo.takeOutput(), { stdout: '', stderr: '' })
    echo.dispose()
    counts.wasi++
    // A command runs once per instance (its start-up code traps when run again), so every
    // second run on the sandbox is a trap that replaces the instance.
    if (round % 2 === 0) {
      await g.wasiTool.call(RUN)
      this.#equal('WASI preopen read', g.wasiTool.takeOutput(), {
        stdout: 'read through a WASI preopen\n',
        stderr: '',
      })
    } else {
      await this.#rejects('WASI command run twice', UnreachableError, g.wasiTool.call(RUN))
      counts.trap++
    }
    counts.wasi++
    if (round % 10 === 9) {
      const spam = await g.wasi.instantiate({
        limits: { memoryBytes: 16 * MiB },
        timeoutMs: 10_000,
        wasi: { stdout: 'pipe', outputLimitBytes: 4096, args: ['wasi-cli', 'spam', '65536'] },
      })
      await spam.call(RUN)
      const { stdout } = spam.takeOutput()
      this.#equal('WASI capped output', [stdout.length, stdout.endsWith('END')], [4096, true])
      spam.dispose()
      counts.wasi++
    }
    if (round % 10 === 0) {
      const exit = await g.wasi.instantiate({
        limits: { memoryBytes: 16 * MiB },
        wasi: { stdout: 'pipe', stderr: 'pipe', args: ['wasi-cli', 'exit', '3'] },
      })
      await this.#rejects('WASI exit status', WasiExitError, exit.call(RUN))
      exit.dispose()
      counts.wasi++
    }
  }
}
