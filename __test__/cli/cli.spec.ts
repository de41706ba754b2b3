import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import {
  MiB,
  componentDir,
  helloWasm,
  root,
  typesWasm,
  wasiComponentWasm,
  wasiModuleWasm,
  writingStartWat,
} from '../helpers.js'
import { cli, cliArgs, cliProcess, spawnNode } from './helpers.js'

/** The CLI with `input` on its stdin. */
const cliWithInput = (input: string, ...args: string[]) => spawnNode(cliArgs(...args), input)

const example = (name: string) => `examples/${name}`

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-cli-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

function file(name: string, content: string | Uint8Array): string {
  const target = path.join(scratch, name)
  writeFileSync(target, content)
  return target
}

const addWat = file(
  'add.wat',
  `(module
    (func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1))))`,
)
const twoExportsWat = file(
  'two.wat',
  `(module
    (import "env" "log" (func (param i32)))
    (memory (export "memory") 1)
    (func (export "one") (result i32) (i32.const 1))
    (func (export "boom") unreachable))`,
)
const garbageWasm = file('garbage.wasm', new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff, 0xff]))

test('--help prints the usage on stdout; no command prints it on stderr with exit 2', async (t) => {
  const help = await cli('--help')
  t.is(help.code, 0)
  t.regex(help.stdout, /^Usage: airssys-wasm <command> \[options\]/)
  t.regex(help.stdout, /run <dir\|file\.wasm>.*\n.*inspect <file\.wasm\|dir>.*\n.*validate <dir>/)
  t.is(help.stderr, '')

  const bare = await cli()
  t.is(bare.code, 2)
  t.is(bare.stdout, '')
  t.regex(bare.stderr, /^Usage: airssys-wasm/)
})

for (const command of ['run', 'inspect', 'validate']) {
  test(`${command} --help (and help ${command}) prints that command's usage`, async (t) => {
    const [flag, word] = await Promise.all([cli(command, '--help'), cli('help', command)])
    t.is(flag.code, 0)
    t.true(flag.stdout.startsWith(`Usage: airssys-wasm ${command} `), flag.stdout)
    t.is(word.stdout, flag.stdout)
    t.is(flag.stderr, '')
  })
}

test('an unknown command or flag is a usage error, exit 2', async (t) => {
  const command = await cli('frobnicate')
  t.is(command.code, 2)
  t.is(command.stderr, 'ERR_USAGE: unknown command "frobnicate"\nRun `airssys-wasm --help` for usage.\n')
  const flag = await cli('run', example('hello'), '--frob')
  t.is(flag.code, 2)
  t.regex(flag.stderr, /^ERR_USAGE: Unknown option '--frob'.*\nRun `airssys-wasm run --help` for usage\.\n$/s)
  const value = await cli('run', example('hello'), '--fuel', 'lots', 'x')
  t.is(value.code, 2)
  t.regex(value.stderr, /^ERR_USAGE: --fuel expects a positive integer, got "lots"/)
  const missing = await cli('run')
  t.is(missing.code, 2)
  t.regex(missing.stderr, /^ERR_USAGE: run needs a directory/)
})

test('--version prints the package version', async (t) => {
  const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }
  const result = await cli('--version')
  t.deepEqual(result, { code: 0, stdout: `${version}\n`, stderr: '' })
})

test('run hello prints the greeting as JSON, with bare or JSON text for a string', async (t) => {
  const [bare, json] = await Promise.all([
    cli('run', example('hello'), 'world'),
    cli('run', example('hello'), '--invoke', 'greet', '"Ada Lovelace"'),
  ])
  t.deepEqual(bare, { code: 0, stdout: '"Hello, world!"\n', stderr: '' })
  t.deepEqual(json, { code: 0, stdout: '"Hello, Ada Lovelace!"\n', stderr: '' })
})

test('run --json prints the result with fuel, peak memory and elapsed time', async (t) => {
  const started = performance.now()
  const result = await cli('run', example('hello'), '--json', 'world')
  const wallMs = performance.now() - started
  t.is(result.code, 0)
  t.is(result.stderr, '')
  const output = JSON.parse(result.stdout) as {
    result: string
    metrics: { fuelConsumed: number; peakMemoryBytes: number; elapsedMs: number }
  }
  t.deepEqual(Object.keys(output), ['result', 'metrics', 'stdout', 'stderr'])
  t.deepEqual(Object.keys(output.metrics), ['fuelConsumed', 'peakMemoryBytes', 'elapsedMs'])
  t.is(output.result, 'Hello, world!')
  t.true(output.metrics.fuelConsumed > 0)
  t.true(output.metrics.peakMemoryBytes > MiB && output.metrics.peakMemoryBytes <= 2 * MiB)
  // The CLI's own measurement: positive, and inside the time this test saw the process take.
  t.true(output.metrics.elapsedMs > 0 && output.metrics.elapsedMs < wallMs, `${output.metrics.elapsedMs} ms`)
})

test('run runaway stops at the manifest timeout: the error on stderr, exit 4', async (t) => {
  const result = await cli('run', example('runaway'))
  t.is(result.code, 4)
  t.is(result.stdout, '')
  t.regex(result.stderr, /^ERR_WASM_TIMEOUT: wasm call timed out after \d+ ms \(timeoutMs: 50\)\n$/)
})

test('run --json on a failure also prints the error and the metrics on stdout', async (t) => {
  const result = await cli('run', example('runaway'), '--json')
  t.is(result.code, 4)
  const output = JSON.parse(result.stdout) as { error: { code: string }; metrics: { elapsedMs: number } }
  t.is(output.error.code, 'ERR_WASM_TIMEOUT')
  t.true(output.metrics.elapsedMs >= 50)
  t.regex(result.stderr, /^ERR_WASM_TIMEOUT: /)
})

test('run --json of a call stopped by its deadline reports no fuel figure: null, not 0', async (t) => {
  const result = await cli('run', example('runaway'), '--json')
  t.is(result.code, 4)
  const output = JSON.parse(result.stdout) as { error: { code: string }; metrics: { fuelConsumed: unknown } }
  t.is(output.error.code, 'ERR_WASM_TIMEOUT')
  t.is(output.metrics.fuelConsumed, null)
  // Fuel that ran out is a figure the call did report.
  const fuel = await cli('run', example('runaway'), '--fuel', '5000', '--json')
  t.is(fuel.code, 4)
  t.is((JSON.parse(fuel.stdout) as { metrics: { fuelConsumed: unknown } }).metrics.fuelConsumed, 5000)
  // Stopped while the guest waited on a host function (a sleep): the figure is known.
  const napping = await cli(
    'run',
    example('capabilities'),
    '--invoke',
    'nap',
    '3000',
    '--timeout-ms',
    '100',
    '--json',
  )
  t.is(napping.code, 4)
  const napped = JSON.parse(napping.stdout) as { error: { code: string }; metrics: { fuelConsumed: unknown } }
  t.is(napped.error.code, 'ERR_WASM_TIMEOUT')
  t.is(typeof napped.metrics.fuelConsumed, 'number')
})

test('run --json prints one JSON document on stdout when it fails before the call, with the exit code kept', async (t) => {
  // Its one problem: a memory limit below the policy's range.
  const broken = componentDir(scratch, helloWasm, {
    name: 'hello',
    maxBytes: 1,
    maxFuel: 5000,
    timeoutMs: 10,
  })
  const cases = [
    [['run', broken, 'x', '--json'], 2, 'ERR_WASM_CONFIG'],
    [['run', garbageWasm, '--memory', '65536', '--json'], 3, 'ERR_WASM_COMPILE'],
    [
      ['run', typesWasm, '--memory', String(4 * MiB), '--invoke', 'roundtrip-u8', '1', '--json'],
      3,
      'ERR_WASM_LINK',
    ],
    [['run', example('hello'), 'world', '--memory', String(MiB), '--json'], 4, 'ERR_WASM_MEMORY_LIMIT'],
    [['run', example('hello'), '--fuel', 'lots', '--json', 'x'], 2, 'ERR_USAGE'],
    [['run', example('hello'), '--json', '--frob'], 2, 'ERR_USAGE'],
  ] as const
  const results = await Promise.all(cases.map(([args]) => cli(...args)))
  for (const [index, [args, code, errorCode]] of cases.entries()) {
    const result = results[index]!
    t.is(result.code, code, args.join(' '))
    const output = JSON.parse(result.stdout) as { error: { code: string; message: string } }
    t.deepEqual(Object.keys(output), ['error'], args.join(' '))
    t.is(output.error.code, errorCode)
    // stderr keeps its `code: message` line.
    t.true(result.stderr.startsWith(`${errorCode}: ${output.error.message}\n`), result.stderr)
  }
  const config = JSON.parse(results[0]!.stdout) as { error: { problems: { path: string }[] } }
  t.deepEqual(
    config.error.problems.map((problem) => problem.path),
    ['resources.memory.max_bytes'],
    'a ConfigError lists its problems',
  )
})

