/**
 * Where the CLI writes, and how: everything it prints may hold text a guest chose (its output,
 * its export names, the messages of its errors), so control characters that a terminal would act
 * on are printed as `\uXXXX` escapes. That is every C0 control but newline and tab (ESC, CR and
 * BEL among them), DEL, the C1 controls (U+0080..U+009F, which some terminals read as ESC
 * sequences), and what reorders, breaks or hides text on screen: the line and paragraph separators
 * and Unicode's format characters (U+202E shows text backwards, a zero-width space makes two names
 * print alike). Newlines and tabs stay: multi-line
 * output and messages keep their shape. JSON text stays valid JSON, since these characters can
 * only appear inside its strings.
 */

import { HostLimitError } from '../errors.js'
import { toJsonText } from '../util/json-values.js'
import { escapeControl, escapeText, isEscaped } from '../util/quoted.js'

/** Where the CLI writes; `process` in real use. */
export interface CliOutput {
  stdout: CliStream
  stderr: CliStream
  /**
   * Aborts once the reader of stdout or stderr has gone (`| head` closed the pipe): a guest's
   * piped output never fails to be written, so a command that would stop at its first failed
   * write runs on unless `run` stops it.
   */
  readerGone?: AbortSignal | undefined
  /**
   * Aborts, with the signal's name as its reason, once the process is asked to stop (SIGINT,
   * SIGTERM): `run` stops the guest and reports the run as stopped, its output and `--json`
   * document included.
   */
  interrupted?: AbortSignal | undefined
}

/** A stream the CLI writes to: a Node stream tells how much of what it was given waits. */
export interface CliStream {
  write(text: string): unknown
  readonly writableLength?: number
  /** A stream whose reader went away is destroyed: nothing more is waited for or written. */
  readonly destroyed?: boolean
  /**
   * Whether what was written last ended its line (the escaping stream knows): the CLI's own error
   * line starts a line of its own, never the rest of a guest's unfinished one (probe H52: a
   * guest's `E00` became the start of `E00ERR_WASM_TIMEOUT: ...`).
   */
  readonly atLineStart?: boolean
}

/**
 * `text` for one line of a listing: newlines and tabs escaped too, so that a name a guest chose
 * (a core module's export may be named `"a\nexports:"`) cannot print lines of its own.
 */
export function oneLine(text: string): string {
  return escapeText(text).replace(/[\n\t]/g, (char) => (char === '\n' ? '\\u000a' : '\\u0009'))
}

/**
 * Characters of text escaped and written at a time: what one write holds, escaped (up to six
 * times as long), stays small whatever the guest wrote.
 */
const SLICE = 1 << 20

/** `io`, writing every text escaped, a slice at a time. */
export function terminalOutput(io: CliOutput): CliOutput {
  return {
    stdout: escaping(io.stdout),
    stderr: escaping(io.stderr),
    readerGone: io.readerGone,
    interrupted: io.interrupted,
  }
}

function escaping(stream: CliStream): CliStream {
  let atLineStart = true
  return {
    write: (text) => {
      if (text !== '') atLineStart = text.endsWith('\n')
      for (const slice of slices(text)) stream.write(escapeControl(slice))
    },
    get atLineStart() {
      return atLineStart
    },
    get writableLength() {
      return stream.writableLength
    },
    get destroyed() {
      return stream.destroyed
    },
  }
}

