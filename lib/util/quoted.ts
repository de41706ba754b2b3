/**
 * Quoting text that someone else chose (a path or URL a guest asked for, a name it made, a string
 * in a manifest) for an error message, which a host may log or print. JSON's quoting escapes the
 * C0 controls; it leaves raw what breaks lines or reorders text on screen, so those are escaped
 * too: a guest's U+2028 would start a forged log line, its U+202E show the rest backwards.
 */

/**
 * What JSON's quoting leaves raw yet a screen or log acts on: DEL, the C1 controls (some terminals
 * read them as ESC sequences), the bidirectional controls and marks, the line and paragraph
 * separators and the byte order mark. A regular expression class body.
 */
export const SCREEN_CONTROLS =
  '\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff'

const RAW = new RegExp(`[${SCREEN_CONTROLS}]`, 'g')

/**
 * `text` in double quotes with every control escaped, cut to its first `max` characters (the
 * whole could be megabytes, and a guest may make many).
 */
export function quoted(text: string, max = 200): string {
  const shown = text.length > max ? text.slice(0, max) : text
  const json = JSON.stringify(shown).replace(
    RAW,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
  return text.length > max ? `${json}… (${text.length} characters)` : json
}
