import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

import test from 'ava'

import {
  AbortError,
  createPermissions,
  createTime,
  HostError,
  loadComponent,
  TimeoutError,
  type HostInterfaceOptions,
} from '../../lib/index.js'
import { assertDenied, capabilitiesGuest, capabilitiesDir, denials, guestErr } from './helpers.js'

const scratch = mkdtempSync(path.join(tmpdir(), 'airssys-time-'))
test.after.always(() => rmSync(scratch, { recursive: true, force: true }))

function guestFor(timeSleep: boolean, hostOptions: HostInterfaceOptions = {}, callTimeoutMs?: number) {
  const seen = denials()
  const permissions = createPermissions({ timeSleep }, { onDenied: seen.onDenied })
  return { guest: capabilitiesGuest(permissions, hostOptions, callTimeoutMs), permissions, denied: seen.list }
}

test.serial('a granted sleep really waits, and the JS thread keeps running meanwhile', async (t) => {
  const { guest, denied } = guestFor(true)
  let ticks = 0
  const interval = setInterval(() => ticks++, 10)
  const started = performance.now()
  t.is(await guest.call('nap', [200]), 1)
  const elapsed = performance.now() - started
  clearInterval(interval)
  t.true(elapsed >= 195, `slept ${elapsed} ms`)
  t.true(elapsed < 2_000, `slept ${elapsed} ms`)
  t.true(ticks >= 3, `the event loop ran ${ticks} interval ticks during the sleep`)
  t.is(await guest.call('nap', [0]), 2, 'the guest resumed and kept its state')
  t.is(denied.length, 0)
})

test('a sleep that is not granted returns at once; the host sees the denial', async (t) => {
  const { guest, permissions, denied } = guestFor(false)
  const started = performance.now()
  t.is(await guest.call('nap', [5_000]), 1)
  t.true(performance.now() - started < 1_000)
  t.is(denied.length, 1)
  assertDenied(t, denied[0], 'time.sleep', '5000 ms')
  t.regex(denied[0]?.message ?? '', /sleeping is not granted/)
  t.is(permissions.deniedCount, 1)
})

test.serial('a deadline cuts a pending sleep short with TimeoutError, on time', async (t) => {
  const { guest } = guestFor(true, {}, 150)
  const started = performance.now()
  const error = await t.throwsAsync(guest.call('nap', [60_000]), { instanceOf: TimeoutError })
  t.is(error?.code, 'ERR_WASM_TIMEOUT')
  t.is(error?.timeoutMs, 150)
  t.true((error?.elapsedMs ?? 0) >= 150)
  t.true((error?.elapsedMs ?? Infinity) < 1_000, `elapsedMs ${error?.elapsedMs}`)
  t.true(performance.now() - started < 3_000)
})

test.serial("aborting the call's signal during a pending sleep rejects with AbortError", async (t) => {
  const { guest } = guestFor(true)
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 50)
  const started = performance.now()
  const error = await t.throwsAsync(guest.call('nap', [60_000], { signal: controller.signal }), {
    instanceOf: AbortError,
  })
  t.is(error?.code, 'ABORT_ERR')
  t.true(performance.now() - started < 3_000)
})

test.serial('the host signal option ends pending sleeps: the call fails with HostError', async (t) => {
  const controller = new AbortController()
  const { guest } = guestFor(true, { signal: controller.signal })
  setTimeout(() => controller.abort(), 50)
  const error = await t.throwsAsync(guest.call('nap', [60_000]), { instanceOf: HostError })
  t.is((error?.cause as Error | undefined)?.name, 'AbortError')
})

test('the host function settles as soon as the current call signal aborts', async (t) => {
  let current: AbortSignal | undefined
  const time = createTime(createPermissions({ timeSleep: true }), { signal: () => current })
  const controller = new AbortController()
  current = controller.signal
  const pending = time.sleep(60_000)
  current = undefined
  setTimeout(() => controller.abort(), 20)
  await t.throwsAsync(pending, { name: 'AbortError' })
  // A later sleep uses the signal current then (none): it is not affected by the old abort.
  await t.notThrowsAsync(time.sleep(1))
})

test.serial('through loadComponent the manifest grants sleep, and its deadline cuts one short', async (t) => {
  const dir = capabilitiesDir(scratch, { permissions: ['time.sleep = true'], timeoutMs: 200 })
  using sandbox = await loadComponent(dir)
  t.is(await sandbox.call('nap', [20]), 1)
  const error = await t.throwsAsync(sandbox.call('nap', [60_000]), { instanceOf: TimeoutError })
  t.is(error?.timeoutMs, 200)
  t.is(sandbox.metrics().restarts, 1)
  t.is(await sandbox.call('nap', [1]), 1, 'a fresh instance (the nap counter started over)')
  t.is(sandbox.metrics().capabilityDenials, 0)
})

test.serial('through loadComponent aborting a call during a sleep rejects with AbortError', async (t) => {
  const dir = capabilitiesDir(scratch, { permissions: ['time.sleep = true'] })
  using sandbox = await loadComponent(dir)
  const controller = new AbortController()
  setTimeout(() => controller.abort(), 50)
  await t.throwsAsync(sandbox.call('nap', [60_000], { signal: controller.signal }), {
    instanceOf: AbortError,
  })
  t.is(await sandbox.call('nap', [1]), 1)
})

test('through loadComponent a manifest without time.sleep gets denials, counted in metrics', async (t) => {
  const dir = capabilitiesDir(scratch, { permissions: ['filesystem.read = ["./data/**"]'] })
  const seen = denials()
  using sandbox = await loadComponent(dir, { onDenied: seen.onDenied })
  const started = performance.now()
  t.is(await sandbox.call('nap', [5_000]), 1)
  t.true(performance.now() - started < 1_000)
  assertDenied(t, seen.list[0], 'time.sleep', '5000 ms')
  t.is(sandbox.metrics().capabilityDenials, 1)
})

test('user hostFunctions replace a reference interface; the others stay linked', async (t) => {
  const dir = capabilitiesDir(scratch)
  const slept: number[] = []
  using sandbox = await loadComponent(dir, {
    hostFunctions: { 'airssys:host/time': { sleep: (ms: number) => void slept.push(ms) } },
  })
  t.is(await sandbox.call('nap', [42]), 1)
  t.deepEqual(slept, [42])
  t.is(sandbox.metrics().capabilityDenials, 0, "the user's sleep ran instead of the denied one")
  t.regex(await guestErr(t, sandbox.call('read-file', ['x'])), /not granted/)
  t.is(sandbox.metrics().capabilityDenials, 1)
})
