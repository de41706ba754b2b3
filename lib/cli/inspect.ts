/** `airssys-wasm inspect`: lists the imports and exports of a component or a core module. */
import type { ComponentItem } from '../component.js'
import { Engine } from '../engine.js'
import type { ModuleItem } from '../module.js'
import { toJsonText } from '../util/json-values.js'
import { wasmKind } from '../util/names.js'
import { onlyTarget, parse } from './args.js'
import { EXIT } from './exit.js'
import { INSPECT_HELP } from './help.js'
import { oneLine, type CliOutput } from './output.js'
import { compileForListing, listing, readTargetWasm } from './wasm.js'

/** One item per line, interfaces with their members indented below them. */
function listItems(items: readonly (ComponentItem | ModuleItem)[], indent = '  '): string[] {
  if (items.length === 0) return [`${indent}(none)`]
  return items.flatMap((item) => {
    // Own fields only, as the package reads listings (bareListing): nothing from Object.prototype.
    const module = Object.hasOwn(item, 'module') ? (item as ModuleItem).module : undefined
    const name = oneLine(module !== undefined ? `${module}.${item.name}` : item.name)
    // Every type string names its kind (`func(...)`, `memory(...)`) except a type definition's.
    const type = item.kind === 'type' ? `type ${item.type}` : item.type
    if (item.kind === 'instance' && Object.hasOwn(item, 'exports')) {
      return [
        `${indent}${name}: instance`,
        ...listItems((item as ComponentItem).exports ?? [], `${indent}  `),
      ]
    }
    return [`${indent}${name}: ${type}`]
  })
}

export async function inspect(args: readonly string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(
    args,
    { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    'inspect',
  )
  if (values.help) {
    io.stdout.write(INSPECT_HELP)
    return EXIT.success
  }
  const target = onlyTarget(
    positionals,
    'inspect',
    'inspect needs a .wasm file (or a directory with a Component.toml)',
  )
  const engine = new Engine()
  try {
    const { file, bytes } = await readTargetWasm(target, 'inspect', engine.maxModuleBytes)
    const kind = wasmKind(bytes)
    const compiled = await compileForListing(engine, bytes, kind)
    const { imports, exports } = compiled
    if (values.json) {
      io.stdout.write(`${toJsonText({ kind, imports: listing(imports), exports: listing(exports) }, 2)}\n`)
    } else {
      const lines = [`${kind} ${file}`, 'imports:', ...listItems(imports), 'exports:', ...listItems(exports)]
      io.stdout.write(`${lines.join('\n')}\n`)
    }
    return EXIT.success
  } finally {
    engine.close()
  }
}
