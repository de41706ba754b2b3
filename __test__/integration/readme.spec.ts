/**
 * The README's JavaScript and TypeScript snippets and examples/<name>/main.ts run as printed: each
 * snippet is written to a temporary ES module whose `from 'airssys-wasm'` points at lib/index.ts,
 * and run with tsx in a child process. A snippet that cannot run alone says so in the README with
 * `<!-- not run: reason -->` above its fence; `<!-- run in: dir -->` sets the
 * directory it runs from (the repository root otherwise). Where a `console.log(...)` line ends
 * with `// 'text'`, the printed lines must be those texts.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

import test from 'ava'

import { root } from '../helpers.js'

interface Snippet {
  line: number
  lang: string
  code: string
  /** The reason given in `<!-- not run: ... -->`, if any. */
  notRun?: string
  cwd: string
}

function snippets(markdown: string): Snippet[] {
  const lines = markdown.split('\n')
  const found: Snippet[] = []
  for (let index = 0; index < lines.length; index++) {
    const open = /^```(\w*)\s*$/.exec(lines[index] ?? '')
    if (open === null) continue
    const end = lines.indexOf('```', index + 1)
    if (end === -1) throw new Error(`README.md:${index + 1}: unclosed code block`)
    const lang = open[1] ?? ''
    let previous = index - 1
    while (previous > 0 && (lines[previous] ?? '').trim() === '') previous -= 1
    const before = lines[previous] ?? ''
    const notRun = /^<!-- not run: (.+) -->$/.exec(before)?.[1]
    const runIn = /^<!-- run in: (.+) -->$/.exec(before)?.[1]
    if (lang === 'js' || lang === 'ts') {
      found.push({
        line: index + 1,
        lang,
        code: lines.slice(index + 1, end).join('\n'),
        ...(notRun === undefined ? {} : { notRun }),
        cwd: path.join(root, runIn ?? '.'),
      })
    }
    index = end
  }
  return found
}

const entry = pathToFileURL(path.join(root, 'lib/index.ts')).href

function run(file: string, cwd: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', file], { cwd, encoding: 'utf8', timeout: 60_000 })
}

/** The lines a snippet says it prints: `console.log(...) // 'text'`. */
function promised(code: string): string[] {
  return [...code.matchAll(/^\s*console\.log\(.*\) \/\/ '(.*)'$/gm)].map((match) => match[1] ?? '')
}

const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
const all = snippets(readme)

test('the README has runnable snippets, and every skipped one says why', (t) => {
  t.true(all.filter((snippet) => snippet.notRun === undefined).length >= 3)
  for (const snippet of all) {
    if (snippet.notRun !== undefined) t.true(snippet.notRun.length > 10, `README.md:${snippet.line}`)
  }
})

for (const snippet of all) {
  const first =
    snippet.code.split('\n').find((line) => line.trim() !== '' && !line.startsWith('import')) ?? ''
  const title = `README.md:${snippet.line} (${snippet.lang}) runs as printed: ${first.trim().slice(0, 60)}`
  if (snippet.notRun !== undefined) {
    test.skip(`${title} [not run: ${snippet.notRun}]`, () => undefined)
    continue
  }
  test(title, (t) => {
    t.true(existsSync(snippet.cwd), snippet.cwd)
    const dir = mkdtempSync(path.join(tmpdir(), 'airssys-readme-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const rewritten = snippet.code.replace(/from 'airssys-wasm'/g, `from ${JSON.stringify(entry)}`)
    t.true(rewritten !== snippet.code || !snippet.code.includes('airssys-wasm'), 'imports the package')
    // .mts: an ES module wherever it sits, so top-level await works as in the README.
    const file = path.join(dir, `readme-${snippet.line}.mts`)
    writeFileSync(file, rewritten)
    const result = run(file, snippet.cwd)
    t.is(result.signal, null)
    t.is(result.status, 0, result.stderr)
    t.is(result.stderr, '')
    const lines = promised(snippet.code)
    if (lines.length > 0) t.is(result.stdout, lines.map((line) => `${line}\n`).join(''))
  })
}

/** What each example prints first: proof that it did its work, not only that it exited 0. */
const EXAMPLE_OUTPUT: Record<string, RegExp> = {
  hello: /^Hello, world!\nexports: greet: func\(name: string\) -> string\nmemory: \d+ of 2097152 bytes\n$/,
  capabilities:
    /^read-file\("data\/greeting\.txt"\) -> "Hello from the capabilities example\.\\n"\n[\s\S]*fetch\("http:\/\/127\.0\.0\.1:8080\/"\) -> 200 a page served by the host\n[\s\S]*denials: 2\n$/,
}

const examples = readdirSync(path.join(root, 'examples'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(path.join(root, 'examples', entry.name, 'main.ts')))
  .map((entry) => entry.name)

test('every example with a main.ts has its expected output listed here', (t) => {
  t.deepEqual(examples.sort(), Object.keys(EXAMPLE_OUTPUT).sort())
})

for (const name of examples) {
  // Serial: the capabilities example serves on the fixed port 8080 its manifest grants.
  test.serial(`examples/${name}/main.ts runs as printed`, (t) => {
    const result = run(path.join(root, 'examples', name, 'main.ts'), root)
    t.is(result.signal, null)
    t.is(result.status, 0, result.stderr)
    t.is(result.stderr, '')
    t.regex(result.stdout, EXAMPLE_OUTPUT[name] ?? /^$/)
  })
}
