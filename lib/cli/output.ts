/**
 * Where the CLI writes, and how: everything it prints may hold text a guest chose (its output,
 * its export names, the messages of its errors), so control characters that a terminal would act
 * on are printed as `\uXXXX` escapes. That is every C0 control but newline and tab (ESC, CR and
 * BEL among them), DEL, and the C1 controls (U+0080..U+009F, which some terminals read as ESC
 * sequences). Newlines and tabs stay: multi-line output and messages keep their shape. JSON text
 * stays valid JSON, since these characters can only appear inside its strings.
 */

/** Where the CLI writes; `process` in real use. */
export interface CliOutput {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
}

const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/** `text` with its control characters (but `\n` and `\t`) written as `\uXXXX`. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/**
 * `text` for one line of a listing: newlines and tabs escaped too, so that a name a guest chose
 * (a core module's export may be named `"a\nexports:"`) cannot print lines of its own.
 */
export function oneLine(text: string): string {
  return escapeControl(text).replace(/[\n\t]/g, (char) => (char === '\n' ? '\\u000a' : '\\u0009'))
}

/** `io`, writing every text escaped. */
export function terminalOutput(io: CliOutput): CliOutput {
  return {
    stdout: { write: (text) => io.stdout.write(escapeControl(text)) },
    stderr: { write: (text) => io.stderr.write(escapeControl(text)) },
  }
}
