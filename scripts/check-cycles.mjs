// Fails when the crate's modules import each other in a cycle (`npm run lint`).
// Each file's `use crate::a::b` (and `crate::a::b::` paths in code) is an edge from the file's
// module to the module it names; a module is a file under crate/src (a folder's mod.rs or the
// sibling `name.rs` is the module `name`). Edges from a module to its own submodules or parent are
// kept: a parent that reaches into a child which reaches back is a cycle too.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const src = fileURLToPath(new URL('../crate/src', import.meta.url))

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.rs') ? [path] : []
  })
}

/** `crate/src/component/func.rs` -> `component::func`; `lib.rs` and `mod.rs` name their folder. */
function moduleOf(file) {
  const parts = relative(src, file).replace(/\.rs$/, '').split(sep)
  if (parts.at(-1) === 'mod' || parts.at(-1) === 'lib') parts.pop()
  return parts.join('::')
}

const modules = new Map(files(src).map((file) => [moduleOf(file), file]))

/** The longest known module that `path` (a::b::Item) starts with. */
function resolve(path) {
  const parts = path.split('::')
  for (let length = parts.length; length > 0; length--) {
    const candidate = parts.slice(0, length).join('::')
    if (modules.has(candidate)) return candidate
  }
  return undefined
}

/**
 * Absolute paths (below `crate::`) that a file of `module` names: `crate::`, `super::` and `self::`
 * paths and `use child::…` of its own submodules, with `use {a, b::{c, d}}` groups expanded.
 */
function cratePaths(module, source) {
  const parent = module.split('::').slice(0, -1).join('::')
  const join = (base, rest) => (base ? `${base}::${rest}` : rest)
  let code = source.replace(/\/\/.*$/gm, '')
  code = code
    .replace(/\bsuper::/g, `crate::${join(parent, '')}`)
    .replace(/\bself::/g, `crate::${join(module, '')}`)
  for (const child of code.matchAll(/^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;/gm)) {
    code = code.replace(new RegExp(`\\buse\\s+${child[1]}::`, 'g'), `use crate::${join(module, child[1])}::`)
  }
  const paths = []
  const expand = (prefix, group) => {
    let depth = 0
    let start = 0
    const items = []
    for (let i = 0; i <= group.length; i++) {
      const ch = group[i]
      if (ch === '{') depth++
      else if (ch === '}') depth--
      else if ((ch === ',' || i === group.length) && depth === 0) {
        items.push(group.slice(start, i).trim())
        start = i + 1
      }
    }
    for (const item of items.filter(Boolean)) {
      const brace = item.indexOf('{')
      if (brace >= 0) expand(prefix + item.slice(0, brace), item.slice(brace + 1, item.lastIndexOf('}')))
      else paths.push(prefix + item.split(/\s+as\s+/)[0])
    }
  }
  for (const match of code.matchAll(/crate::((?:\w+::)*)\{([^;]*)\}/g)) expand(match[1], match[2])
  for (const match of code.matchAll(/crate::(\w+(?:::\w+)*)/g)) paths.push(match[1])
  return paths
}

const edges = new Map()
for (const [module, file] of modules) {
  if (module === '') continue
  const targets = new Set()
  for (const path of cratePaths(module, readFileSync(file, 'utf8'))) {
    const target = resolve(path.replace(/::self$/, ''))
    if (target && target !== module) targets.add(target)
  }
  edges.set(module, targets)
}

// Tarjan's strongly connected components: any component with more than one module is a cycle.
let index = 0
const indices = new Map()
const lowlinks = new Map()
const stack = []
const onStack = new Set()
const cycles = []
function connect(module) {
  indices.set(module, index)
  lowlinks.set(module, index)
  index++
  stack.push(module)
  onStack.add(module)
  for (const target of edges.get(module) ?? []) {
    if (!indices.has(target)) {
      connect(target)
      lowlinks.set(module, Math.min(lowlinks.get(module), lowlinks.get(target)))
    } else if (onStack.has(target)) {
      lowlinks.set(module, Math.min(lowlinks.get(module), indices.get(target)))
    }
  }
  if (lowlinks.get(module) === indices.get(module)) {
    const members = []
    let member
    do {
      member = stack.pop()
      onStack.delete(member)
      members.push(member)
    } while (member !== module)
    if (members.length > 1) cycles.push(members.sort())
  }
}
for (const module of edges.keys()) if (!indices.has(module)) connect(module)

if (process.argv.includes('--graph')) {
  for (const [module, targets] of [...edges].sort())
    console.log(`${module} -> ${[...targets].sort().join(', ')}`)
}
if (cycles.length > 0) {
  console.error('check-cycles: crate/src has import cycles:')
  for (const cycle of cycles) {
    const within = cycle.map((module) => {
      const inside = [...(edges.get(module) ?? [])].filter((target) => cycle.includes(target))
      return `  ${module} -> ${inside.join(', ')}`
    })
    console.error(`- ${cycle.join(', ')}\n${within.join('\n')}`)
  }
  process.exit(1)
}
console.log(`check-cycles: ${edges.size} crate modules, no import cycle`)
