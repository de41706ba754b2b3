import { once } from 'node:events'
import { mkdirSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setImmediate } from 'node:timers/promises'

import test, { type ExecutionContext } from 'ava'

import { ConfigError, Engine, loadComponent } from '../../lib/index.js'
import { MiB, root, tempDir, typeScriptWorker, watComponentDir } from '../helpers.js'

const GUEST = '(module (func (export "answer") (result i32) i32.const 42))'
const engine = new Engine({ fuel: true })

/** A plugin granted writes to its `./data`, and a second plugin unpacked into that directory. */
function layout(t: ExecutionContext, inner: string) {
  const a = watComponentDir(tempDir(t, 'loaded'), GUEST, {
    maxBytes: MiB,
    permissions: ['filesystem.write = ["./data"]'],
  })
  mkdirSync(path.join(a, 'data'))
  const b = path.join(a, 'data', inner)
  const manifest = [
    '[component]',
    'name = "b"',
    'version = "1.0.0"',
    'wasm = "b.wasm"',
    '[resources.memory]',
    `max_bytes = ${MiB}`,
    '[resources.cpu]',
    'max_fuel = 1000000',
    'timeout_ms = 1000',
  ].join('\n')
  return {
    a,
    b,
    unpack: () => {
      writeFileSync(b, manifest)
      writeFileSync(path.join(a, 'data', 'b.wasm'), GUEST)
    },
  }
}

const insideWrites =
  /b\.toml: this plugin's files lie in a directory the plugin loaded from ".*Component\.toml" may write \(".*data"\), whose guest could rewrite that plugin's grants or code for its next load/

test("a plugin whose manifest (of any name) lies in a loaded plugin's writable directory is refused", async (t) => {
  // Probe H49: B loaded from A/data/b.toml, A granted ./data; the checks looked for files named
  // Component.toml only, so both loaded, A's guest rewrote b.toml, and B's next load ran with a
  // 300 s deadline, `./**` readable and loopback network.
  const { a, b, unpack } = layout(t, 'b.toml')
  unpack()
  const first = await loadComponent(a, { engine })
  // The same plugin loaded twice is one plugin.
  ;(await loadComponent(a, { engine })).dispose()
  const refused = await t.throwsAsync(loadComponent(b, { engine }), {
    instanceOf: ConfigError,
    message: insideWrites,
  })
  t.is(refused.path, 'permissions.filesystem.write')
  // Loaded the other way round, the plugin whose writes reach the other's files is the one refused.
  first.dispose()
  await setImmediate()
  const second = await loadComponent(b, { engine })
  t.is(await second.call('answer'), 42)
  await t.throwsAsync(loadComponent(a, { engine }), {
    instanceOf: ConfigError,
    message:
      /Component\.toml: this plugin may write a directory holding the files of the plugin loaded from ".*b\.toml"/,
  })
  second.dispose()
})

test("a plugin unpacked into a loaded plugin's writable directory is refused, and loads once that plugin is gone", async (t) => {
  // Probe H49: B unpacked into A/data after A had loaded (its walk for manifests then found none)
  // loaded, and A's guest rewrote it.
  const { a, b, unpack } = layout(t, 'Component.toml')
  const first = await loadComponent(a, { engine })
  unpack()
  const inside = /Component\.toml: this plugin's files lie in a directory the plugin loaded from/
  await t.throwsAsync(loadComponent(path.dirname(b), { engine }), {
    instanceOf: ConfigError,
    message: inside,
  })
  // Through a directory renamed (or linked) elsewhere, the real paths are the same.
  const moved = path.join(path.dirname(a), 'moved')
  renameSync(path.join(a, 'data'), moved)
  mkdirSync(path.join(a, 'data'))
  await t.notThrowsAsync(async () => (await loadComponent(moved, { engine })).dispose())
  renameSync(path.join(a, 'data'), `${moved}-empty`)
  renameSync(moved, path.join(a, 'data'))
  // Once A is disposed and idle, B is free to load.
  first.dispose()
  await setImmediate()
  const loaded = await loadComponent(path.dirname(b), { engine })
  t.is(await loaded.call('answer'), 42)
  loaded.dispose()
})

test('a plugin loaded in a worker thread claims its paths for the whole process, until the worker ends', async (t) => {
  // Probe H51: the claims were one set per thread (per JS realm): A loaded in a worker, and B,
  // loaded from A/data on the main thread, loaded too; A's guest rewrote B's manifest.
  const { a, b, unpack } = layout(t, 'b.toml')
  unpack()
  const worker = typeScriptWorker(
    tempDir(t, 'loaded-worker'),
    `import { parentPort } from 'node:worker_threads'
    import { loadComponent } from ${JSON.stringify(path.join(root, 'lib', 'index.ts'))}
    const plugin = await loadComponent(${JSON.stringify(a)})
    parentPort?.postMessage(await plugin.call('answer'))
    setInterval(() => {}, 1_000)`,
  )
  t.is(await once(worker, 'message').then(([answer]) => answer as number), 42, 'A loaded in the worker')
  await t.throwsAsync(loadComponent(b, { engine }), { instanceOf: ConfigError, message: insideWrites })
  await worker.terminate()
  const loaded = await loadComponent(b, { engine })
  t.is(await loaded.call('answer'), 42, "B loads once the worker, and A's claim, are gone")
  loaded.dispose()
})
