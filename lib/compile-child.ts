/**
 * The child process of an isolated compile (see isolated-compile.ts): compiles (or validates) the
 * bytes on its stdin with an engine of the parent's settings, and writes one frame to stdout: the
 * serialized code, what validation found, the error, or that it took more memory than allowed,
 * whereupon it exits at once. The frame is written before the exit, so that the parent knows why
 * even if the exit, with compile threads still running, is not clean. It ends itself when its
 * parent is gone (its stdin ends, or it has a new parent process) and at its deadline. Never
 * imported: run as `node compile-child.js <request as JSON>`.
 */
import { writeSync } from 'node:fs'

import { fromNative, translate, translateAsync } from './errors.js'
import { CHILD_FAILED, frame, type ChildRequest } from './isolated-compile.js'
import { NativeComponent, NativeEngine, NativeModule } from './native.js'

/** How often the child reads its own resident memory (Cranelift grows it gradually) and its parent. */
const POLL_MS = 5

/**
 * The input: its length (8 bytes), then as many bytes; `maxBytes` at most. The stream is left
 * open, not destroyed as a `for await` loop ending early would: its end is how the child learns
 * that its parent is gone when that parent is a worker thread of a process that lives on.
 */
function readInput(maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    let expected: number | undefined
    const read = (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (expected === undefined && length >= 8) {
        expected = Number(Buffer.concat(chunks).readBigUInt64LE(0))
        if (expected > maxBytes) reject(new Error(`the input is larger than ${maxBytes} bytes`))
      }
      if (expected !== undefined && length >= 8 + expected) {
        process.stdin.off('data', read)
        resolve(Buffer.concat(chunks).subarray(8, 8 + expected))
      }
    }
    process.stdin.on('data', read)
    process.stdin.once('end', () => reject(new Error('the input ended early')))
  })
}

/**
 * Writes `output` to stdout and exits. Never through `process.stdout`, which may make the pipe
 * non-blocking: a blocking write returns once the parent has read it all.
 */
function answer(output: Buffer): never {
  for (let written = 0; written < output.length;) written += writeSync(1, output, written)
  process.exit(0)
}

function failure(error: unknown): Buffer {
  const { code, message } = fromNative(error) as { code?: unknown; message?: unknown }
  return frame('error', Buffer.from(JSON.stringify({ code, message: String(message) })))
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '') as ChildRequest
  const parent = process.ppid
  const engine = new NativeEngine(request.engine)
  const bytes = await readInput(request.engine.maxModuleBytes ?? 0)
  if (request.watchStdin) process.stdin.on('end', () => process.exit(CHILD_FAILED))
  const baseline = process.memoryUsage.rss()
  setInterval(() => {
    if (process.memoryUsage.rss() - baseline > request.memoryBytes) answer(frame('memory', Buffer.alloc(0)))
    if (process.ppid !== parent) process.exit(CHILD_FAILED)
  }, POLL_MS)
  setTimeout(() => process.exit(CHILD_FAILED), request.timeoutMs).unref()
  if (request.kind === 'validate') {
    try {
      const message = await translateAsync(translate(() => engine.validateAsync(bytes)))
      answer(frame('validated', Buffer.from(JSON.stringify({ message: message ?? null }))))
    } catch (error) {
      answer(failure(error))
    }
  }
  try {
    const compiling: Promise<NativeModule | NativeComponent> =
      request.kind === 'module' ? NativeModule.compile(engine, bytes) : NativeComponent.compile(engine, bytes)
    const compiled = await translateAsync(compiling)
    answer(
      frame(
        'code',
        translate(() => compiled.serialize()),
      ),
    )
  } catch (error) {
    answer(failure(error))
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(CHILD_FAILED)
})