/** `text` in slices of {@link SLICE} characters (one more to keep a surrogate pair whole). */
function* slices(text: string): Generator<string> {
  for (let start = 0; start < text.length;) {
    let end = Math.min(start + SLICE, text.length)
    // Each half of a pair alone would be written as U+FFFD.
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end++
    yield text.slice(start, end)
    start = end
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

/** Characters a stream may hold unwritten before {@link printText} waits for it. */
const BACKLOG = 8 * SLICE

/**
 * Writes `text` to `stream` a slice at a time, waiting while the stream holds more than
 * {@link BACKLOG} unwritten (a pipe to a slow reader): a guest's output is not copied into this
 * process faster than the reader takes it. (Queued, 400 MB of it ended the process with ENOBUFS.)
 * Once `stop` (the run interrupted) has aborted, it no longer waits: what does not fit is dropped.
 */
export async function printText(stream: CliStream, text: string, stop?: AbortSignal): Promise<void> {
  for (const slice of slices(text)) {
    while (backedUp(stream) && stream.destroyed !== true) {
      // Stopped (SIGINT), the run ends without waiting for a reader that may never read (probe
      // H52: `run flood.wasm | less` ignored Ctrl-C until less was quit): the rest is not printed.
      if (stop?.aborted === true) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    if (stream.destroyed === true) return
    stream.write(slice)
  }
}

/** Whether `stream` holds more than {@link BACKLOG} unwritten. */
export function backedUp(stream: CliStream): boolean {
  return (stream.writableLength ?? 0) > BACKLOG
}

/**
 * Most bytes of JSON text the CLI prints of one value. A guest chooses its result: a 100 MB
 * string of control characters is 600 MB as JSON, past V8's longest string, and 8 million u64
 * values took 13 s and 2 GB to print.
 */
export const MAX_JSON_TEXT = 64 * 1024 * 1024

/**
 * {@link toJsonText}, refused with a HostLimitError before any text is made when the text could
 * be longer than `limit` characters (a bound of its length, found by one walk that stops there).
 */
export function boundedJsonText(value: unknown, indent?: number, limit: number = MAX_JSON_TEXT): string {
  if (jsonLengthBound(value, indent ?? 0, limit) > limit) {
    throw new HostLimitError(
      `the value is too large to print: its JSON text would be more than ${limit / (1024 * 1024)} MiB`,
    )
  }
  return toJsonText(value, indent)
}

/** Longest text of anything else JSON has no spelling for (a symbol or function: `null` at most). */
const SCALAR_CHARS = 25

/** Deeper than JSON.stringify goes before V8's stack runs out: refused as too large. */
const MAX_DEPTH = 1000

/**
 * A bound of the length of `value`'s JSON text with `indent`, exact enough for real values (exact
 * for a typed array's numbers); the walk stops once it passes `limit`.
 */
function jsonLengthBound(value: unknown, indent: number, limit: number): number {
  // The value itself has no comma, line break or indentation before it (see addLength).
  const counted = { total: indent > 0 ? -2 : -1 }
  addLength(value, 0, indent, limit, counted)
  return counted.total
}

function addLength(
  value: unknown,
  depth: number,
  indent: number,
  limit: number,
  counted: { total: number },
): void {
  if (depth > MAX_DEPTH) {
    counted.total = limit + 1
    return
  }
  // Its comma, and with an indent its line break and indentation, as an element or a property.
  counted.total += indent > 0 ? 2 + indent * depth : 1
  if (typeof value === 'string') {
    counted.total += stringLength(value, limit)
    return
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    counted.total += numberLength(value)
    return
  }
  if (typeof value !== 'object' || value === null) {
    counted.total +=
      value === false ? 5 : value === true || value === null || value === undefined ? 4 : SCALAR_CHARS
    return
  }
  // Its brackets, and with an indent the line break and indentation before a closing one that
  // follows an element.
  counted.total += 2
  if (value instanceof DataView) return
  // The first element has no comma before it.
  const closing = (indent > 0 ? 1 + indent * depth : 0) - 1
  if (ArrayBuffer.isView(value)) {
    // Each element on a line of its own with an indent, and a comma.
    const line = 1 + (indent > 0 ? 1 + indent * (depth + 1) : 0)
    if ((value as unknown as ArrayLike<unknown>).length > 0) counted.total += closing
    for (const item of value as unknown as Iterable<number | bigint>) {
      counted.total += numberLength(item) + line
      if (counted.total > limit) return
    }
  } else if (Array.isArray(value)) {
    if (value.length > 0) counted.total += closing
    for (let index = 0; index < value.length && counted.total <= limit; index++) {
      addLength(value[index], depth + 1, indent, limit, counted)
    }
  } else {
    const keys = Object.keys(value)
    if (keys.length > 0) counted.total += closing
    for (const key of keys) {
      if (counted.total > limit) return
      // Its colon, and a space after it with an indent.
      counted.total += stringLength(key, limit) + (indent > 0 ? 2 : 1)
      addLength((value as Record<string, unknown>)[key], depth + 1, indent, limit, counted)
    }
  }
}

/** The length of a number or bigint as `toJsonText` prints it (see its spellings). */
function numberLength(item: number | bigint): number {
  if (typeof item === 'bigint') return String(item).length + 3
  if (Object.is(item, -0)) return 4
  return Number.isFinite(item) ? String(item).length : String(item).length + 2
}

/** The C0 controls JSON writes as two characters: `\b`, `\t`, `\n`, `\f`, `\r`. */
const SHORT_ESCAPES = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d])

/**
 * The bytes of `text` as a JSON string, printed (UTF-8): a quote, a backslash and the short
 * escapes count two, what else JSON escapes (a C0 control, a lone surrogate) and what the
 * terminal output escapes (see {@link escapeControl}) six each, a surrogate pair its four bytes
 * (twelve, escaped),
 * other characters their UTF-8 length. At most `limit` + 1, past which it is not counted.
 */
function stringLength(text: string, limit: number): number {
  if (text.length > limit) return limit + 1
  let length = 2
  for (let index = 0; index < text.length && length <= limit; index++) {
    const code = text.charCodeAt(index)
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(index + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        length += isEscaped(((code - 0xd800) << 10) + (next - 0xdc00) + 0x10000) ? 12 : 4
        index++
        continue
      }
    }
    length +=
      code === 0x22 || code === 0x5c || SHORT_ESCAPES.has(code)
        ? 2
        : code < 0x20 || isSurrogate(code) || isEscaped(code)
          ? 6
          : code < 0x80
            ? 1
            : code < 0x800
              ? 2
              : 3
  }
  return length
}

function isSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdfff
}