test('run flags tighten a manifest limit: a smaller fuel budget or deadline stops runaway sooner', async (t) => {
  const [fuel, timeout] = await Promise.all([
    cli('run', example('runaway'), '--fuel', '5000'),
    cli('run', example('runaway'), '--timeout-ms', '10'),
  ])
  t.is(fuel.code, 4)
  t.regex(fuel.stderr, /^ERR_WASM_TRAP_OUT_OF_FUEL: wasm call ran out of fuel after consuming 5000 units\n$/)
  t.is(timeout.code, 4)
  t.regex(timeout.stderr, /^ERR_WASM_TIMEOUT: .*\(timeoutMs: 10\)\n$/)
})

test('run memory-hog reports the pages it got; --memory lowers its limit', async (t) => {
  const [manifest, tighter] = await Promise.all([
    cli('run', example('memory-hog'), '64', '--json'),
    cli('run', example('memory-hog'), '--memory', '524288', '64'),
  ])
  t.is(manifest.code, 0)
  const output = JSON.parse(manifest.stdout) as { result: number; metrics: { peakMemoryBytes: number } }
  t.is(output.result, 14)
  t.is(output.metrics.peakMemoryBytes, MiB)
  t.deepEqual(tighter, { code: 0, stdout: '6\n', stderr: '' })
})

test('run flags may not raise a manifest limit: a ConfigError, exit 2', async (t) => {
  const result = await cli('run', example('memory-hog'), '--memory', String(2 * MiB), '1')
  t.is(result.code, 2)
  t.is(result.stdout, '')
  t.is(
    result.stderr,
    "ERR_WASM_CONFIG: --memory 2097152 is above resources.memory.max_bytes (1048576): flags may only lower a manifest's limits\n",
  )
  const timeout = await cli('run', example('hello'), '--timeout-ms', '1001', 'x')
  t.is(timeout.code, 2)
  t.regex(
    timeout.stderr,
    /^ERR_WASM_CONFIG: --timeout-ms 1001 is above the resources\.cpu timeout in ms \(1000\)/,
  )
})

test('run on a bare .wasm needs --memory, then runs with no manifest', async (t) => {
  const missing = await cli('run', helloWasm, 'world')
  t.is(missing.code, 2)
  t.regex(missing.stderr, /^ERR_USAGE: --memory BYTES is required to run a bare \.wasm file/)

  const result = await cli('run', helloWasm, '--memory', String(2 * MiB), '--json', 'world')
  t.is(result.code, 0)
  const output = JSON.parse(result.stdout) as { result: string; metrics: { fuelConsumed: number | null } }
  t.is(output.result, 'Hello, world!')
  t.is(output.metrics.fuelConsumed, null, 'not metered without --fuel')
})

test('run on a core module converts 64-bit arguments and prints a bigint as "<n>n"', async (t) => {
  const [plain, negative, text] = await Promise.all([
    cli('run', addWat, '--memory', '65536', '40', '2'),
    cli('run', addWat, '--memory', '65536', '--', '-1', '-2'),
    cli('run', addWat, '--memory', '65536', '"9007199254740993"', '0'),
  ])
  t.deepEqual(plain, { code: 0, stdout: '"42n"\n', stderr: '' })
  t.deepEqual(negative, { code: 0, stdout: '"-3n"\n', stderr: '' })
  t.deepEqual(text, { code: 0, stdout: '"9007199254740993n"\n', stderr: '' }, 'beyond 2^53 via a string')
})

test('run prints an absent option as null, with --json or without; a function without a result prints nothing', async (t) => {
  const wat = file(
    'absent.wat',
    `(component
      (core module $m
        (memory (export "memory") 1)
        (func (export "nothing") (result i32) i32.const 16)
        (func (export "none")))
      (core instance $i (instantiate $m))
      (alias core export $i "memory" (core memory $mem))
      (func (export "nothing") (result (option u32)) (canon lift (core func $i "nothing") (memory $mem)))
      (func (export "none") (canon lift (core func $i "none"))))`,
  )
  const [absent, absentJson, none] = await Promise.all([
    cli('run', wat, '--memory', '65536', '--invoke', 'nothing'),
    cli('run', wat, '--memory', '65536', '--invoke', 'nothing', '--json'),
    cli('run', wat, '--memory', '65536', '--invoke', 'none'),
  ])
  t.deepEqual(absent, { code: 0, stdout: 'null\n', stderr: '' })
  t.like(JSON.parse(absentJson.stdout), { result: null })
  t.deepEqual(none, { code: 0, stdout: '', stderr: '' })
})

test('run needs --invoke when there is not exactly one exported function', async (t) => {
  const two = file('choice.wat', '(module (func (export "one")) (func (export "boom") unreachable))')
  const result = await cli('run', two, '--memory', '65536')
  t.is(result.code, 2)
  t.regex(result.stderr, /^ERR_USAGE: --invoke NAME is required: the wasm exports 2 functions \(one, boom\)/)
})

test('a missing import is a LinkError, exit 3; invalid wasm a CompileError, exit 3', async (t) => {
  const [link, compile] = await Promise.all([
    cli('run', typesWasm, '--memory', String(4 * MiB), '--invoke', 'roundtrip-u8', '1'),
    cli('run', garbageWasm, '--memory', '65536'),
  ])
  t.is(link.code, 3)
  t.regex(link.stderr, /^ERR_WASM_LINK: .*double/s)
  t.is(compile.code, 3)
  t.regex(compile.stderr, /^ERR_WASM_COMPILE: /)
})

test('a trap is exit 4 with its code', async (t) => {
  const imports = file('boom.wat', '(module (func (export "boom") unreachable))')
  const result = await cli('run', imports, '--memory', '65536')
  t.is(result.code, 4)
  t.regex(result.stderr, /^ERR_WASM_TRAP_UNREACHABLE: /)
})

test('run prints what start code that failed wrote, and --json its document with metrics and output', async (t) => {
  // It went with the failed instance: a start that printed why it panicked showed only the trap.
  const failing = file(
    'start-panics.wat',
    writingStartWat({
      text: 'panic in start\n',
      then: 'unreachable',
      exports: '(func (export "f") (result i32) (i32.const 1))',
    }),
  )
  const plain = await cli('run', failing, '--memory', '65536')
  t.is(plain.code, 4)
  t.is(
    plain.stderr,
    'panic in start\nERR_WASM_TRAP_UNREACHABLE: wasm trap: wasm `unreachable` instruction executed\n',
  )
  const json = await cli('run', failing, '--memory', '65536', '--fuel', '1000', '--json')
  t.is(json.code, 4)
  const document = JSON.parse(json.stdout) as Record<string, unknown>
  t.like(document, {
    error: { code: 'ERR_WASM_TRAP_UNREACHABLE' },
    metrics: { peakMemoryBytes: 65536 },
    stdout: '',
    stderr: 'panic in start\n',
  })
  t.is(typeof (document.metrics as { fuelConsumed: unknown }).fuelConsumed, 'number')
})

