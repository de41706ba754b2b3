/**
 * TypeScript declarations of a component, made from its listings (`component.exports` and
 * `imports`): `Exports`, the shape of `instance.exports`, and `Imports`, the shape of the
 * `imports` option, with every WIT type written as the value conversions give and take it. This is
 * what `airssys-wasm types` prints, for `component.instantiate<Exports>({ imports })`.
 *
 * The listings are structural (a record has fields, not a WIT name), so records, variants, enums
 * and flags are written inline where they are used; resources have names, and become named
 * interfaces: the objects and the class of each guest resource, and the class the host writes for
 * each host resource. `Exports` and `Imports` are type aliases rather than interfaces, because
 * only an alias is assignable to the `Record<string, unknown>` that `imports` and `Instance` take.
 */
import type { ComponentItem, WitFuncType, WitType } from './component.js'
import { tagsCarried, valueTypeOf } from './util/wit.js'
import { shortName } from './resources.js'
import { lowerCamel, unversioned, upperCamel } from './util/names.js'
import { bareListing } from './util/own.js'

/** What {@link declarations} needs of a component: its listings (a `Component` will do). */
export interface ComponentListings {
  readonly exports: readonly ComponentItem[]
  readonly imports: readonly ComponentItem[]
}

export interface DeclarationsOptions {
  /** Named in the header comment (the file the declarations were made from). */
  source?: string | undefined
}

/**
 * Which way a value crosses: `in` is what JS hands the component (an export's arguments, a host
 * function's result), which is accepted in more forms; `out` is what the component hands JS.
 */
type Direction = 'in' | 'out'

/** A resource the declarations name: one of the guest's (exported) or the host's (imported). */
interface NamedResource {
  interfaceName: string
  name: string
  side: 'guest' | 'host'
  /** Its `[constructor]`, `[method]` and `[static]` functions. */
  functions: ComponentItem[]
  /** The TypeScript name of its objects' type, and of its class's type (absent: no class). */
  typeName: string
  className?: string
}

/** An interface object of `Exports` or `Imports`, and the TypeScript name of its type. */
interface NamedInterface {
  item: ComponentItem
  side: 'guest' | 'host'
  typeName: string
}

/** Globals the declarations use, which a generated name must not shadow. */
const RESERVED = [
  'Exports',
  'Imports',
  'HostFunctions',
  'Awaitable',
  'Promise',
  'Record',
  'Symbol',
  'Uint8Array',
  'Int8Array',
  'Uint16Array',
  'Int16Array',
  'Uint32Array',
  'Int32Array',
  'BigUint64Array',
  'BigInt64Array',
  'Float32Array',
  'Float64Array',
]

/** Words that cannot name a parameter. */
const RESERVED_WORDS = new Set(
  (
    'break case catch class const continue debugger default delete do else enum export extends false ' +
    'finally for function if import in instanceof new null return super switch this throw true try ' +
    'typeof var void while with implements interface let package private protected public static yield ' +
    'await arguments eval'
  ).split(' '),
)

/**
 * The typed array a numeric list becomes, by element kind (and is accepted as). A `Map`: a kind
 * such as `result` must not find what a polluted `Object.prototype` holds.
 */
const TYPED_ARRAYS: ReadonlyMap<WitType['kind'], [array: string, element: string]> = new Map([
  ['u8', ['Uint8Array', 'number']],
  ['s8', ['Int8Array', 'number']],
  ['u16', ['Uint16Array', 'number']],
  ['s16', ['Int16Array', 'number']],
  ['u32', ['Uint32Array', 'number']],
  ['s32', ['Int32Array', 'number']],
  ['u64', ['BigUint64Array', 'bigint']],
  ['s64', ['BigInt64Array', 'bigint']],
  ['f32', ['Float32Array', 'number']],
  ['f64', ['Float64Array', 'number']],
])

/** `[constructor]counter`, `[method]counter.value`, `[static]counter.split`, split up. */
function resourceFunction(
  name: string,
): { role: 'constructor' | 'method' | 'static'; resource: string; member?: string } | undefined {
  const match = /^\[(constructor|method|static)\]([^.]+)(?:\.(.+))?$/.exec(name)
  if (match === null) return undefined
  return { role: match[1] as 'constructor' | 'method' | 'static', resource: match[2]!, member: match[3] }
}

