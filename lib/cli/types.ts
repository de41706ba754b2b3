/** `airssys-wasm types`: writes TypeScript declarations of a component's exports and imports. */
import { writeFile } from 'node:fs/promises'
import path from 'node:path'

import { declarations } from '../dts.js'
import { Engine } from '../engine.js'
import { wasmKind } from '../util/names.js'
import { onlyTarget, parse, UsageError } from './args.js'
import { EXIT } from './exit.js'
import { TYPES_HELP } from './help.js'
import type { CliOutput } from './output.js'
import { compileForListing, readTargetWasm } from './wasm.js'

export async function types(args: readonly string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(
    args,
    { output: { type: 'string', short: 'o' }, help: { type: 'boolean', short: 'h' } },
    'types',
  )
  if (values.help) {
    io.stdout.write(TYPES_HELP)
    return EXIT.success
  }
  const target = onlyTarget(
    positionals,
    'types',
    'types needs a component .wasm file (or a directory with a Component.toml)',
  )
  const engine = new Engine()
  try {
    const { file, bytes } = await readTargetWasm(target, 'types', engine.maxModuleBytes)
    if (wasmKind(bytes) !== 'component') {
      // Only bytes that compile are a core module; anything else is a CompileError, as for inspect.
      await engine.compileModule(bytes)
      throw new UsageError(`${file} is a core module: types describes a component's WIT interface`, 'types')
    }
    const component = await compileForListing(engine, bytes, 'component')
    const text = declarations(component, { source: path.basename(file) })
    if (values.output === undefined) {
      io.stdout.write(text)
      return EXIT.success
    }
    try {
      await writeFile(values.output, text)
    } catch (error) {
      throw new UsageError(
        `cannot write ${values.output}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        'types',
      )
    }
    return EXIT.success
  } finally {
    engine.close()
  }
}