test("a command's start code that calls exit(n) ends the run with status n, as its _start's exit would", async (t) => {
  // It ended as a failure: ERR_WASM_EXIT on stderr and status 1, exit(0) included (probe H26).
  const exiting = (status: number) =>
    file(
      `start-exits-${status}.wat`,
      writingStartWat({
        text: 'hello from start\n',
        fd: 1,
        imports: '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))',
        then: `(call $exit (i32.const ${status}))`,
        exports: '(func (export "_start"))',
      }),
    )
  const failing = await cli('run', exiting(7), '--memory', '65536')
  t.deepEqual([failing.code, failing.stdout, failing.stderr], [7, 'hello from start\n', ''])
  const json = await cli('run', exiting(7), '--memory', '65536', '--json')
  t.is(json.code, 7)
  t.like(JSON.parse(json.stdout), {
    error: { code: 'ERR_WASM_EXIT', exitCode: 7 },
    stdout: 'hello from start\n',
  })
  const succeeding = await cli('run', exiting(0), '--memory', '65536')
  t.deepEqual([succeeding.code, succeeding.stdout, succeeding.stderr], [0, 'hello from start\n', ''])
  const document = await cli('run', exiting(0), '--memory', '65536', '--json', '--fuel', '100000')
  t.is(document.code, 0)
  t.like(JSON.parse(document.stdout), { result: null, stdout: 'hello from start\n' })
  // Its fuel is the start's, as for any failed start (it was null: probe H27).
  t.is(
    typeof (JSON.parse(document.stdout) as { metrics: { fuelConsumed: unknown } }).metrics.fuelConsumed,
    'number',
  )
  // With --invoke the exit stays the error it is for a call.
  const invoked = await cli('run', exiting(7), '--memory', '65536', '--invoke', '_start')
  t.is(invoked.code, 1)
  t.regex(invoked.stderr, /ERR_WASM_EXIT: the guest exited with code 7/)
})

test('bad arguments are usage errors, exit 2', async (t) => {
  const [count, json, unknown] = await Promise.all([
    cli('run', example('hello')),
    cli('run', example('memory-hog'), 'lots'),
    cli('run', example('hello'), '--invoke', 'nope', 'x'),
  ])
  t.is(count.code, 2)
  t.regex(count.stderr, /^ERR_WASM_TYPE: greet: expected 1 argument/)
  t.is(json.code, 2)
  t.is(json.stderr, 'ERR_USAGE: argument 1 (pages) is not valid JSON: lots\n')
  t.is(unknown.code, 2)
  t.regex(unknown.stderr, /^ERR_WASM_TYPE: .*"nope"/)
})

test('run on a broken manifest lists every problem, exit 2', async (t) => {
  const dir = mkdtempSync(path.join(scratch, 'broken-'))
  copyFileSync(helloWasm, path.join(dir, 'hello.wasm'))
  writeFileSync(
    path.join(dir, 'Component.toml'),
    '[component]\nname = "hello"\nversion = "0.1.0"\n[resources.memory]\nmax_bytes = 1\n[resources.cpu]\nmax_fuel = 5\n',
  )
  const result = await cli('run', dir, 'x')
  t.is(result.code, 2)
  t.is(result.stdout, '')
  t.is(
    result.stderr,
    [
      `ERR_WASM_CONFIG: ${path.join(dir, 'Component.toml')} has 3 problems:`,
      '  - resources.memory.max_bytes: 1 is below the allowed range 524288..4194304 (512 KiB..4 MiB)',
      '  - resources.cpu.max_fuel: 5 is below the allowed range 1000..100000000',
      '  - resources.cpu.timeout_seconds: a timeout is required (allowed: timeout_seconds 1..300 or timeout_ms 1..300000); add `timeout_seconds = 5` (or timeout_ms for finer steps) under [resources.cpu]',
      '',
    ].join('\n'),
  )
})

test('inspect lists a component’s imports and exports with WIT types', async (t) => {
  const [hello, runaway] = await Promise.all([cli('inspect', helloWasm), cli('inspect', example('runaway'))])
  t.deepEqual(hello, {
    code: 0,
    stdout: `component ${helloWasm}\nimports:\n  (none)\nexports:\n  greet: func(name: string) -> string\n`,
    stderr: '',
  })
  t.regex(
    runaway.stdout,
    /\nexports:\n {2}run: func\(\)\n$/,
    'a directory inspects the wasm its manifest names',
  )

  const types = await cli('inspect', typesWasm)
  t.regex(
    types.stdout,
    /imports:\n {2}test:types\/host@0\.1\.0: instance\n {4}point: type record \{ x: s32, y: s32 \}\n/,
  )
  t.regex(
    types.stdout,
    /\n {2}many-params: func\(a: u8, b: s64, c: string, d: f32\) -> tuple<u8, s64, string, f32>\n/,
  )
})

test('a .wasm file larger than maxModuleBytes is a CompileError (exit 3) before it is read', async (t) => {
  // inspect and run read the whole file first: 15 s and 5.9 GB for 1.9 GB, a usage error for 3 GB.
  const huge = path.join(scratch, 'huge.wasm')
  writeFileSync(huge, '')
  truncateSync(huge, 3 * 2 ** 30)
  const refused =
    /^ERR_WASM_COMPILE: .*huge\.wasm: the input is 3221225472 bytes, more than the engine's maxModuleBytes \(67108864\)\n$/
  for (const args of [
    ['inspect', huge],
    ['run', huge, '--memory', '65536'],
    ['types', huge],
  ]) {
    const outcome = await cli(...args)
    t.is(outcome.code, 3, args[0])
    t.regex(outcome.stderr, refused, args[0])
  }
})

test('inspect lists a core module’s imports and exports, also as JSON', async (t) => {
  const text = await cli('inspect', twoExportsWat)
  t.deepEqual(text, {
    code: 0,
    stdout: [
      `module ${twoExportsWat}`,
      'imports:',
      '  env.log: func(i32)',
      'exports:',
      '  memory: memory(min 1 pages)',
      '  one: func() -> i32',
      '  boom: func()',
      '',
    ].join('\n'),
    stderr: '',
  })
  const json = await cli('inspect', '--json', twoExportsWat)
  const output = JSON.parse(json.stdout) as { kind: string; imports: unknown[]; exports: { name: string }[] }
  t.is(output.kind, 'module')
  t.deepEqual(output.imports, [{ module: 'env', name: 'log', kind: 'func', type: 'func(i32)' }])
  t.deepEqual(
    output.exports.map((item) => item.name),
    ['memory', 'one', 'boom'],
  )
  const garbage = await cli('inspect', garbageWasm)
  t.is(garbage.code, 3)
  t.regex(garbage.stderr, /^ERR_WASM_COMPILE: /)
})

test('inspect and types list what Winch cannot compile: Cranelift has the last word', async (t) => {
  // Listings compile with Winch first (several times faster on large components); tail calls are
  // beyond it, and a listing must not depend on that.
  const tailCalls = file(
    'tail.wat',
    `(module (func $g (param i32) (result i32) local.get 0)
      (func (export "f") (param i32) (result i32) local.get 0 return_call $g))`,
  )
  t.deepEqual(await cli('inspect', tailCalls), {
    code: 0,
    stdout: [`module ${tailCalls}`, 'imports:', '  (none)', 'exports:', '  f: func(i32) -> i32', ''].join(
      '\n',
    ),
    stderr: '',
  })
  const tailComponent = file(
    'tail-component.wat',
    `(component
      (core module $m (func $g (param i32) (result i32) local.get 0)
        (func (export "f") (param i32) (result i32) local.get 0 return_call $g))
      (core instance $i (instantiate $m))
      (func (export "f") (param "x" u32) (result u32) (canon lift (core func $i "f"))))`,
  )
  const typed = await cli('types', tailComponent)
  t.is(typed.code, 0, typed.stderr)
  t.regex(typed.stdout, /f\(x: number\): number/)
})

for (const name of ['hello', 'runaway', 'memory-hog']) {
  test(`validate accepts the ${name} example without running it`, async (t) => {
    const result = await cli('validate', example(name))
    t.is(result.code, 0)
    t.is(result.stderr, '')
    t.true(
      result.stdout.startsWith(`${path.join(root, example(name), 'Component.toml')}: ok\n`),
      result.stdout,
    )
    t.regex(result.stdout, new RegExp(`\\n {2}component: ${name} 0\\.1\\.0 \\(${name}\\.wasm\\)\\n`))
  })
}