/**
 * A resource's key among the named ones: an interface both imported and exported has a resource
 * of the host's and one of the guest's under one name.
 */
function resourceKey(side: 'guest' | 'host', interfaceName: string, name: string): string {
  return `${side}:${interfaceName}#${name}`
}

/** The reference host interfaces, which `loadComponent` links from a manifest's grants. */
function linkedBySandbox(interfaceName: string): boolean {
  return interfaceName.startsWith('airssys:host/')
}

/** An identifier made of the words of `text` (`test:resources/api@0.1.0` -> `TestResourcesApi010`). */
function identifier(text: string): string {
  const words = text.split(/[^A-Za-z0-9]+/).filter((word) => word !== '')
  const joined = words.map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join('')
  return /^[0-9]/.test(joined) ? `_${joined}` : joined
}

/**
 * Names for `entities`, each trying its candidates in order (every candidate a set of names it
 * needs together): an entity takes the first candidate whose names no other entity still wants at
 * that level and nothing took before, so two resources both called `logger` are both qualified
 * rather than one of them winning by listing order.
 */
function allocateNames(entities: readonly string[][][], taken: Set<string>): string[][] {
  const chosen: (string[] | undefined)[] = entities.map(() => undefined)
  const levels = Math.max(0, ...entities.map((candidates) => candidates.length))
  for (let level = 0; level < levels; level++) {
    const wanted = new Map<string, number>()
    entities.forEach((candidates, index) => {
      if (chosen[index] !== undefined) return
      for (const name of candidates[level] ?? []) wanted.set(name, (wanted.get(name) ?? 0) + 1)
    })
    entities.forEach((candidates, index) => {
      const names = candidates[level]
      if (chosen[index] !== undefined || names === undefined) return
      if (names.every((name) => wanted.get(name) === 1 && !taken.has(name))) {
        chosen[index] = names
        for (const name of names) taken.add(name)
      }
    })
  }
  // Whatever is still unnamed (the same names at every level) is numbered.
  return entities.map((candidates, index) => {
    const found = chosen[index]
    if (found !== undefined) return found
    const last = candidates[candidates.length - 1] ?? []
    for (let suffix = 2; ; suffix++) {
      const names = last.map((name) => `${name}${suffix}`)
      if (names.every((name) => !taken.has(name))) {
        for (const name of names) taken.add(name)
        return names
      }
    }
  })
}

/** The qualifications a name may take, shortest first: none, the interface, its package, its version. */
function qualifiers(interfaceName: string): string[] {
  const bare = unversioned(interfaceName)
  return [...new Set(['', identifier(shortName(interfaceName)), identifier(bare), identifier(interfaceName)])]
}

/** A property name as TypeScript accepts it (quoted unless a plain identifier). */
function propertyKey(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'new' && name !== 'constructor' ? name : quote(name)
}

function quote(text: string): string {
  return `'${text.replace(/[\\']/g, (char) => `\\${char}`)}'`
}

/** A parameter name TypeScript accepts. */
function parameterName(name: string): string {
  const camel = lowerCamel(name).replace(/[^\w$]/g, '_')
  return RESERVED_WORDS.has(camel) || /^[0-9]/.test(camel) ? `${camel}_` : camel
}

/** Text for a doc comment: it cannot end the comment early. */
function docText(text: string): string {
  return text.replaceAll('*/', '*\\/')
}

/** Whether `type` (TypeScript text) must be parenthesized before `[]`: a union or a readonly array. */
function needsParentheses(type: string): boolean {
  if (type.startsWith('readonly ')) return true
  let depth = 0
  for (let index = 0; index < type.length; index++) {
    const char = type[index]!
    if ('<[{('.includes(char)) depth++
    else if ('>]})'.includes(char)) depth--
    else if (char === '|' && depth === 0) return true
  }
  return false
}

function arrayOf(element: string, direction: Direction): string {
  const item = needsParentheses(element) ? `(${element})` : element
  return direction === 'in' ? `readonly ${item}[]` : `${item}[]`
}

