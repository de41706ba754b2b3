/**
 * The child process of an isolated compile (see isolated-compile.ts): compiles the bytes on its
 * stdin with an engine of the parent's settings, and writes one frame to stdout: the serialized
 * code, the error, or that it took more memory than allowed, whereupon it exits at once. The
 * frame is written before the exit, so that the parent knows why even if the exit, with compile
 * threads still running, is not clean. It also ends itself at its deadline, for when the parent
 * that would have killed it is gone. Never imported: run as `node compile-child.js <request>`.
 */
import { writeSync } from 'node:fs'

import { fromNative, translate, translateAsync } from './errors.js'
import { CHILD_FAILED, frame, type ChildRequest } from './isolated-compile.js'
import { NativeComponent, NativeEngine, NativeModule } from './native.js'

/** How often the child reads its own resident memory: Cranelift grows it gradually. */
const MEMORY_POLL_MS = 5

async function readInput(maxBytes: number): Promise<Uint8Array> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    length += chunk.length
    if (length > maxBytes) throw new Error(`the input is larger than ${maxBytes} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, length)
}

/**
 * Writes `output` to stdout and exits. Never through `process.stdout`, which may make the pipe
 * non-blocking: a blocking write returns once the parent has read it all.
 */
function answer(output: Buffer): never {
  for (let written = 0; written < output.length;) written += writeSync(1, output, written)
  process.exit(0)
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '') as ChildRequest
  const engine = new NativeEngine(request.engine)
  const bytes = await readInput(request.engine.maxModuleBytes ?? 0)
  const baseline = process.memoryUsage.rss()
  setInterval(() => {
    if (process.memoryUsage.rss() - baseline > request.memoryBytes) answer(frame('memory', Buffer.alloc(0)))
  }, MEMORY_POLL_MS)
  setTimeout(() => process.exit(CHILD_FAILED), request.timeoutMs).unref()
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
    const { code, message } = fromNative(error) as { code?: unknown; message?: unknown }
    answer(frame('error', Buffer.from(JSON.stringify({ code, message: String(message) }))))
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(CHILD_FAILED)
})