test('validate prints what the manifest grants, so that a plugin granting itself the network is seen', async (t) => {
  const granting = await cli('validate', example('capabilities'))
  t.is(granting.code, 0)
  t.regex(
    granting.stdout,
    /\n {2}grants: read "\.\/data\/\*\*"; network "127\.0\.0\.1:8080", "localhost:8080"; sleep\n/,
  )
  t.regex((await cli('validate', example('hello'))).stdout, /\n {2}grants: none\n/)
})

test('validate prints grants that differ by an invisible character apart', async (t) => {
  // Probes Z62 and H70: a zero-width space, a variation selector, a Hangul filler or a tag made
  // grants the manifest did not hold print as "./data/**".
  const dir = mkdtempSync(path.join(scratch, 'validate-invisible-'))
  writeFileSync(path.join(dir, 'g.wasm'), '(module (func (export "f")))')
  const invisible = ['\u200b', '\ufe0f', '\u3164', '\u{e0041}', '\u2065']
  const grants = invisible.map((char) => `"./data${char}/**"`).join(', ')
  writeFileSync(
    path.join(dir, 'Component.toml'),
    `[component]\nname = "g"\nversion = "0.1.0"\nwasm = "g.wasm"\n[resources.memory]\nmax_bytes = 1048576\n[resources.cpu]\nmax_fuel = 1000\ntimeout_ms = 10\n[permissions]\nfilesystem.read = [${grants}]\n`,
  )
  const result = await cli('validate', dir)
  t.is(result.code, 0, result.stderr)
  t.regex(
    result.stdout,
    /grants: read "\.\/data\\u200b\/\*\*", "\.\/data\\ufe0f\/\*\*", "\.\/data\\u3164\/\*\*", "\.\/data\\udb40\\udc41\/\*\*", "\.\/data\\u2065\/\*\*"\n/,
  )
})

test('validate refuses a memory limit below what the wasm starts with: every instance would fail', async (t) => {
  // A componentize-js guest starts with 145 pages, beyond the default policy's 4 MiB.
  const dir = mkdtempSync(path.join(scratch, 'validate-memory-'))
  writeFileSync(path.join(dir, 'big.wasm'), '(module (memory 100) (func (export "f")))')
  const manifest = (maxBytes: number) =>
    writeFileSync(
      path.join(dir, 'Component.toml'),
      `[component]\nname = "big"\nversion = "0.1.0"\nwasm = "big.wasm"\n[resources.memory]\nmax_bytes = ${maxBytes}\n[resources.cpu]\nmax_fuel = 1000\ntimeout_ms = 10\n`,
    )
  manifest(4 * MiB)
  const refused = await cli('validate', dir)
  t.is(refused.code, 2)
  t.is(
    refused.stderr,
    `ERR_WASM_CONFIG: resources.memory.max_bytes: ${4 * MiB} is less than the 6553600 bytes the wasm's memories start with together: every instance would fail\n`,
  )
  // Inside a component too (a module it never instantiates left out), and at exactly the limit it passes.
  writeFileSync(
    path.join(dir, 'big.wasm'),
    '(component (core module $m (memory 64)) (core module (memory 200)) (core instance (instantiate $m)))',
  )
  const exact = await cli('validate', dir)
  t.is(exact.code, 0, exact.stderr)
  manifest(4 * MiB - 65536)
  t.regex(
    (await cli('validate', dir)).stderr,
    /is less than the 4194304 bytes the wasm's memories start with/,
  )
  // One limit counts all the memories of an instance: two of 20 pages need 2.5 MiB; so do three
  // instances of a module of 12 pages, each under the limit alone (probe Z44).
  writeFileSync(path.join(dir, 'big.wasm'), '(module (memory 20) (memory 20))')
  manifest(2 * MiB)
  t.regex(
    (await cli('validate', dir)).stderr,
    /is less than the 2621440 bytes the wasm's memories start with/,
  )
  writeFileSync(
    path.join(dir, 'big.wasm'),
    `(component (core module $m (memory 12)) ${'(core instance (instantiate $m)) '.repeat(3)})`,
  )
  manifest(1 * MiB)
  const three = await cli('validate', dir)
  t.is(three.code, 2)
  t.regex(three.stderr, /1048576 is less than the 2359296 bytes the wasm's memories start with together/)
  // run says why, of the instance's memories together (the second made is over), not of one
  // memory's pages ("memory minimum size of 12 pages exceeds memory limits").
  const ran = await cli('run', dir, '--json')
  t.is(ran.code, 4)
  t.regex(
    ran.stdout,
    /instantiation exceeds its memory limit: memory growth to 1572864 bytes in total denied: limits\.memoryBytes is 1048576/,
  )
  // A table larger than max_table_elements likewise: run failed with ERR_WASM_HOST_LIMIT, exit 1.
  writeFileSync(path.join(dir, 'big.wasm'), '(module (table 20000 funcref) (func (export "f")))')
  manifest(1 * MiB)
  const table = await cli('validate', dir)
  t.is(table.code, 2)
  t.is(
    table.stderr,
    "ERR_WASM_CONFIG: resources.memory.max_table_elements: 10000 is less than the 20000 elements the wasm's largest table starts with: every instance would fail\n",
  )
  t.is((await cli('run', dir, '--invoke', 'f')).code, 4, 'instantiating it is a limit the guest hit')
})

test('validate --json prints the manifest; a broken one exits 2, bytes that are no wasm 3', async (t) => {
  const json = await cli('validate', example('hello'), '--json')
  const output = JSON.parse(json.stdout) as { ok: boolean; manifest: { resources: unknown } }
  t.true(output.ok)
  t.deepEqual(output.manifest.resources, {
    memory: { maxBytes: 2 * MiB, maxTableElements: 10_000 },
    cpu: { maxFuel: 10_000_000, timeoutMs: 1_000 },
  })

  const broken = mkdtempSync(path.join(scratch, 'validate-'))
  writeFileSync(path.join(broken, 'Component.toml'), '[component]\nname = "x"\nversion = "0.1.0"\n')
  const config = await cli('validate', broken)
  t.is(config.code, 2)
  t.regex(
    config.stderr,
    /^ERR_WASM_CONFIG: .* has 2 problems:\n {2}- component\.wasm: "x\.wasm" does not exist/,
  )
  t.regex(config.stderr, /\n {2}- resources: missing section; add:\n {4}\[resources\.memory\]\n/)

  const core = mkdtempSync(path.join(scratch, 'validate-core-'))
  copyFileSync(addWat, path.join(core, 'core.wasm'))
  writeFileSync(
    path.join(core, 'Component.toml'),
    '[component]\nname = "core"\nversion = "0.1.0"\n[resources.memory]\nmax_bytes = 1048576\n[resources.cpu]\nmax_fuel = 1000\ntimeout_ms = 10\n',
  )
  const module = await cli('validate', core)
  t.is(module.code, 0, module.stderr)
  t.regex(module.stdout, /\n {2}exports: add: func\(i64, i64\) -> i64\n/, 'a core module is checked too')
  writeFileSync(path.join(core, 'core.wasm'), '\0asm\x01\0\0\0 not a module')
  const compile = await cli('validate', core)
  t.is(compile.code, 3)
  t.regex(compile.stderr, /^ERR_WASM_COMPILE: /)
})

test('validate --json on a failure prints { ok: false, error } on stdout, exit code kept', async (t) => {
  const broken = mkdtempSync(path.join(scratch, 'validate-json-'))
  writeFileSync(path.join(broken, 'Component.toml'), '[component]\nname = "x"\nversion = "0.1.0"\n')
  const config = await cli('validate', broken, '--json')
  t.is(config.code, 2)
  const output = JSON.parse(config.stdout) as {
    ok: boolean
    error: { code: string; message: string; problems: { path: string }[] }
  }
  t.false(output.ok)
  t.is(output.error.code, 'ERR_WASM_CONFIG')
  t.deepEqual(
    output.error.problems.map((problem) => problem.path),
    ['component.wasm', 'resources'],
  )
  t.true(config.stderr.startsWith(`ERR_WASM_CONFIG: ${output.error.message}\n`))
  const missing = await cli('validate', path.join(scratch, 'nope'), '--json')
  t.is(missing.code, 2)
  t.like(JSON.parse(missing.stdout), { ok: false, error: { code: 'ERR_WASM_CONFIG' } })
})

test('the package bin is the built CLI with a node shebang', async (t) => {
  const { bin } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    bin: Record<string, string>
  }
  const built = path.join(root, bin['airssys-wasm'] ?? '')
  t.true(existsSync(built), `${built} is missing: run \`npm run build\` first`)
  t.true(readFileSync(built, 'utf8').startsWith('#!/usr/bin/env node\n'))
  const result = await spawnNode([built, 'run', example('hello'), 'from the bin'])
  t.deepEqual(result, { code: 0, stdout: '"Hello, from the bin!"\n', stderr: '' })
})