/** The declarations of one component. */
class Writer {
  readonly #resources = new Map<string, NamedResource>()
  readonly #exported: NamedInterface[] = []
  readonly #imported: NamedInterface[] = []

  readonly listings: ComponentListings

  constructor(given: ComponentListings) {
    // Read as the package's own code reads listings: nothing from a polluted Object.prototype.
    const listings = { exports: bareListing(given.exports), imports: bareListing(given.imports) }
    this.listings = listings
    const resources: Omit<NamedResource, 'typeName' | 'className'>[] = []
    const collect = (item: ComponentItem, side: 'guest' | 'host') => {
      const members = item.exports ?? []
      for (const member of members) {
        if (member.kind !== 'resource') continue
        const functions = members.filter(
          (fn) => fn.kind === 'func' && resourceFunction(fn.name)?.resource === member.name,
        )
        // A guest resource an interface only re-exports (`use`) has its class where it is defined.
        if (side === 'guest' && functions.length === 0) continue
        resources.push({ interfaceName: item.name, name: member.name, side, functions })
      }
    }
    for (const item of listings.exports) if (item.kind === 'instance') collect(item, 'guest')
    const imported = listings.imports.filter(
      (item) => item.kind === 'instance' && item.providedByRuntime !== true,
    )
    for (const item of imported) collect(item, 'host')
    // Resources imported at the world's root: their classes sit at the top level of the imports.
    collect({ name: '', kind: 'instance', type: 'instance', exports: [...listings.imports] }, 'host')
    // An imported interface of types alone (no functions, no resource classes) needs no object; a
    // resource a listing has not named before is one this interface defines, whose class the
    // host gives (a `use`d one keeps its name unless renamed, which only costs an empty object).
    const named = new Set<string>()
    const definesResource = new Map<ComponentItem, boolean>()
    for (const item of listings.imports) {
      if (item.kind === 'resource') named.add(item.name)
      const resources = (item.exports ?? []).filter((member) => member.kind === 'resource')
      definesResource.set(
        item,
        resources.some((member) => !named.has(member.name)),
      )
      for (const member of resources) named.add(member.name)
    }
    const needsObject = (item: ComponentItem) =>
      (item.exports ?? []).some((member) => member.kind === 'func') || definesResource.get(item) === true
    const interfaces = [
      ...listings.exports
        .filter((item) => item.kind === 'instance')
        .map((item) => ({ item, side: 'guest' as const })),
      ...imported.filter(needsObject).map((item) => ({ item, side: 'host' as const })),
    ]

    const entities = [
      ...resources.map((resource) => {
        const base = upperCamel(resource.name)
        const withClass = resource.functions.length > 0
        return qualifiers(resource.interfaceName).map((qualifier) =>
          withClass ? [`${qualifier}${base}`, `${qualifier}${base}Class`] : [`${qualifier}${base}`],
        )
      }),
      ...interfaces.map(({ item, side }) =>
        qualifiers(item.name)
          .slice(1)
          .map((qualifier) => [`${qualifier}${side === 'guest' ? 'Exports' : 'Imports'}`]),
      ),
    ]
    const names = allocateNames(entities, new Set(RESERVED))
    resources.forEach((resource, index) => {
      const [typeName, className] = names[index]!
      this.#resources.set(resourceKey(resource.side, resource.interfaceName, resource.name), {
        ...resource,
        typeName: typeName!,
        className,
      })
    })
    interfaces.forEach((entry, index) => {
      const named = { ...entry, typeName: names[resources.length + index]![0]! }
      ;(entry.side === 'guest' ? this.#exported : this.#imported).push(named)
    })
  }

  /** The whole file. */
  write(options: DeclarationsOptions): string {
    // A file name may hold a line break, which would end the comment it is named in.
    const source =
      options.source === undefined ? '' : ` from ${options.source.replace(/[\r\n\u2028\u2029]/g, ' ')}`
    const resources = [...this.#resources.values()]
    const exported = [
      this.#exportsType(),
      ...this.#exported.map((named) => this.#interfaceType(named)),
      ...resources.filter((r) => r.side === 'guest').flatMap((r) => this.#resourceTypes(r)),
    ]
    const imported = [
      this.#importsType(),
      ...this.#imported.map((named) => this.#interfaceType(named)),
      ...resources.filter((r) => r.side === 'host').flatMap((r) => this.#resourceTypes(r)),
    ]
    const awaitable = imported.some((block) => block.includes('Awaitable<'))
      ? [
          '/** A host function may return its value or a promise of it. */\ntype Awaitable<T> = T | Promise<T>',
        ]
      : []
    const blocks = [
      [
        `// Generated by \`airssys-wasm types\`${source}: generate again rather than edit.`,
        '// Exports is the shape of `instance.exports` (`component.instantiate<Exports>(...)`), Imports the',
        '// shape of the `imports` option (the WASI interfaces the runtime provides are left out).',
      ].join('\n'),
      ...exported,
      imported[0]!,
      ...awaitable,
      ...imported.slice(1),
    ]
    return `${blocks.join('\n\n')}\n`
  }

  /** `Exports`, keyed as `jcoExports` keys `instance.exports` (in its order, the same name winning). */
  #exportsType(): string {
    const entries = new Map<string, string>()
    const shortCounts = new Map<string, number>()
    for (const item of this.listings.exports) {
      if (item.kind === 'instance')
        shortCounts.set(shortName(item.name), (shortCounts.get(shortName(item.name)) ?? 0) + 1)
    }
    for (const item of this.listings.exports) {
      if (item.kind === 'func') {
        entries.set(lowerCamel(item.name), this.#exportFunction(propertyKey(lowerCamel(item.name)), item))
      } else if (item.kind === 'instance') {
        const typeName = this.#exported.find((named) => named.item === item)!.typeName
        entries.set(item.name, `  ${quote(item.name)}: ${typeName}`)
        const short = shortName(item.name)
        if (shortCounts.get(short) === 1 && !entries.has(short)) {
          entries.set(
            short,
            `  /** \`${docText(item.name)}\`, by its short name. */\n  ${propertyKey(short)}: ${typeName}`,
          )
        }
      }
    }
    return `/** What \`instance.exports\` holds. */\nexport type Exports = ${objectType([...entries.values()])}`
  }

  /** `Imports`: root functions, and an object per imported interface (by its full name). */
  #importsType(): string {
    const lines: string[] = []
    for (const item of this.listings.imports) {
      if (item.kind === 'func' && !item.name.startsWith('[')) {
        lines.push(this.#hostFunction(propertyKey(lowerCamel(item.name)), item))
      } else if (item.kind === 'resource') {
        const className = this.#resources.get(resourceKey('host', '', item.name))?.className
        if (className !== undefined) {
          const doc = `The host's class for the \`${item.name}\` resource imported at the world's root.`
          lines.push(`  /** ${docText(doc)} */\n  ${propertyKey(upperCamel(item.name))}: ${className}`)
        }
      } else if (item.kind === 'instance' && item.providedByRuntime !== true) {
        const named = this.#imported.find((entry) => entry.item === item)
        if (named !== undefined) lines.push(`  ${quote(item.name)}: ${named.typeName}`)
      }
    }
    const linked = this.listings.imports
      .filter((item) => item.kind === 'instance' && linkedBySandbox(item.name))
      .map((item) => quote(item.name))
    const optional = linked.length === 0 ? 'never' : linked.join(' | ')
    return [
      `/** What the \`imports\` option must give. */\nexport type Imports = ${objectType(lines)}`,
      [
        '/**',
        " * What `loadComponent`'s `hostFunctions` must give: as `Imports`, but the reference host",
        " * interfaces (`airssys:host/*`), which the sandbox links from the manifest's grants, may be left out.",
        ' */',
        `export type HostFunctions = Omit<Imports, ${optional}> & Partial<Pick<Imports, ${optional}>>`,
      ].join('\n'),
    ].join('\n\n')
  }

  /** The functions and resource classes of an interface object. */
  #interfaceMembers({ item, side }: NamedInterface): string[] {
    const lines: string[] = []
    for (const member of item.exports ?? []) {
      if (member.kind === 'func' && !member.name.startsWith('[')) {
        const key = propertyKey(lowerCamel(member.name))
        lines.push(side === 'guest' ? this.#exportFunction(key, member) : this.#hostFunction(key, member))
      } else if (member.kind === 'resource') {
        const resource = this.#resources.get(resourceKey(side, item.name, member.name))
        if (resource?.className !== undefined) {
          const doc =
            side === 'guest'
              ? `The class of the guest's \`${member.name}\` resource.`
              : `The host's class for the \`${member.name}\` resource. (At run time the WIT name \`${member.name}\` is also taken as the key; these types spell every key in lowerCamelCase or UpperCamelCase, as jco does.)`
          lines.push(
            `  /** ${docText(doc)} */\n  ${propertyKey(upperCamel(member.name))}: ${resource.className}`,
          )
        } else if (side === 'host' && resource !== undefined) {
          // No function makes or takes one here: the class may be given (the runtime takes it,
          // and a LinkError names it) or left out.
          const doc = `The host's class for the \`${member.name}\` resource, which no function here makes or takes: optional.`
          lines.push(
            `  /** ${docText(doc)} */\n  ${propertyKey(upperCamel(member.name))}?: abstract new (...args: never[]) => ${resource.typeName}`,
          )
        }
      }
    }
    return lines
  }

  #interfaceType(named: NamedInterface): string {
    const members = this.#interfaceMembers(named)
    const doc = `/** \`${docText(named.item.name)}\`${named.side === 'guest' ? ', exported by the component' : ', implemented by the host'}. */`
    if (members.length === 0) return `${doc}\nexport type ${named.typeName} = Record<string, never>`
    return `${doc}\nexport interface ${named.typeName} ${objectType(members)}`
  }

  /** A guest function as a method: it returns an ok result's value (an err throws). */
  #exportFunction(key: string, item: ComponentItem, skipSelf = false): string {
    const func = item.func
    if (func === undefined) return `  ${key}(...args: unknown[]): unknown`
    const params = this.#parameters(func, 'in', skipSelf)
    const returned = valueTypeOf(func)
    const result = returned === undefined ? 'void' : this.#type(returned, 'out')
    const note =
      func.result?.kind === 'result' ? '. An err result throws ComponentError, its value in `payload`.' : ''
    return `  /** \`${docText(item.type)}\`${note} */\n  ${key}(${params}): ${result}`
  }

  /** A host function: takes the values the guest passes, returns (or resolves to) the ok value. */
  #hostFunction(key: string, item: ComponentItem, skipSelf = false): string {
    const func = item.func
    if (func === undefined) return `  ${key}(...args: never[]): unknown`
    const params = this.#parameters(func, 'out', skipSelf)
    const returned = valueTypeOf(func)
    let result = returned === undefined ? 'void' : this.#type(returned, 'in')
    let note = ''
    if (func.result?.kind === 'result') {
      // As jco takes it: the ok value, or the result itself (an object whose own `tag` is ok or
      // err), but for a tag the ok value may carry itself.
      const { ok, err } = func.result
      const carried = tagsCarried(ok)
      if (!carried.ok) result += ` | ${this.#tagged('ok', ok, 'in', '  ')}`
      if (!carried.err) result += ` | ${this.#tagged('err', err, 'in', '  ')}`
      const itself =
        carried.ok && carried.err
          ? ''
          : carried.ok || carried.err
            ? ` or the result itself tagged '${carried.ok ? 'err' : 'ok'}'`
            : ' or the result itself'
      note = `. Return the ok value${itself}; throwing means err (its \`payload\`, or an Error’s message).`
    }
    return `  /** \`${docText(item.type)}\`${note} */\n  ${key}(${params}): Awaitable<${result}>`
  }

  #parameters(func: WitFuncType, direction: Direction, skipSelf: boolean): string {
    return func.params
      .slice(skipSelf ? 1 : 0)
      .map((param) => `${parameterName(param.name)}: ${this.#type(param.type, direction)}`)
      .join(', ')
  }

  /** The object type of a resource, and the type of its class. */
  #resourceTypes(resource: NamedResource): string[] {
    const { typeName, className, side, name, interfaceName } = resource
    const where =
      interfaceName === ''
        ? `\`${docText(name)}\` (imported at the world's root)`
        : `\`${docText(name)}\` (\`${docText(interfaceName)}\`)`
    if (className === undefined) {
      return [`/** An object of the host's resource ${where}. */\nexport type ${typeName} = object`]
    }
    const methods: string[] = []
    const statics: string[] = []
    let construct: string | undefined
    for (const fn of resource.functions) {
      const parsed = resourceFunction(fn.name)
      if (parsed === undefined || fn.func === undefined) continue
      if (parsed.role === 'constructor') {
        const params = this.#parameters(fn.func, side === 'guest' ? 'in' : 'out', false)
        construct = `  /** \`${docText(fn.type)}\` */\n  new (${params}): ${typeName}`
        continue
      }
      const key = propertyKey(lowerCamel(parsed.member ?? ''))
      const method = parsed.role === 'method'
      // A class's own `prototype` cannot be replaced: the guest's static of that name is reached
      // by its path only, so it is not the class's.
      if (side === 'guest' && !method && key === 'prototype') continue
      const line =
        side === 'guest' ? this.#exportFunction(key, fn, method) : this.#hostFunction(key, fn, method)
      ;(method ? methods : statics).push(line)
    }
    const dispose =
      side === 'guest'
        ? "  /** Drops the handle now (the guest's destructor runs); later use throws DisposedError. */\n  [Symbol.dispose](): void"
        : '  /** Runs when the guest drops its handle. */\n  [Symbol.dispose]?(): void'
    // Without a constructor, the host's class is only looked up (any class will do), and the
    // guest's cannot be constructed (`new` throws): it only has its prototype.
    construct ??=
      side === 'host'
        ? `  new (...args: never[]): ${typeName}`
        : `  /** \`${docText(name)}\` has no constructor. */\n  readonly prototype: ${typeName}`
    const objectDoc =
      side === 'guest'
        ? `/** An object of the guest's resource ${where}. */`
        : `/** An object of the host's resource ${where}: an instance of the host's class. */`
    const classDoc =
      side === 'guest'
        ? `/** The class of the guest's resource ${where}. */`
        : `/** The class the host writes for its resource ${where}. */`
    // A host object without methods is any object: an interface of only the optional dispose
    // would be a weak type, refusing objects that share none of its members.
    const object =
      side === 'host' && methods.length === 0
        ? `${objectDoc}\nexport type ${typeName} = object`
        : `${objectDoc}\nexport interface ${typeName} ${objectType([...methods, dispose])}`
    return [object, `${classDoc}\nexport interface ${className} ${objectType([construct, ...statics])}`]
  }

  /** The TypeScript type of a WIT value crossing in `direction`. */
  #type(type: WitType, direction: Direction, indent = '  '): string {
    const inner = indent + '  '
    switch (type.kind) {
      case 'bool':
        return 'boolean'
      case 's8':
      case 'u8':
      case 's16':
      case 'u16':
      case 's32':
      case 'u32':
      case 'f32':
      case 'f64':
        return 'number'
      case 's64':
      case 'u64':
        return 'bigint'
      case 'char':
      case 'string':
        return 'string'
      case 'list': {
        const typed = TYPED_ARRAYS.get(type.element.kind)
        if (typed !== undefined) {
          const [array, element] = typed
          return direction === 'in' ? `${array} | readonly ${element}[]` : array
        }
        return arrayOf(this.#type(type.element, direction, indent), direction)
      }
      case 'option': {
        // An option of an option is tagged: `undefined` alone could not tell the two nones apart.
        if (type.element.kind === 'option') {
          const some = literal([`tag: 'some'`, this.#val(type.element, direction, inner)], indent)
          return `${some} | { tag: 'none' }`
        }
        const element = this.#type(type.element, direction, indent)
        return direction === 'in' ? `${element} | undefined | null` : `${element} | undefined`
      }
      case 'record': {
        const fields = type.fields.map((field) => {
          const key = lowerCamel(field.name)
          const optional = mayBeLeftOut(field.type, direction)
          const value = this.#type(field.type, direction, inner)
          return optional
            ? `${propertyKey(key)}?: ${value}${inheritedAlso(key)}`
            : `${propertyKey(key)}: ${value}`
        })
        return literal(fields, indent)
      }
      case 'tuple': {
        const items = `[${type.types.map((item) => this.#type(item, direction, indent)).join(', ')}]`
        return direction === 'in' ? `readonly ${items}` : items
      }
      case 'variant':
        return type.cases
          .map((item) =>
            item.type === undefined
              ? `{ tag: ${quote(item.name)} }`
              : literal([`tag: ${quote(item.name)}`, this.#val(item.type, direction, inner)], indent),
          )
          .join(' | ')
      case 'enum':
        return type.names.map(quote).join(' | ')
      case 'flags': {
        // Flags given are set; a missing key is false.
        const keys = type.names.map((name) => {
          const key = lowerCamel(name)
          return direction === 'in'
            ? `${propertyKey(key)}?: boolean${inheritedAlso(key)}`
            : `${propertyKey(key)}: boolean`
        })
        return keys.length === 0 ? 'Record<string, never>' : literal(keys, indent)
      }
      case 'result':
        return `${this.#tagged('ok', type.ok, direction, indent)} | ${this.#tagged('err', type.err, direction, indent)}`
      case 'own':
      case 'borrow': {
        const key = resourceKey(
          type.imported === true ? 'host' : 'guest',
          type.interface ?? '',
          type.resource ?? '',
        )
        return this.#resources.get(key)?.typeName ?? 'unknown'
      }
      default:
        // Maps, futures, streams and error contexts do not cross to JS yet.
        return 'unknown'
    }
  }

  /** A case's payload, which may be left out as a record's field may (see {@link mayBeLeftOut}). */
  #val(payload: WitType, direction: Direction, indent: string): string {
    return `val${mayBeLeftOut(payload, direction) ? '?' : ''}: ${this.#type(payload, direction, indent)}`
  }

  /** One side of a result: `{ tag }`, or `{ tag, val }` with a payload. */
  #tagged(tag: 'ok' | 'err', payload: WitType | undefined, direction: Direction, indent: string): string {
    return payload === undefined
      ? `{ tag: '${tag}' }`
      : literal([`tag: '${tag}'`, this.#val(payload, direction, indent + '  ')], indent)
  }
}

/**
 * What every object inherits under a name a WIT name can spell. Where such a key is optional,
 * TypeScript reads an object that leaves it out as having the inherited member there (a flags
 * object without `constructor` has `Function`): the type accepts that member too, or no value
 * without the key would do. The addon reads such keys as own properties only, so it is never
 * taken (its `OBJECT_MEMBERS`, crate/src/component/convert.rs, lists the same names as WIT spells
 * them).
 */
const INHERITED = new Set([
  'constructor',
  'hasOwnProperty',
  'isPrototypeOf',
  'propertyIsEnumerable',
  'toLocaleString',
  'toString',
  'valueOf',
])

/** For an optional key: ` | Object['key']` when every object inherits `key`, else nothing. */
/**
 * Whether a field or case payload going in may be left out: the conversions read a missing one
 * as undefined, which an option takes as none. An option of an option takes only its tagged form,
 * so it must be there.
 */
function mayBeLeftOut(type: WitType, direction: Direction): boolean {
  return direction === 'in' && type.kind === 'option' && type.element.kind !== 'option'
}

function inheritedAlso(key: string): string {
  return INHERITED.has(key) ? ` | Object['${key}']` : ''
}

/** An object type on one line, or a member per line (at `indent`) when that is too long to read. */
function literal(members: readonly string[], indent: string): string {
  const line = `{ ${members.join('; ')} }`
  if (!line.includes('\n') && line.length <= 72) return line
  return `{\n${members.map((member) => `${indent}  ${member}`).join('\n')}\n${indent}}`
}

/** `{ ... }` with a member per line, or `Record<string, never>` for none. */
function objectType(members: readonly string[]): string {
  return members.length === 0 ? 'Record<string, never>' : `{\n${members.join('\n')}\n}`
}

/** TypeScript declarations (`Exports`, `Imports` and the types they use) of a component. */
export function declarations(component: ComponentListings, options: DeclarationsOptions = {}): string {
  return new Writer(component).write(options)
}
