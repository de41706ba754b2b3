/**
 * Where the gap to V8 on tight loops comes from: the same export under each of wasmtime's code
 * generation settings (epoch checks off and on, fuel, Cranelift's optimizer off, Winch), measured
 * by crate/examples/codegen_ab.rs straight on wasmtime (no N-API, no JS), beside V8 in this
 * process. `fib` by iteration is the extreme (one add per loop step); matmul and mandelbrot are
 * the two real programs furthest from V8 (their float loops), when fixtures/programs is built.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Engine } from '../lib/index.js'
import { expectEqual, type Row, type Scenario } from './harness.js'
import { BUILD_DIR, PROGRAMS } from './programs.js'
import { fibModuleBytes } from './wasm.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const FIB_STEPS = 100_000_000n

/** Each setting of codegen_ab.rs, with what it means. */
const SETTINGS: Record<string, string> = {
  cranelift: 'Cranelift, no epoch checks, no fuel: the code generator alone (no deadline can stop it)',
  'cranelift+epochs': 'Cranelift with epoch checks (what every engine of ours compiles in, for deadlines)',
  'cranelift+fuel': 'Cranelift with fuel metering and no epoch checks',
  'cranelift+epochs+fuel': 'both: what new Engine({ fuel: true }) compiles',
  'cranelift-opt-none+epochs': "Cranelift's optimizer off, with epoch checks",
  winch: 'Winch (baseline compiler), no epoch checks',
  'winch+epochs': "Winch with epoch checks: what new Engine({ compiler: 'winch' }) compiles",
}

interface Measured {
  setting: string
  medianMs: number
  samplesMs: number[]
  result: string
}

/** Builds the example (incremental after the first time) and returns its path. */
function buildExample(): string {
  const out = execFileSync(
    'cargo',
    ['build', '--release', '--example', 'codegen_ab', '-p', 'airssys-wasm', '--message-format=json'],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 },
  )
  const executable = out
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map(
      (line) =>
        JSON.parse(line) as { reason?: string; executable?: string | null; target?: { name?: string } },
    )
    .find(
      (message) => message.reason === 'compiler-artifact' && message.target?.name === 'codegen_ab',
    )?.executable
  if (!executable) throw new Error('cargo built no codegen_ab executable')
  return executable
}

interface Subject {
  id: string
  title: string
  file: string
  exportName: string
  /** The argument as codegen_ab takes it (`L` suffix: i64) and as V8 takes it. */
  arg: string
  v8Arg: number | bigint
}

/** V8's times for `subject`, warmed up until TurboFan has the loop. */
function timeV8(subject: Subject, runs: number): { samplesMs: number[]; result: string } {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(subject.file)))
  const run = instance.exports[subject.exportName] as (arg: number | bigint) => number | bigint
  let result = ''
  for (let warm = 0; warm < 5; warm++) result = String(run(subject.v8Arg))
  const samplesMs: number[] = []
  for (let index = 0; index < runs; index++) {
    const started = process.hrtime.bigint()
    run(subject.v8Arg)
    samplesMs.push(Number(process.hrtime.bigint() - started) / 1e6)
  }
  return { samplesMs, result: BigInt.asIntN(64, BigInt(result)).toString() }
}

export const codegen: Scenario = {
  name: 'codegen',
  title: 'Tight loops: an A/B of code generation settings (wasmtime alone) beside V8',
  async setup(mode) {
    const runs = mode.quick ? 3 : 7
    const example = buildExample()
    const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-codegen-'))
    const fibFile = path.join(scratch, 'fib.wasm')
    writeFileSync(fibFile, fibModuleBytes)
    const subjects: Subject[] = [
      {
        id: 'fib',
        title: `fib(${FIB_STEPS.toLocaleString('en-US')})`,
        file: fibFile,
        exportName: 'fib',
        arg: `${FIB_STEPS}L`,
        v8Arg: FIB_STEPS,
      },
    ]
    for (const name of ['matmul', 'mandelbrot']) {
      const program = PROGRAMS.find((candidate) => candidate.name === name)
      const file = path.join(BUILD_DIR, `${name}.wasm`)
      if (program && existsSync(file)) {
        subjects.push({
          id: name,
          title: `${name}(${program.n})`,
          file,
          exportName: `prog_${name}`,
          arg: String(program.n),
          v8Arg: program.n,
        })
      }
    }

    // The same fib through the addon: what a call of ours with a deadline runs.
    const ours = new Engine()
      .compileModuleSync(fibModuleBytes)
      .instantiateSync({ limits: { memoryBytes: 0 } })
    const rows: Row[] = []
    for (const subject of subjects) {
      const v8 = timeV8(subject, runs)
      const lines = execFileSync(example, [subject.file, subject.exportName, subject.arg, String(runs)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      const measured = lines
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Measured)
      const baseline = `${subject.id}-v8`
      rows.push({
        id: baseline,
        title: `Node: ${subject.title}`,
        note: `Baseline. ${subject.title} on V8 (TurboFan after 5 warm-up calls), in this process.`,
        unit: 'ns',
        samples: () => v8.samplesMs.map((ms) => ms * 1e6),
      })
      for (const { setting, samplesMs, result } of measured) {
        expectEqual(`${subject.id} ${setting} result`, result, v8.result)
        rows.push({
          id: `${subject.id}-${setting}`,
          title: `${subject.title}: ${setting}`,
          note: `${SETTINGS[setting] ?? setting}. Ratio: to V8 and to Cranelift without checks.`,
          baselines: setting === 'cranelift' ? [baseline] : [baseline, `${subject.id}-cranelift`],
          unit: 'ns',
          samples: () => samplesMs.map((ms) => ms * 1e6),
        })
      }
      if (subject.id === 'fib') {
        expectEqual(
          'fib through the addon',
          String(ours.callSync('fib', [FIB_STEPS], { timeoutMs: 60_000 })),
          v8.result,
        )
        const samplesMs: number[] = []
        for (let index = 0; index < runs; index++) {
          const started = process.hrtime.bigint()
          ours.callSync('fib', [FIB_STEPS], { timeoutMs: 60_000 })
          samplesMs.push(Number(process.hrtime.bigint() - started) / 1e6)
        }
        rows.push({
          id: 'fib-addon',
          title: `${subject.title}: callSync with timeoutMs`,
          note:
            'The same fib through airssys-wasm (new Engine(), a far deadline, so the epoch ticker runs). ' +
            'Ratio: to V8 and to the cranelift+epochs setting, which is the same machine code. On this VM ' +
            'a call of it takes either ~50 ms (that setting) or ~85–95 ms, in runs of several calls, with ' +
            'or without a deadline (20-call series): the machine, not the call (see BENCHMARKING.md).',
          baselines: ['fib-v8', 'fib-cranelift+epochs'],
          unit: 'ns',
          samples: () => samplesMs.map((ms) => ms * 1e6),
        })
      }
    }
    return {
      rows,
      teardown: () => {
        ours.dispose()
        rmSync(scratch, { recursive: true, force: true })
      },
    }
  },
}