test('run executes a WASI command component, its stdout reaching the terminal', async (t) => {
  const { code, stdout, stderr } = await cli('run', example('wasi-tool'), '--invoke', 'wasi:cli/run#run')
  t.is(code, 0, stderr)
  t.regex(stdout, /^args: \nenv count: 0\n/)
})

/** Control characters a terminal acts on (C0 but newline and tab, DEL, C1); none may reach it raw. */
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/

test('inspect escapes the newlines and tabs of a name: a guest cannot forge lines of the listing', async (t) => {
  const forged = file(
    'forged.wat',
    '(module (func (export "x\\nimports:\\n  (none)\\texports:") (result i32) i32.const 1))',
  )
  const inspected = await cli('inspect', forged)
  t.is(inspected.code, 0, inspected.stderr)
  t.deepEqual(inspected.stdout.split('\n').slice(1), [
    'imports:',
    '  (none)',
    'exports:',
    '  x\\u000aimports:\\u000a  (none)\\u0009exports:: func() -> i32',
    '',
  ])
})

test('guest text reaches the terminal with its control characters escaped: error messages, names and output', async (t) => {
  // A guest that names its export with terminal escapes and writes them to its stdout and stderr.
  const red = file(
    'red.wat',
    `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "\\1b[31mred\\1b[0m\\0d\\07\\7f\\c2\\9b\\n")
      (func $say (param $fd i32)
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 18))
        (drop (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
      (func (export "\\1b[31mshout") (call $say (i32.const 1)) (call $say (i32.const 2))))`,
  )
  const [error, output, inspected] = await Promise.all([
    cli('run', red, '--memory', '65536', '--invoke', 'nope'),
    cli('run', red, '--memory', '65536'),
    cli('inspect', red),
  ])

  // The unknown-export error lists what the guest exports, under the guest's own names.
  t.is(error.code, 2)
  t.regex(error.stderr, /^ERR_WASM_TYPE: .*\\u001b\[31mshout/)
  t.notRegex(error.stderr, RAW_CONTROL)

  t.is(output.code, 0, output.stderr)
  const escaped = '\\u001b[31mred\\u001b[0m\\u000d\\u0007\\u007f\\u009b\n'
  t.is(output.stdout, escaped)
  t.is(output.stderr, escaped)

  t.is(inspected.code, 0, inspected.stderr)
  t.regex(inspected.stdout, /\\u001b\[31mshout: func\(\)/)
  t.notRegex(inspected.stdout, RAW_CONTROL)
})

test('what reorders or breaks lines on screen is escaped too, in output megabytes long and in error messages', async (t) => {
  // U+202E (right-to-left override), U+2028 (line separator), then 1.5 MiB of NULs: more than one
  // slice of what the CLI escapes at a time.
  const zeros = 3 * 512 * 1024
  const loud = file(
    'loud.wat',
    `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 32)
      (data (i32.const 16) "\\e2\\80\\ae\\e2\\80\\a8")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 6))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const ${zeros}))
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`,
  )
  const printed = await cli('run', loud, '--memory', String(4 * MiB))
  t.is(printed.code, 0, printed.stderr)
  t.is(printed.stdout, `\\u202e\\u2028${'\\u0000'.repeat(zeros)}`)
  // An import's name cannot print a line of its own in the link error.
  const forged = file('forged-import.wat', '(module (import "e\\nFAKE\\e2\\80\\ae" "f" (func)))')
  const linked = await cli('run', forged, '--memory', '65536')
  t.is(linked.code, 3)
  t.regex(linked.stderr, /^ERR_WASM_LINK: missing import\(s\): "e\\nFAKE\\u202e\.f": func\(\)\n$/)
})

/**
 * A guest's call that creates the file `ready` in its first preopen (`--dir-rw`), so that a spec
 * knows the guest runs; the guest's memory holds "ready" at 32.
 */
const MAKE_READY = `(drop (call $open (i32.const 3) (i32.const 0) (i32.const 32) (i32.const 5) (i32.const 1)
  (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 48)))`

/**
 * The file `name`: a WASI module running `body` (which may call `$write`, `$open` for
 * {@link MAKE_READY}, and use a local `$i`) as a command's `_start`, or as its start function
 * (`start`, with an empty export `quick` to `--invoke`). Its memory (`pages` of it) holds "ready"
 * at 32 and what `data` adds.
 */
function readyGuest(
  name: string,
  where: 'command' | 'start',
  body: string,
  pages: number,
  data = '',
): string {
  const code = `(local $i i32) ${body}`
  return file(
    name,
    `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_open"
        (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (memory (export "memory") ${pages})
      (data (i32.const 32) "ready")
      ${data}
      ${where === 'start' ? `(func $main ${code}) (start $main) (func (export "quick"))` : `(func (export "_start") ${code})`})`,
  )
}

/** A WASI command writing `chunks` chunks of 64 KiB to stdout, chunk i all of letter `a` + i % 26. */
function chunkWriter(chunks: number): string {
  return file(
    `chunks-${chunks}.wat`,
    `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 2)
      (func (export "_start") (local $i i32)
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $next
          (memory.fill (i32.const 65536)
            (i32.add (i32.const 97) (i32.rem_u (local.get $i) (i32.const 26))) (i32.const 65536))
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
          (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const ${chunks})))))
      )`,
  )
}

/** Whether `text` is exactly what {@link chunkWriter} writes for `chunks`. */
function isChunks(text: string, chunks: number): boolean {
  if (text.length !== chunks * 65536) return false
  for (let i = 0; i < chunks; i++) {
    if (text.slice(i * 65536, (i + 1) * 65536) !== String.fromCharCode(97 + (i % 26)).repeat(65536))
      return false
  }
  return true
}

test("a command's output is never dropped: a slow reader holds the guest back, and --json keeps it whole or says outputDropped", async (t) => {
  // Probe Z51: past 16 MiB waiting between two prints the oldest bytes were dropped, with exit 0:
  // `run tool.wasm > out` lost up to 55 MB of 101, a reader that started late 75 MB, and --json
  // kept the last 16 MiB of any longer output without outputDropped.
  const chunks = 640 // 40 MiB
  const child = cliProcess('run', chunkWriter(chunks), '--memory', String(MiB))
  // Nothing read for a while: the CLI's writes back up, and the guest's pipe fills.
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const [code] = (await once(child, 'close')) as [number | null]
  t.is(code, 0, stderr)
  t.is(stdout.length, chunks * 65536)
  t.true(isChunks(stdout, chunks), 'every chunk, in order')

  const whole = await cli('run', chunkWriter(320), '--memory', String(MiB), '--json')
  t.is(whole.code, 0, whole.stderr)
  const document = JSON.parse(whole.stdout) as { stdout: string; outputDropped?: boolean }
  t.true(isChunks(document.stdout, 320), '20 MiB kept whole')
  t.is(document.outputDropped, undefined)
  const tooLong = await cli('run', chunkWriter(1_100), '--memory', String(MiB), '--json')
  t.is(tooLong.code, 0, tooLong.stderr)
  const dropped = JSON.parse(tooLong.stdout) as { stdout?: string; outputDropped?: boolean }
  t.is(dropped.outputDropped, true, '69 MiB cannot fit a document')
  t.is(dropped.stdout, undefined)
})

test('SIGINT stops a run whose reader takes none of its output, from its command or its start function', async (t) => {
  // Probe H52: the guest's writes waited for the CLI and the CLI for the reader, and the first
  // Ctrl-C stopped the guest but not the wait (`run flood.wasm | less` until less was quit);
  // probe H53: the same for what a start function wrote, printed once instantiation ended.
  // Each guest makes the file `ready` in its --dir-rw directory, then writes to stdout: 64 MiB
  // from a command, which then waits on the CLI; 25 MiB, which the CLI takes whole while it
  // prints (a guest may be 32 MiB ahead of its reader), so the guest has ended and the signal
  // cuts the printing; and 25 MiB from a start function.
  const flood = (where: 'command' | 'start', writes: number) => {
    const body = `
      ${MAKE_READY}
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (loop $next
        (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const ${writes}))))`
    return readyGuest(`flood-${where}-${writes}.wat`, where, body, 2, '(data (i32.const 65536) "x")')
  }
  const cases = [
    ['command', 1024],
    ['command', 400],
    ['start', 400],
  ] as const
  for (const [where, writes] of cases) {
    const dir = mkdtempSync(path.join(scratch, 'flood-'))
    const extra = where === 'start' ? ['--invoke', 'quick'] : []
    // stdout is a pipe nobody reads: the CLI's writes back up, then the guest's pipe fills.
    const child = cliProcess('run', flood(where, writes), '--memory', String(MiB), '--dir-rw', dir, ...extra)
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
    // The other specs of this file start CLIs too: under their load the guest may start late.
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    while (!existsSync(path.join(dir, 'ready')) && child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    child.kill('SIGINT')
    const [code, signal] = await closed
    clearTimeout(killer)
    // Stopped as it says, a second after saying so when unprinted output keeps it from exiting.
    t.true(code === 130 || signal === 'SIGINT', `${where} ${writes}: ${code} ${signal}`)
    t.is(stderr, 'ABORT_ERR: the run was stopped by SIGINT\n', `${where} ${writes}`)
  }
})

test("the CLI's error line starts a line of its own after a guest's unfinished one", async (t) => {
  // Probe H52: a guest writing "E00" to stderr before it failed made the line
  // "E00ERR_WASM_TIMEOUT: ...": a guest chose the start of the CLI's error line.
  const unfinished = file(
    'unfinished.wat',
    `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "E00")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 3))
        (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
        unreachable))`,
  )
  const failed = await cli('run', unfinished, '--memory', '65536')
  t.is(failed.code, 4)
  t.regex(failed.stderr, /^E00\nERR_WASM_TRAP_UNREACHABLE: /)
  // Probe H53: on a terminal, or with 2>&1, stdout shares stderr's lines, so an unfinished stdout
  // line counts too; with stdout elsewhere it does not.
  const unfinishedOut = file(
    'unfinished-stdout.wat',
    readFileSync(unfinished, 'utf8').replace('(i32.const 2)', '(i32.const 1)'),
  )
  const elsewhere = await cli('run', unfinishedOut, '--memory', '65536')
  t.is(elsewhere.stdout, 'E00')
  t.regex(elsewhere.stderr, /^ERR_WASM_TRAP_UNREACHABLE: /)
  const both = path.join(scratch, 'both.txt')
  const fd = openSync(both, 'w')
  const child = spawn(process.execPath, cliArgs('run', unfinishedOut, '--memory', '65536'), {
    cwd: root,
    stdio: ['ignore', fd, fd],
  })
  const [code] = (await once(child, 'close')) as [number | null]
  closeSync(fd)
  t.is(code, 4)
  t.regex(readFileSync(both, 'utf8'), /^E00\nERR_WASM_TRAP_UNREACHABLE: /)
})

const wasiFixtures = { component: wasiComponentWasm, module: wasiModuleWasm } as const
/** Enough memory for the Rust fixture guest; a bare .wasm needs --memory. */
const WASI_MEMORY = ['--memory', String(16 * MiB)]

for (const kind of ['component', 'module'] as const) {
  const wasm = wasiFixtures[kind]

  test(`run of a WASI ${kind} command passes the words after the file as its argv, and --env`, async (t) => {
    const [words, flags] = await Promise.all([
      cli('run', wasm, ...WASI_MEMORY, '--env', 'MESSAGE=hi there', 'echo', 'one', 'two words'),
      // --arg words come first (--arg=-a for one that starts with "-"); after -- every word is the guest's.
      cli('run', wasm, ...WASI_MEMORY, '--arg', 'echo', '--arg=-a', '--', '-b', '\u001b[31mred'),
    ])
    // The command is argv[1]: had argv[0] (the file) been left out, "one" would be the command.
    t.deepEqual(words, {
      code: 0,
      stdout: 'args: one two words\nenv count: 1\n',
      stderr: 'env MESSAGE=hi there\n',
    })
    t.deepEqual(flags, {
      code: 0,
      stdout: 'args: -a -b \\u001b[31mred\nenv count: 0\n',
      stderr: 'env MESSAGE=<unset>\n',
    })
  })

  test(`run of a WASI ${kind} command exits with the guest's exit code`, async (t) => {
    const [zero, three] = await Promise.all([
      cli('run', wasm, ...WASI_MEMORY, 'exit', '0'),
      cli('run', wasm, ...WASI_MEMORY, 'exit', '3'),
    ])
    t.deepEqual(zero, { code: 0, stdout: '', stderr: '' })
    // Rust's std on wasip2 reports any non-zero exit as 1 (wasi:cli/exit takes a result).
    t.deepEqual(three, { code: kind === 'module' ? 3 : 1, stdout: '', stderr: '' })
  })

  test(`run of a WASI ${kind} command reads --stdin from a file or from the CLI's own stdin`, async (t) => {
    const input = file(`stdin-${kind}.txt`, 'from a file ✓\nline two')
    const [fromFile, fromPipe, none] = await Promise.all([
      cli('run', wasm, ...WASI_MEMORY, '--stdin', input, 'stdin'),
      cliWithInput('piped ✓', 'run', wasm, ...WASI_MEMORY, '--stdin', '-', 'stdin'),
      cliWithInput('not given to the guest', 'run', wasm, ...WASI_MEMORY, 'stdin'),
    ])
    t.deepEqual(fromFile, { code: 0, stdout: 'stdin: from a file ✓\nline two\n', stderr: '' })
    t.deepEqual(fromPipe, { code: 0, stdout: 'stdin: piped ✓\n', stderr: '' })
    t.deepEqual(none, { code: 0, stdout: 'stdin: \n', stderr: '' }, 'without --stdin the guest reads nothing')
    const missing = await cli('run', wasm, ...WASI_MEMORY, '--stdin', path.join(scratch, 'nope.txt'), 'stdin')
    t.is(missing.code, 2)
    t.regex(missing.stderr, /^ERR_USAGE: --stdin .*nope\.txt: cannot read it: ENOENT\n/)
  })

  test(`run of a WASI ${kind} command refuses an endless --stdin instead of reading it all`, async (t) => {
    // The guest's stdin is held in memory whole: `yes |` grew the CLI without bound.
    const endless = await cli('run', wasm, ...WASI_MEMORY, '--stdin', '/dev/zero', 'stdin')
    t.is(endless.code, 2)
    t.regex(endless.stderr, /^ERR_USAGE: --stdin \/dev\/zero: more than 64 MiB/)
  })

  test(`run of a WASI ${kind} command writes only in --dir-rw directories; --dir is read-only`, async (t) => {
    const writable = mkdtempSync(path.join(scratch, 'rw-'))
    const readOnly = mkdtempSync(path.join(scratch, 'ro-'))
    writeFileSync(path.join(readOnly, 'in.txt'), 'readable')
    const dirs = ['--dir-rw', `${writable}::/out`, '--dir', `${readOnly}::/in`]
    const [write, read, refused, unmapped] = await Promise.all([
      cli('run', wasm, ...WASI_MEMORY, ...dirs, 'write', '/out/new.txt'),
      cli('run', wasm, ...WASI_MEMORY, ...dirs, 'cat', '/in/in.txt'),
      cli('run', wasm, ...WASI_MEMORY, ...dirs, 'write', '/in/new.txt'),
      // Without ::GUEST the guest sees the directory under the path as written.
      cli('run', wasm, ...WASI_MEMORY, '--dir-rw', writable, 'write', path.join(writable, 'same.txt')),
    ])
    t.deepEqual(write, { code: 0, stdout: 'wrote /out/new.txt\n', stderr: '' })
    t.is(readFileSync(path.join(writable, 'new.txt'), 'utf8'), 'x', 'the write landed on the host')
    t.deepEqual(read, { code: 0, stdout: 'readable', stderr: '' })
    t.is(refused.code, kind === 'module' ? 3 : 1)
    t.regex(refused.stderr, /^cannot write \/in\/new\.txt: /)
    t.false(existsSync(path.join(readOnly, 'new.txt')))
    t.is(unmapped.code, 0, unmapped.stderr)
    t.true(existsSync(path.join(writable, 'same.txt')))
  })

  test(`run of a WASI ${kind} with --invoke calls the export as before, --arg giving its argv`, async (t) => {
    const name = kind === 'module' ? '_start' : 'wasi:cli/run#run'
    const result = await cli(
      'run',
      wasm,
      ...WASI_MEMORY,
      '--invoke',
      name,
      '--arg',
      'echo',
      '--arg',
      'x',
      '--json',
    )
    t.is(result.code, 0, result.stderr)
    // Under --json stdout is one JSON document: the guest's output is in it, not before it.
    const output = JSON.parse(result.stdout) as {
      result: unknown
      metrics: { peakMemoryBytes: number }
      stdout: string
      stderr: string
    }
    t.is(output.result, null)
    t.is(output.stdout, 'args: x\nenv count: 0\n')
    t.is(output.stderr, 'env MESSAGE=<unset>\n')
    t.is(result.stderr, '', "the guest's stderr is in the document too")
    t.true(output.metrics.peakMemoryBytes > 0)
    const exit = await cli('run', wasm, ...WASI_MEMORY, '--invoke', name, '--arg', 'exit', '--arg', '3')
    t.is(exit.code, 1, 'an --invoke call that exits is a failure, as before')
    t.regex(exit.stderr, /^ERR_WASM_EXIT: /)
  })
}

test('run of a WASI command with --json prints one document of its metrics and output', async (t) => {
  // It was a usage error, though the README's `run ... --json` prints the metrics for any run (probe D2).
  for (const wasm of [wasiModuleWasm, wasiComponentWasm]) {
    const [ran, exited] = await Promise.all([
      cli('run', wasm, ...WASI_MEMORY, '--json', 'echo', 'hi'),
      cli('run', wasm, ...WASI_MEMORY, '--json', 'exit', '3'),
    ])
    t.is(ran.code, 0, ran.stderr)
    const document = JSON.parse(ran.stdout) as {
      result: unknown
      metrics: { elapsedMs: number }
      stdout: string
    }
    t.is(document.result, null)
    t.true(document.metrics.elapsedMs >= 0)
    t.regex(document.stdout, /hi/)
    const code = wasm === wasiModuleWasm ? 3 : 1
    t.is(exited.code, code, 'the exit code, as without --json')
    t.like(JSON.parse(exited.stdout), { error: { code: 'ERR_WASM_EXIT', exitCode: code } })
  }
})

test('run of a WASI command refuses bad --dir, --env values with usage errors', async (t) => {
  const [missing, file_, env] = await Promise.all([
    cli('run', wasiModuleWasm, ...WASI_MEMORY, '--dir', path.join(scratch, 'nope'), 'echo'),
    cli('run', wasiModuleWasm, ...WASI_MEMORY, '--dir-rw', `${addWat}::/x`, 'echo'),
    cli('run', wasiModuleWasm, ...WASI_MEMORY, '--env', 'AIRSSYS_SURELY_UNSET', 'echo'),
  ])
  t.is(missing.code, 2)
  t.regex(missing.stderr, /^ERR_USAGE: --dir .*nope: cannot use .*: ENOENT\n/)
  t.is(file_.code, 2)
  t.regex(file_.stderr, /^ERR_USAGE: --dir-rw .*: .*add\.wat is not a directory\n/)
  t.is(env.code, 2)
  t.regex(env.stderr, /^ERR_USAGE: --env AIRSSYS_SURELY_UNSET: AIRSSYS_SURELY_UNSET is not set here/)
})

test("run of a manifest's WASI command: argv and exit code, its files only from its grants", async (t) => {
  const [cat, exit, dir] = await Promise.all([
    cli('run', example('wasi-tool'), 'cat', '/data/hello.txt'),
    cli('run', example('wasi-tool'), 'exit', '3'),
    cli('run', example('wasi-tool'), '--dir', scratch, 'cat', '/data/hello.txt'),
  ])
  t.deepEqual(cat, { code: 0, stdout: 'read through a WASI preopen\n', stderr: '' })
  t.deepEqual(exit, { code: 1, stdout: '', stderr: '' })
  t.is(dir.code, 2)
  t.regex(
    dir.stderr,
    /^ERR_USAGE: --dir and --dir-rw are for a bare \.wasm: a manifest's files are its \[permissions\]/,
  )
  // A filesystem.write grant: the same writable preopen as through loadComponent.
  const granted = mkdtempSync(path.join(scratch, 'granted-'))
  copyFileSync(wasiComponentWasm, path.join(granted, 'tool.wasm'))
  mkdirSync(path.join(granted, 'scratch'))
  writeFileSync(
    path.join(granted, 'Component.toml'),
    [
      '[component]\nname = "tool"\nversion = "0.1.0"\nwasm = "tool.wasm"',
      '[resources.memory]\nmax_bytes = 4194304',
      '[resources.cpu]\nmax_fuel = 100000000\ntimeout_seconds = 5',
      '[permissions]\nfilesystem.write = ["./scratch"]',
    ].join('\n'),
  )
  const write = await cli('run', granted, 'write', '/scratch/made.txt')
  t.deepEqual(write, { code: 0, stdout: 'wrote /scratch/made.txt\n', stderr: '' })
  t.true(existsSync(path.join(granted, 'scratch', 'made.txt')))
  // A preview 1 module named by the manifest runs the same way (its exit code kept whole).
  copyFileSync(wasiModuleWasm, path.join(granted, 'tool.wasm'))
  const [moduleWrite, moduleExit] = await Promise.all([
    cli('run', granted, 'write', '/scratch/by-module.txt'),
    cli('run', granted, 'exit', '3'),
  ])
  t.deepEqual(moduleWrite, { code: 0, stdout: 'wrote /scratch/by-module.txt\n', stderr: '' })
  t.true(existsSync(path.join(granted, 'scratch', 'by-module.txt')))
  t.deepEqual(moduleExit, { code: 3, stdout: '', stderr: '' })
})

/**
 * Runs the CLI's `run` with `args` while the reader of its output leaves: at the first bytes on
 * `stdout` or `stderr` (as `head -c 10` does), or at once. Bounded, should the run go on: then it
 * is killed, and `signal` says so.
 */
async function runWhileReaderLeaves(
  args: string[],
  leaves: 'stdout' | 'stderr' | 'stdout-at-once',
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = cliProcess('run', ...args)
  let stderr = ''
  if (leaves === 'stdout-at-once') child.stdout.destroy()
  else child[leaves].once('data', () => child[leaves].destroy())
  if (leaves !== 'stderr') child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(killer)
  return { code, signal, stderr }
}

/** A WASI command, in the scratch file `name`, that writes `y\n` to `fd` until a write fails (as `yes` does). */
function writesUntilFailure(name: string, fd: number): string {
  return file(
    name,
    `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 8) "y\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 8))
        (i32.store (i32.const 4) (i32.const 2))
        (block $failed (loop $again
          (br_if $failed (call $write (i32.const ${fd}) (i32.const 0) (i32.const 1) (i32.const 16)))
          (br $again)))))`,
  )
}

/**
 * Runs a WASI guest that spins for ever, and sends the CLI `signal` once it is there: `command`,
 * a command that says `y` on stdout, creates `ready` in its --dir-rw directory and spins; `start`,
 * a module whose start function does the same (run with --invoke); `stdin`, the command run with
 * `--stdin FIFO`, signalled while it waits for the FIFO's writer to finish.
 */
async function interruptedRun(
  signal: NodeJS.Signals,
  where: 'command' | 'start' | 'stdin',
  ...flags: string[]
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const spin = `
      (i32.store (i32.const 0) (i32.const 8))
      (i32.store (i32.const 4) (i32.const 2))
      (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
      ${MAKE_READY}
      (loop $spin (br $spin))`
  const wasm = readyGuest(
    `spins-${where}.wat`,
    where === 'start' ? 'start' : 'command',
    spin,
    1,
    '(data (i32.const 8) "y\\n")',
  )
  const dir = mkdtempSync(path.join(scratch, 'signal-'))
  const fifo = path.join(dir, 'stdin')
  if (where === 'stdin') execFileSync('mkfifo', [fifo])
  const extra = where === 'start' ? ['--invoke', 'quick'] : where === 'stdin' ? ['--stdin', fifo] : []
  const child = cliProcess('run', wasm, '--memory', '65536', '--dir-rw', dir, ...extra, ...flags)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  // Opening a FIFO to write waits for its reader: the CLI, reading its stdin.
  const writer = where === 'stdin' ? await open(fifo, 'w') : undefined
  while (writer === undefined && !existsSync(path.join(dir, 'ready')) && child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  child.kill(signal)
  const [code, ended] = await closed
  clearTimeout(killer)
  await writer?.close()
  return { code, signal: ended, stdout, stderr }
}

test('run stopped by SIGINT or SIGTERM stops the guest, says so and exits 128 + the signal', async (t) => {
  // Node's default ended the process at once: a --json run printed no document, and what the
  // guest had printed was lost (an open item of the last notes).
  const json = await interruptedRun('SIGINT', 'command', '--json')
  t.like(json, { code: 130, signal: null }, json.stderr)
  const document = JSON.parse(json.stdout) as { error: unknown; stdout: unknown; metrics: unknown }
  t.like(document.error, { code: 'ABORT_ERR', message: 'the run was stopped by SIGINT' })
  t.is(document.stdout, 'y\n')
  t.is(typeof document.metrics, 'object')
  const plain = await interruptedRun('SIGTERM', 'command')
  t.like(plain, {
    code: 143,
    signal: null,
    stdout: 'y\n',
    stderr: 'ABORT_ERR: the run was stopped by SIGTERM\n',
  })
})

test("a signal stops run's guest in its start function too, and while run reads --stdin", async (t) => {
  // Neither listened: a start function ran on (until its deadline, or for ever without one), and
  // a signal waited for stdin's end (probe H21).
  const start = await interruptedRun('SIGINT', 'start', '--json')
  t.like(start, { code: 130, signal: null }, start.stderr)
  t.like(JSON.parse(start.stdout), { error: { code: 'ABORT_ERR', message: 'the run was stopped by SIGINT' } })
  // Its read of the FIFO cannot be cancelled, and keeps the process from exiting: it ends by the
  // signal once it has said so.
  const stdin = await interruptedRun('SIGTERM', 'stdin')
  t.like(stdin, { stdout: '', stderr: 'ABORT_ERR: the run was stopped by SIGTERM\n' })
  t.true(stdin.code === 143 || stdin.signal === 'SIGTERM', `${stdin.code} ${stdin.signal}`)
})

test('run printing into a reader that closes early (| head) ends quietly, not with an EPIPE crash', async (t) => {
  const { code, stderr } = await runWhileReaderLeaves(
    [wasiModuleWasm, ...WASI_MEMORY, 'spam', String(4 * MiB)],
    'stdout',
  )
  t.notRegex(stderr, /Unhandled 'error' event|EPIPE/)
  // Done before the reader left (0), or stopped then, as a writer killed by SIGPIPE (141).
  t.true(code === 0 || code === 141, `${code}: ${stderr}`)
})

test('run --json keeps its outcome when the guest printed more than its document can hold, and says so', async (t) => {
  // 12 MiB of ESC (72 MiB as escaped JSON) made a command that exited 0 an ERR_WASM_HOST_LIMIT
  // with status 1, and a failed one lost its output with nothing said (probe Z6).
  const flood = path.join(scratch, 'flood.wat')
  const wat = (exit: number) => `(module
      (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 2)
      (func (export "_start") (local $i i32)
        (memory.fill (i32.const 1024) (i32.const 27) (i32.const 65536))
        (i32.store (i32.const 0) (i32.const 1024))
        (i32.store (i32.const 4) (i32.const 65536))
        (loop $again
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 16)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $again (i32.lt_u (local.get $i) (i32.const 192))))
        (call $exit (i32.const ${exit}))))`
  for (const exit of [0, 3]) {
    writeFileSync(flood, wat(exit))
    const { code, stdout } = await cli('run', flood, '--memory', String(2 * 65536), '--json')
    t.is(code, exit)
    const document = JSON.parse(stdout) as Record<string, unknown>
    t.true(document.outputDropped, `exit ${exit}`)
    t.false('stdout' in document)
    t.true('metrics' in document)
    if (exit === 0) t.is(document.result, null)
    else t.like(document.error, { code: 'ERR_WASM_EXIT', exitCode: 3 })
  }
})

test('run --json of a result too large to print keeps the metrics and output of the call that made it', async (t) => {
  // The call ran, but its document was only { error }: neither shape the README gives (probe Z13).
  const big = file(
    'big-string.wat',
    `(component
      (core module $m
        (memory (export "memory") 200)
        (func (export "nul") (param i32) (result i32)
          (i32.store (i32.const 0) (i32.const 16))
          (i32.store (i32.const 4) (local.get 0))
          i32.const 0))
      (core instance $i (instantiate $m))
      (func (export "nul") (param "n" u32) (result string)
        (canon lift (core func $i "nul") (memory (core memory $i "memory")))))`,
  )
  // 12,000,000 NULs print as 72,000,000 characters of \u0000.
  const { code, stdout } = await cli(
    'run',
    big,
    '--invoke',
    'nul',
    '12000000',
    '--memory',
    String(16 * MiB),
    '--json',
  )
  t.is(code, 4, 'a limit the guest hit, as a trap')
  const document = JSON.parse(stdout) as { error: { code: string }; metrics?: { peakMemoryBytes: number } }
  t.is(document.error.code, 'ERR_WASM_HOST_LIMIT')
  t.is(document.metrics?.peakMemoryBytes, 200 * 65536)
  t.like(document, { stdout: '', stderr: '' })
})

test("run stops a command that writes for ever once stdout's reader closes it (| head)", async (t) => {
  // Its writes never failed (its output is piped through the CLI), so a command that would stop
  // at its first failed write ran until its deadline, or for ever without one (probe Z6).
  const yes = writesUntilFailure('yes.wat', 1)
  const { code, signal, stderr } = await runWhileReaderLeaves([yes, '--memory', '65536'], 'stdout')
  t.is(signal, null, 'it stopped by itself')
  t.is(code, 141, stderr)
  t.is(stderr, '')
})

test('run reports a write the output device refused in one line and exits 1, the guest stopped', async (t) => {
  // Probe H71: stdout on a full device (ENOSPC) ended the CLI with Node's uncaught exception and
  // its stack, as a bug of ours would.
  const full = openSync('/dev/full', 'w')
  try {
    const child = spawn(
      process.execPath,
      cliArgs('run', wasiModuleWasm, ...WASI_MEMORY, 'spam', String(MiB)),
      {
        cwd: root,
        stdio: ['ignore', full, 'pipe'],
      },
    )
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const [code] = (await once(child, 'close')) as [number | null]
    t.is(code, 1, stderr)
    t.regex(stderr, /^ENOSPC: .*no space left on device.*\n$/)
    t.notRegex(stderr, /\n\s+at /, 'no stack')
  } finally {
    closeSync(full)
  }
})

test("run exits 141 when stderr's reader leaves, or when a reader leaves before a finished guest's output is printed", async (t) => {
  // Only stdout's EPIPE stopped the guest: one writing stderr alone into `2>&1 | head` ran for
  // ever; and a guest that had finished exited with its own status though its output was lost
  // (probe H16).
  const toStderr = writesUntilFailure('stderr-flood.wat', 2)
  t.like(await runWhileReaderLeaves([toStderr, '--memory', '65536'], 'stderr'), { code: 141, signal: null })
  t.like(
    await runWhileReaderLeaves([wasiModuleWasm, ...WASI_MEMORY, 'spam', String(4 * MiB)], 'stdout-at-once'),
    { code: 141, signal: null },
  )
})
