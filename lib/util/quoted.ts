/**
 * Text that someone else chose (a guest's output, a path or URL it asked for, a name it made, a
 * string in a manifest), made safe for a message or a screen that a host may log or print: control
 * characters that a terminal would act on are written as `\uXXXX` escapes. That is every C0
 * control but newline and tab (ESC, CR and BEL among them), DEL, the C1 controls (U+0080..U+009F,
 * which some terminals read as ESC sequences), and what reorders or breaks lines: the
 * bidirectional controls and marks (U+202E shows the rest backwards), the line and paragraph
 * separators (U+2028 starts a forged log line) and the byte order mark. JSON's quoting escapes
 * the C0 controls and leaves the rest raw.
 */

const SCREEN_CONTROLS =
  '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff'

/** What terminal output escapes: C0 but newline and tab, DEL, C1, and what moves text on screen. */
const ESCAPED = `\\u0000-\\u0008\\u000b-\\u001f${SCREEN_CONTROLS}`
const CONTROL_RUN = new RegExp(`[${ESCAPED}]+`, 'g')
const ONE_ESCAPED = new RegExp(`[${ESCAPED}]`)

let escapedTable: Uint8Array | undefined

/** Whether the character `code` is printed as a `\\uXXXX` escape (a table made once from {@link ESCAPED}). */
export function isEscaped(code: number): boolean {
  escapedTable ??= Uint8Array.from({ length: 0x10000 }, (_, each) =>
    ONE_ESCAPED.test(String.fromCharCode(each)) ? 1 : 0,
  )
  return escapedTable[code] === 1
}

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
 * `text` in double quotes with every control escaped, cut to its first `max` characters (the
 * whole could be megabytes, and a guest may make many).
 */
export function quoted(text: string, max = 200): string {
  const json = escapeControl(JSON.stringify(text.length > max ? text.slice(0, max) : text))
  return text.length > max ? `${json}… (${text.length} characters)` : json
}
