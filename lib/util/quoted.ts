/**
 * Text that someone else chose (a guest's output, a path or URL it asked for, a name it made, a
 * string in a manifest), made safe for a message or a screen that a host may log or print: control
 * characters that a terminal would act on are written as `\uXXXX` escapes. That is every C0
 * control but newline and tab (ESC, CR and BEL among them), DEL, the C1 controls (U+0080..U+009F,
 * which some terminals read as ESC sequences), and what reorders, breaks or hides text: the line
 * and paragraph separators (U+2028 starts a forged log line) and every format character (Unicode's
 * Cf: the bidirectional controls, where U+202E shows the rest backwards, zero-width spaces and
 * joiners, which make two different names print alike, the byte order mark, tag characters). JSON's
 * quoting escapes the C0 controls and leaves the rest raw.
 */

/**
 * Unicode's format characters (Cf, as of Unicode 17; `quoted.spec.ts` checks the list against the
 * running Node's `\\p{Cf}`), written out: `\\p{Cf}` needs the `u` flag, with which scanning text
 * took four times as long. Most are in `FORMAT`; the rest (U+FFF9..U+FFFB, which slowed the one
 * class five times over on V8, and those beyond the BMP, as their UTF-16 halves) are escaped in a
 * pass of their own, only where they occur.
 */
const FORMAT =
  '\\u00ad\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u180e\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u206f\\ufeff'
const FORMAT_RARE =
  '[\\ufff9-\\ufffb]|\\ud804[\\udcbd\\udccd]|\\ud80d[\\udc30-\\udc3f]|\\ud82f[\\udca0-\\udca3]|\\ud834[\\udd73-\\udd7a]|\\udb40[\\udc01\\udc20-\\udc7f]'
const FORMAT_RARE_ANY = /[\ufff9-\ufffb\ud804\ud80d\ud82f\ud834\udb40]/
const FORMAT_RARE_EACH = new RegExp(FORMAT_RARE, 'g')

/** What terminal output escapes: C0 but newline and tab, DEL, C1, and what moves or hides text. */
const ESCAPED = `\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f\\u2028\\u2029${FORMAT}`
const CONTROL_RUN = new RegExp(`[${ESCAPED}]+`, 'g')
const ONE_ESCAPED = new RegExp(`^(?:[${ESCAPED}]|${FORMAT_RARE})$`)

let escapedTable: Uint8Array | undefined

/**
 * Whether the character `code` (a code point) is printed as `\\uXXXX` escapes: one beyond the
 * BMP as two. The BMP's answers are a table made once from {@link ESCAPED}.
 */
export function isEscaped(code: number): boolean {
  if (code > 0xffff) return ONE_ESCAPED.test(String.fromCodePoint(code))
  escapedTable ??= Uint8Array.from({ length: 0x10000 }, (_, each) =>
    ONE_ESCAPED.test(String.fromCharCode(each)) ? 1 : 0,
  )
  return escapedTable[code] === 1
}

const escape = (code: number) => `\\u${code.toString(16).padStart(4, '0')}`

/** Every UTF-16 unit of `found` as `\\uXXXX` (a character beyond the BMP as its two halves). */
function escapeUnits(found: string): string {
  let escaped = ''
  for (let index = 0; index < found.length; index++) escaped += escape(found.charCodeAt(index))
  return escaped
}

/** `\uXXXX` for each C0 and C1 control character, by code. */
const ESCAPES = Array.from({ length: 0xa0 }, (_, code) => escape(code))

/**
 * `text` with its control characters (but `\n` and `\t`) written as `\uXXXX`. Runs are escaped at
 * once (a run of one character by `repeat`): a guest's output may be megabytes of NULs, which a
 * callback per character took 14 s and 3 GB to print.
 */
export function escapeControl(text: string): string {
  // The escapes are ASCII: the text holds a rare one if and only if it did before.
  const escaped = escapeRuns(text)
  if (!FORMAT_RARE_ANY.test(text)) return escaped
  return escaped.replace(FORMAT_RARE_EACH, escapeUnits)
}

function escapeRuns(text: string): string {
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
 * The invisible characters beyond Cf (variation selectors, Hangul fillers, code points Unicode
 * keeps for more of them): `./data\ufe0f/**` prints as `./data/**`. Escaped in names and
 * messages, where two texts must not look alike, but not in a guest's output, whose emoji carry
 * variation selectors (U+2764 U+FE0F is a red heart).
 */
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu

/**
 * {@link escapeControl}, and the invisible characters beyond Cf too: for a name, a path or a
 * message, which someone reads to tell it from another.
 */
export function escapeText(text: string): string {
  return escapeControl(text).replace(IGNORABLE, escapeUnits)
}

/**
 * `text` in double quotes with every control and invisible character escaped, cut to its first
 * `max` characters (the whole could be megabytes, and a guest may make many).
 */
export function quoted(text: string, max = 200): string {
  const json = escapeText(JSON.stringify(text.length > max ? text.slice(0, max) : text))
  return text.length > max ? `${json}… (${text.length} characters)` : json
}
