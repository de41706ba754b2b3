/**
 * What large preview 1 file transfers cost: a guest reading a 64 MiB file, and writing one, in
 * calls of 16 MiB, which go through the host's own 1 MiB buffer a piece at a time so that a
 * deadline can stop them (SECURITY.md finding 73), against calls of 1 MiB, which go straight
 * through wasmtime-wasi. The bytes moved are the same; the ratio is the price of the pieces.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { Engine } from '../lib/index.js'
import { type Row, type Scenario } from './harness.js'

const MiB = 1 << 20
const FILE_BYTES = 64 * MiB
const BUFFER = MiB
const GUEST = `(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (memory (export "memory") ${(BUFFER + 16 * MiB) / 65536})
  (data (i32.const 64) "io.bin")
  (func $file (param $oflags i32) (result i32)
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 6) (local.get $oflags)
          (i64.const 0x1fffffff) (i64.const 0) (i32.const 0) (i32.const 32))
      (then unreachable))
    (i32.load (i32.const 32)))
  ;; Reads the file to its end in calls of $size bytes: the bytes read.
  (func (export "read") (param $size i32) (result i32) (local $fd i32) (local $total i32)
    (local.set $fd (call $file (i32.const 0)))
    (loop $more
      (i32.store (i32.const 16) (i32.const ${BUFFER})) (i32.store (i32.const 20) (local.get $size))
      (if (call $read (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 8)) (then unreachable))
      (local.set $total (i32.add (local.get $total) (i32.load (i32.const 8))))
      (br_if $more (i32.load (i32.const 8))))
    (drop (call $close (local.get $fd)))
    (local.get $total))
  ;; Writes ${FILE_BYTES} bytes to a new file in calls of $size bytes, as a libc does.
  (func (export "write") (param $size i32) (result i32) (local $fd i32) (local $left i32)
    (local.set $fd (call $file (i32.const 9)))
    (local.set $left (i32.const ${FILE_BYTES}))
    (loop $more
      (i32.store (i32.const 16) (i32.const ${BUFFER}))
      (i32.store (i32.const 20) (select (local.get $size) (local.get $left)
        (i32.lt_u (local.get $size) (local.get $left))))
      (if (call $write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 8)) (then unreachable))
      (br_if $more (local.tee $left (i32.sub (local.get $left) (i32.load (i32.const 8))))))
    (drop (call $close (local.get $fd)))
    (i32.const ${FILE_BYTES})))`

export const wasiIo: Scenario = {
  name: 'wasi-io',
  title: 'A guest reading and writing a 64 MiB file (WASI preview 1)',
  async setup() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'airssys-bench-io-'))
    const instance = new Engine().compileModuleSync(GUEST).instantiateSync({
      limits: { memoryBytes: BUFFER + 16 * MiB },
      wasi: { preopens: { '/data': { host: dir, write: true } } },
    })
    const file = path.join(dir, 'io.bin')
    writeFileSync(file, Buffer.alloc(FILE_BYTES, 7))
    const run = (name: 'read' | 'write', size: number) => () => {
      const moved = instance.callSync(name, [size])
      if (moved !== FILE_BYTES) throw new Error(`wasi-io: ${name} moved ${String(moved)} bytes`)
    }
    const rows = (name: 'read' | 'write', verb: string): Row[] => [
      {
        id: `${name}-1mib`,
        title: `${verb} 64 MiB, calls of 1 MiB`,
        note: "Baseline: one callSync, the file in the page cache; each call goes straight through wasmtime-wasi's own path.",
        run: run(name, MiB),
      },
      {
        id: `${name}-16mib`,
        title: `${verb} 64 MiB, calls of 16 MiB`,
        note:
          name === 'read'
            ? 'Each call reads one piece of 1 MiB through the host buffer and copies it to the guest. Ratio: to calls of 1 MiB.'
            : 'Each call goes 1 MiB at a time through the host buffer to its end. Ratio: to calls of 1 MiB.',
        baselines: [`${name}-1mib`],
        run: run(name, 16 * MiB),
      },
    ]
    return {
      // Read first: the writes replace the file with one of the same size.
      rows: [...rows('read', 'read'), ...rows('write', 'write')],
      teardown: () => {
        instance.dispose()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  },
}
