/**
 * The name rules of the JS API, on the TypeScript side: WIT's kebab-case names are also reachable
 * in lowerCamelCase (jco's spelling), an interface may be named without its `@version`, and
 * whether some bytes are a component or a core module. The addon applies the same rules
 * (crate/src/names.rs and crate/src/binary.rs): a change here must be made there too, and the
 * specs of both pin the same examples.
 */

/**
 * kebab-case WIT name -> lowerCamelCase JS name, as jco spells it: `first-name` -> `firstName`, and a
 * word in capitals is a word like any other (`get-HTTP-url` -> `getHttpUrl`).
 */
export function lowerCamel(name: string): string {
  return name
    .split('-')
    .map((word, index) => {
      const lower = word !== word.toLowerCase() && word === word.toUpperCase() ? word.toLowerCase() : word
      return index === 0 ? lower : lower.charAt(0).toUpperCase() + lower.slice(1)
    })
    .join('')
}

/** kebab-case WIT name -> UpperCamelCase JS class name (`input-stream` -> `InputStream`). */
export function upperCamel(name: string): string {
  const camel = lowerCamel(name)
  return camel.charAt(0).toUpperCase() + camel.slice(1)
}

/** `wasi:cli/run@0.2.0` -> `wasi:cli/run`; a name without a version is returned as it is. */
export function unversioned(interfaceName: string): string {
  const at = interfaceName.indexOf('@')
  return at === -1 ? interfaceName : interfaceName.slice(0, at)
}

/** The keys a JS import object may use for an interface: its full name, then without `@version`. */
export function interfaceKeys(interfaceName: string): string[] {
  const short = unversioned(interfaceName)
  return short === interfaceName ? [interfaceName] : [interfaceName, short]
}

/**
 * Every path a function export answers to (`call(path)`): `name` and `camelName` at the root;
 * `iface#name` and `iface#camelName` inside an interface, also with the interface unversioned.
 */
export function exportPaths(interfaceName: string | undefined, name: string): string[] {
  const prefixes = interfaceName === undefined ? [''] : interfaceKeys(interfaceName).map((key) => `${key}#`)
  const spellings = [...new Set([name, lowerCamel(name)])]
  return prefixes.flatMap((prefix) => spellings.map((spelling) => `${prefix}${spelling}`))
}

/** Splits an export path (`iface#func` or `func`) into its interface (if any) and function name. */
export function splitExportPath(path: string): { interfaceName?: string; name: string } {
  const hash = path.lastIndexOf('#')
  return hash === -1 ? { name: path } : { interfaceName: path.slice(0, hash), name: path.slice(hash + 1) }
}

/** What wasm bytes hold. */
export type WasmKind = 'component' | 'module'

/** Whether `bytes` start as a wasm binary does (module or component), not as text. */
export function isBinary(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d
}

/**
 * Whether `bytes` are a component or a core module: from the binary header's layer
 * (`\0asm 0d 00 01 00` is a component, `\0asm 01 00 00 00` a module), or for WAT text from its
 * first form (`(component` after any comments). Anything else counts as a module, whose compile
 * then says what is wrong.
 */
export function wasmKind(bytes: Uint8Array): WasmKind {
  if (isBinary(bytes)) return bytes[6] === 1 && bytes[7] === 0 ? 'component' : 'module'

  const text = Buffer.from(bytes.subarray(0, 4096)).toString('utf8')
  return /^\s*(?:(?:;;[^\n]*\n|\(;[\s\S]*?;\))\s*)*\(\s*component\b/.test(text) ? 'component' : 'module'
}

/**
 * A caller's name (of an export, say) for the start of a message: as it is up to 128 characters,
 * else only its length, as the addon says it (a caller may pass any string, and a 256 MiB one
 * made a 256 MiB message).
 */
export function shownName(name: unknown): string {
  if (typeof name !== 'string') return String(typeof name)
  // Its newlines and tabs escaped too: a message keeps its own, and a guest names its exports.
  return name.length <= 128
    ? name.replace(/[\n\t]/g, (char) => (char === '\n' ? '\\n' : '\\t'))
    : `(a string of ${name.length} UTF-16 units)`
}
