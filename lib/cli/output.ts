/**
 * Where the CLI writes, and how: everything it prints may hold text a guest chose (its output,
 * its export names, the messages of its errors), so control characters that a terminal would act
 * on are printed as `\uXXXX` escapes. That is every C0 control but newline and tab (ESC, CR and
 * BEL among them), DEL, the C1 controls (U+0080..U+009F, which some terminals read as ESC
 * sequences), and what reorders or breaks lines on screen: the bidirectional controls (U+202E
 * shows text backwards) and the line and paragraph separators. Newlines and tabs stay: multi-line
 * output and messages keep their shape. JSON text stays valid JSON, since these characters can
 * only appear inside its strings.
 */

/** Where the CLI writes; `process` in real use. */
export interface CliOutput {
  stdout: CliStream
  stderr: CliStream
}

/** A stream the CLI writes to: a Node stream tells how much of what it was given waits. */
export interface CliStream {
  write(text: string): unknown
  readonly writableLength?: number
}

const CONTROL_RUN =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]+/g

const escape = (code: number) => `\\u${code.toString(16).padStart(4, '0')}`

/** `\uXXXX` for each C0 and C1 control character, by code. */
const ESCAPES = Array.from({ length: 0xa0 }, (_, code) => escape(code))

/**
 * `text` with its control characters (but `\n` and `\t`) written as `\uXXXX`. Runs are escaped at
 * once (a run of one character by `repeat`): a guest's output may be megabytes of NULs, which a
 * callback per character took 14 s and 3 GB to print.
 */
export function escapeControl(text: string): string {
  return text.replace(CONTROL_RUN, (run) => {
    const first = run.charCodeAt(0)
    let same = 1
    while (same < run.length && run.charCodeAt(same) === first) same++
    if (same === run.length) return (ESCAPES[first] ?? escape(first)).repeat(run.length)
    const parts = new Array<string>(run.length)
    for (let index = 0; index < run.length; index++) {
      const code = run.charCodeAt(index)
      parts[index] = ESCAPES[code] ?? escape(code)
    }
    return parts.join('')
  })
}

/**
 * `text` for one line of a listing: newlines and tabs escaped too, so that a name a guest chose
 * (a core module's export may be named `"a\nexports:"`) cannot print lines of its own.
 */
export function oneLine(text: string): string {
  return escapeControl(text).replace(/[\n\t]/g, (char) => (char === '\n' ? '\\u000a' : '\\u0009'))
}

/**
 * Characters of text escaped and written at a time: what one write holds, escaped (up to six
 * times as long), stays small whatever the guest wrote.
 */
const SLICE = 1 << 20

/** `io`, writing every text escaped, a slice at a time. */
export function terminalOutput(io: CliOutput): CliOutput {
  return { stdout: escaping(io.stdout), stderr: escaping(io.stderr) }
}

function escaping(stream: CliStream): CliStream {
  return {
    write: (text) => {
      for (let start = 0; start < text.length;) {
        let end = Math.min(start + SLICE, text.length)
        // A surrogate pair stays whole: each half alone would be written as U+FFFD.
        if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end++
        stream.write(escapeControl(text.slice(start, end)))
        start = end
      }
    },
    get writableLength() {
      return stream.writableLength
    },
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
 */
export async function printText(stream: CliStream, text: string): Promise<void> {
  for (let start = 0; start < text.length;) {
    while ((stream.writableLength ?? 0) > BACKLOG) await new Promise((resolve) => setTimeout(resolve, 5))
    let end = Math.min(start + SLICE, text.length)
    if (end < text.length && isHighSurrogate(text.charCodeAt(end - 1))) end++
    stream.write(text.slice(start, end))
    start = end
  }
}

/** Whether `stream` holds more than {@link BACKLOG} unwritten. */
export function backedUp(stream: CliStream): boolean {
  return (stream.writableLength ?? 0) > BACKLOG
}
