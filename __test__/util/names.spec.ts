import test from 'ava'

import {
  exportPaths,
  interfaceKeys,
  lowerCamel,
  upperCamel,
  splitExportPath,
  unversioned,
  wasmKind,
} from '../../lib/util/names.js'

// The same examples as crate/src/names.rs and crate/src/binary.rs: both sides must agree.

test('kebab-case WIT names become lowerCamelCase, as the binding spells them', (t) => {
  t.is(lowerCamel('first-name'), 'firstName')
  t.is(lowerCamel('roundtrip-list-u8'), 'roundtripListU8')
  t.is(lowerCamel('u8-x'), 'u8X')
  t.is(lowerCamel('plain'), 'plain')
})

test('a word in capitals is one word, as jco spells it', (t) => {
  // jco (heck's lowerCamelCase) writes `get-HTTP-url` as `getHttpUrl`; a host written for jco
  // could not link or return records here.
  t.is(lowerCamel('get-URL'), 'getUrl')
  t.is(lowerCamel('get-HTTP-url'), 'getHttpUrl')
  t.is(lowerCamel('HTTP-client'), 'httpClient')
  t.is(lowerCamel('HTTP2-x'), 'http2X')
  t.is(upperCamel('HTTP-client'), 'HttpClient')
  t.is(upperCamel('input-stream'), 'InputStream')
  // Not kebab-case: left as it is.
  t.is(lowerCamel('alreadyCamel'), 'alreadyCamel')
})

test('an interface is also known without its version', (t) => {
  t.is(unversioned('wasi:cli/run@0.2.0'), 'wasi:cli/run')
  t.is(unversioned('local:x/api'), 'local:x/api')
  t.deepEqual(interfaceKeys('airssys:host/time@0.1.0'), ['airssys:host/time@0.1.0', 'airssys:host/time'])
  t.deepEqual(interfaceKeys('local:x/api'), ['local:x/api'])
})

test('an interface export answers to four paths, a root export to its two spellings', (t) => {
  t.deepEqual(exportPaths('test:x/api@0.1.0', 'get-name'), [
    'test:x/api@0.1.0#get-name',
    'test:x/api@0.1.0#getName',
    'test:x/api#get-name',
    'test:x/api#getName',
  ])
  t.deepEqual(exportPaths(undefined, 'roundtrip-u8'), ['roundtrip-u8', 'roundtripU8'])
  t.deepEqual(exportPaths(undefined, 'greet'), ['greet'])
  t.deepEqual(splitExportPath('test:x/api@0.1.0#get-name'), {
    interfaceName: 'test:x/api@0.1.0',
    name: 'get-name',
  })
  t.deepEqual(splitExportPath('greet'), { name: 'greet' })
})

test('the header tells components from modules; WAT by its first form', (t) => {
  const bytes = (text: string) => new TextEncoder().encode(text)
  t.is(wasmKind(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), 'module')
  t.is(wasmKind(new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0])), 'component')
  t.is(wasmKind(new Uint8Array([0, 0x61, 0x73, 0x6d])), 'module')
  t.is(wasmKind(bytes(';; a comment\n(; and another ;)\n  (component)')), 'component')
  t.is(wasmKind(bytes('(module (func))')), 'module')
})
