/**
 * Component calls with strings: the value goes through the canonical ABI (lowered into the guest's
 * memory with its realloc, lifted back). Node's WebAssembly has no component model, so these are
 * absolute; the raw core add call is measured alongside for context.
 */
import { Engine } from '../lib/index.js'
import { helloWasm, typesImports, typesWasm } from '../fixtures/index.js'
import { expectEqual, KiB, MiB, type Scenario } from './harness.js'
import { jcoComponent } from './jco.js'
import { coreModuleBytes } from './wasm.js'

/** 1 KiB of text: 1024 UTF-8 bytes, mostly ASCII with a few multi-byte characters. */
function text1KiB(): string {
  const unit = 'airssys-wasm ü€ '
  let text = ''
  while (new TextEncoder().encode(text + unit).length <= 1024) text += unit
  return text + 'x'.repeat(1024 - new TextEncoder().encode(text).length)
}

export const componentCall: Scenario = {
  name: 'component-call',
  title: 'Component call (strings)',
  async setup() {
    const engine = new Engine()
    const core = engine
      .compileModuleSync(coreModuleBytes)
      .instantiateSync({ limits: { memoryBytes: 64 * KiB } })
    const types = engine.compileComponentSync(typesWasm).instantiateSync({
      // 16 MiB: the Val path of a 1 MiB list<u8> copies 8 times its bytes or more (hostcall fuel).
      limits: { memoryBytes: 16 * MiB },
      imports: typesImports(),
    })
    const hello = engine.compileComponentSync(helloWasm).instantiateSync({ limits: { memoryBytes: 2 * MiB } })
    const text = text1KiB()
    const bytes1k = Uint8Array.from({ length: KiB }, (_, index) => index & 255)
    const array1k = Array.from(bytes1k)
    const bytes1m = Uint8Array.from({ length: MiB }, (_, index) => (index * 7) & 255)
    const array1m = Array.from(bytes1m)
    const results1000 = Array.from({ length: 1000 }, (_, index) =>
      index % 2 === 0 ? { tag: 'ok', val: index } : { tag: 'err', val: `e${index}` },
    )
    const person = { firstName: 'Ada Lovelace', age: 36, tags: ['mathematics', 'engines', 'notes'] }
    const jco = await jcoComponent(typesWasm)
    expectEqual(
      'jco roundtripRecord',
      JSON.stringify(jco.roundtripRecord!(person)),
      JSON.stringify(types.callSync('roundtrip-record', [person])),
    )
    expectEqual(
      'jco roundtripResults',
      JSON.stringify(jco.roundtripResults!(results1000)),
      JSON.stringify(types.callSync('roundtrip-results', [results1000])),
    )
    expectEqual('jco roundtripString', jco.roundtripString!(text), text)
    expectEqual('jco roundtripListU8', (jco.roundtripListU8!(bytes1k) as Uint8Array).length, KiB)
    expectEqual(
      'callSync roundtrip-list-u8',
      (types.callSync('roundtrip-list-u8', [bytes1k]) as Uint8Array).length,
      KiB,
    )
    expectEqual('1 KiB text', new TextEncoder().encode(text).length, 1024)
    expectEqual('callSync roundtrip-string', types.callSync('roundtrip-string', [text]), text)
    expectEqual('callSync greet', hello.callSync('greet', ['world']), 'Hello, world!')
    expectEqual('callSync numbers#add', types.callSync('test:types/numbers@0.1.0#add', [2, 3]), 5)
    expectEqual('callSync core add', core.callSync('add', [2, 3]), 5)

    return {
      rows: [
        {
          id: 'jco-roundtrip-string-1k',
          title: 'jco: roundtripString(1 KiB)',
          note:
            'Baseline: the same types fixture transpiled by jco (JS + core wasm on V8, no sandbox), ' +
            'the same 1 KiB string round trip: the Node alternative for components.',
          run: () => {
            jco.roundtripString!(text)
          },
        },
        {
          id: 'jco-list-u8-1k',
          title: 'jco: roundtripListU8(1 KiB)',
          note: 'Baseline: jco, a 1 KiB Uint8Array round trip.',
          run: () => {
            jco.roundtripListU8!(bytes1k)
          },
        },
        {
          id: 'jco-list-u8-1m',
          title: 'jco: roundtripListU8(1 MiB)',
          note: 'Baseline: jco, a 1 MiB Uint8Array round trip.',
          run: () => {
            jco.roundtripListU8!(bytes1m)
          },
        },
        {
          id: 'jco-roundtrip-record',
          title: 'jco: roundtripRecord(person)',
          note: 'Baseline: jco, a record { first-name: string, age: u8, tags: list<string> } round trip.',
          run: () => {
            jco.roundtripRecord!(person)
          },
        },
        {
          id: 'jco-list-result-1000',
          title: 'jco: roundtripResults(1,000 × result<u32, string>)',
          note: 'Baseline: jco, the same list of 1,000 results in and out.',
          run: () => {
            jco.roundtripResults!(results1000)
          },
        },
        {
          id: 'jco-call-log',
          title: "jco: callLog('x')",
          note: 'Baseline: jco, a guest export that calls a JS host import (log) once.',
          run: () => {
            jco.callLog!('x')
          },
        },
        {
          id: 'call-log',
          title: "callSync('call-log', ['x'])",
          note:
            'The same guest export calling the JS host import once, on the JS thread (callSync). ' +
            'Ratio: to jco.',
          baselines: ['jco-call-log'],
          run: () => {
            types.callSync('call-log', ['x'])
          },
        },
        {
          id: 'core-add',
          title: "core callSync('add', [2, 3])",
          note: 'Context: the raw core-module call of the call scenario, the floor of any call.',
          run: () => {
            core.callSync('add', [2, 3])
          },
        },
        {
          id: 'component-add',
          title: "callSync('test:types/numbers@0.1.0#add', [2, 3])",
          note:
            'A component function of u32 values inside an exported interface (types fixture): ' +
            'the component-model call path without strings. Ratio: to the core add.',
          baselines: ['core-add'],
          run: () => {
            types.callSync('test:types/numbers@0.1.0#add', [2, 3])
          },
        },
        {
          id: 'roundtrip-string-1k',
          title: "callSync('roundtrip-string', [1 KiB])",
          note:
            'A 1 KiB string (1024 UTF-8 bytes, some multi-byte) into the types fixture and the same ' +
            'string back: UTF-16 -> UTF-8 copy into guest memory, guest copy, UTF-8 -> JS string. Ratio: to the core add.',
          baselines: ['core-add', 'jco-roundtrip-string-1k'],
          run: () => {
            types.callSync('roundtrip-string', [text])
          },
        },
        {
          id: 'list-u8-1k-array',
          title: "callSync('roundtrip-list-u8', [1 KiB as number[]])",
          note:
            'A 1 KiB list<u8> given as a plain array: the dynamic Val path, one wasmtime Val per byte ' +
            'each way (the A of the typed-path A/B). Ratio: to the core add.',
          baselines: ['core-add'],
          run: () => {
            types.callSync('roundtrip-list-u8', [array1k])
          },
        },
        {
          id: 'list-u8-1k',
          title: "callSync('roundtrip-list-u8', [1 KiB Uint8Array])",
          note:
            "The same 1 KiB as a Uint8Array: a func(list<u8>) -> list<u8> then takes wasmtime's typed " +
            'path, one copy each way. Ratios: to the core add and to the same bytes as an array.',
          baselines: ['core-add', 'list-u8-1k-array', 'jco-list-u8-1k'],
          run: () => {
            types.callSync('roundtrip-list-u8', [bytes1k])
          },
        },
        {
          id: 'list-u8-1m-array',
          title: "callSync('roundtrip-list-u8', [1 MiB as number[]])",
          note: 'A 1 MiB list<u8> as a plain array: the Val path.',
          run: () => {
            types.callSync('roundtrip-list-u8', [array1m])
          },
        },
        {
          id: 'list-u8-1m',
          title: "callSync('roundtrip-list-u8', [1 MiB Uint8Array])",
          note: 'A 1 MiB Uint8Array through the typed path, both ways. Ratio: to the same bytes as an array.',
          baselines: ['list-u8-1m-array', 'jco-list-u8-1m'],
          run: () => {
            types.callSync('roundtrip-list-u8', [bytes1m])
          },
        },
        {
          id: 'list-result-1000',
          title: "callSync('roundtrip-results', [1,000 × result<u32, string>])",
          note:
            'A list of 1,000 structured values (half ok numbers, half err strings) in and out: the ' +
            'generic path, per element twice (divide the median by 2,000 for a per-element cost).',
          baselines: ['jco-list-result-1000'],
          run: () => {
            types.callSync('roundtrip-results', [results1000])
          },
        },
        {
          id: 'roundtrip-record',
          title: "callSync('roundtrip-record', [person])",
          note: 'A record of a string, a u8 and a list of three strings, in and out. Ratio: to jco.',
          baselines: ['jco-roundtrip-record'],
          run: () => {
            types.callSync('roundtrip-record', [person])
          },
        },
        {
          id: 'greet',
          title: "callSync('greet', ['world'])",
          note: 'examples/hello: a short string in, "Hello, world!" out (the guest formats and allocates). Ratio: to the core add.',
          baselines: ['core-add'],
          run: () => {
            hello.callSync('greet', ['world'])
          },
        },
      ],
      teardown: () => {
        core.dispose()
        types.dispose()
        hello.dispose()
        engine.close()
      },
    }
  },
}
