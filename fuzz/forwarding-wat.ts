/**
 * A component in text form whose export `f: func(x: T) -> T` calls its import `g` of the same type
 * and returns what that gave, for any {@link Wit} type T: a value crosses JS → guest → JS host
 * function → guest → JS, through both conversions of each direction. The core code only passes
 * the canonical ABI's flat values along (and the return area, when the result has more than one),
 * so the guest itself cannot change a value. The flattening and layout rules are the canonical
 * ABI's, restated here independently of the addon.
 */
import type { Wit } from './wit.js'

type Core = 'i32' | 'i64' | 'f32' | 'f64'

/** Flat parameters and results a function may have before the ABI passes them through memory. */
const MAX_FLAT_PARAMS = 16
const MAX_FLAT_RESULTS = 1

/** The cases of a type with cases: a variant's payloads, an option's and a result's. */
function cases(ty: Wit): (Wit | null)[] | undefined {
  if (typeof ty === 'string') return undefined
  if ('variant' in ty) return ty.variant.map(([, payload]) => payload)
  if ('option' in ty) return [null, ty.option]
  if ('result' in ty) return [ty.result[0], ty.result[1]]
  return undefined
}

/** The core values a value of `ty` flattens to. */
export function flat(ty: Wit): Core[] {
  if (typeof ty === 'string') {
    if (ty === 'u64' || ty === 's64') return ['i64']
    if (ty === 'f32' || ty === 'f64') return [ty]
    return ty === 'string' ? ['i32', 'i32'] : ['i32']
  }
  if ('list' in ty) return ['i32', 'i32']
  if ('record' in ty) return ty.record.flatMap(([, field]) => flat(field))
  if ('tuple' in ty) return ty.tuple.flatMap(flat)
  if ('enum' in ty) return ['i32']
  if ('flags' in ty) return Array<Core>(Math.ceil(ty.flags.length / 32)).fill('i32')
  const joined: Core[] = []
  for (const payload of cases(ty)!) {
    if (payload === null) continue
    flat(payload).forEach((core, index) => {
      const before = joined[index]
      joined[index] =
        before === undefined || before === core
          ? core
          : (before === 'i32' && core === 'f32') || (before === 'f32' && core === 'i32')
            ? 'i32'
            : 'i64'
    })
  }
  return ['i32', ...joined]
}

/** Bytes of the discriminant of a type with `count` cases. */
const discriminant = (count: number) => (count <= 256 ? 1 : count <= 65536 ? 2 : 4)

const alignTo = (offset: number, align: number) => Math.ceil(offset / align) * align

/** A value's size and alignment in linear memory. */
export function layout(ty: Wit): { size: number; align: number } {
  if (typeof ty === 'string') {
    const size = { bool: 1, u8: 1, s8: 1, u16: 2, s16: 2, u64: 8, s64: 8, f64: 8, string: 8 }[ty as 'bool']
    return { size: size ?? 4, align: ty === 'string' ? 4 : (size ?? 4) }
  }
  if ('list' in ty) return { size: 8, align: 4 }
  if ('record' in ty || 'tuple' in ty) {
    const members = 'record' in ty ? ty.record.map(([, field]) => field) : ty.tuple
    let size = 0
    let align = 1
    for (const member of members) {
      const inner = layout(member)
      size = alignTo(size, inner.align) + inner.size
      align = Math.max(align, inner.align)
    }
    return { size: alignTo(size, align), align }
  }
  if ('enum' in ty) {
    const size = discriminant(ty.enum.length)
    return { size, align: size }
  }
  if ('flags' in ty) {
    const n = ty.flags.length
    const size = n <= 8 ? 1 : n <= 16 ? 2 : 4 * Math.ceil(n / 32)
    return { size, align: Math.min(size, 4) }
  }
  const payloads = cases(ty)!
  const tag = discriminant(payloads.length)
  let size = 0
  let align = tag
  for (const payload of payloads) {
    if (payload === null) continue
    const inner = layout(payload)
    size = Math.max(size, inner.size)
    align = Math.max(align, inner.align)
  }
  return { size: alignTo(alignTo(tag, align) + size, align), align }
}

/**
 * The type's text, with the named types it holds (records, variants, enums and flags: the
 * component model wants those exported by name) declared in `named` in order, each as
 * `[definition, name]`: `(type $dN def)` then `(export "tN" (type $tN (eq $dN)))`.
 */
function typeText(ty: Wit, named: string[]): string {
  if (typeof ty === 'string') return ty
  if ('list' in ty) return `(list ${typeText(ty.list, named)})`
  if ('tuple' in ty) return `(tuple ${ty.tuple.map((item) => typeText(item, named)).join(' ')})`
  if ('option' in ty) return `(option ${typeText(ty.option, named)})`
  if ('result' in ty) {
    const [ok, err] = ty.result
    return `(result${ok === null ? '' : ` ${typeText(ok, named)}`}${err === null ? '' : ` (error ${typeText(err, named)})`})`
  }
  let definition: string
  if ('record' in ty) {
    definition = `(record ${ty.record.map(([name, field]) => `(field ${quote(name)} ${typeText(field, named)})`).join(' ')})`
  } else if ('variant' in ty) {
    definition = `(variant ${ty.variant
      .map(
        ([name, payload]) => `(case ${quote(name)}${payload === null ? '' : ` ${typeText(payload, named)}`})`,
      )
      .join(' ')})`
  } else if ('enum' in ty) {
    definition = `(enum ${ty.enum.map(quote).join(' ')})`
  } else {
    definition = `(flags ${ty.flags.map(quote).join(' ')})`
  }
  named.push(definition)
  return `$t${named.length - 1}`
}

const quote = (name: string) => JSON.stringify(name)

/** The forwarding component for `ty`, and its interface's name (the key of the host's import). */
export function forwardingWat(ty: Wit): { wat: string; interfaceName: string } {
  const interfaceName = 'test:fwd/host'
  const named: string[] = []
  const t = typeText(ty, named)
  const declarations = named
    .map(
      (definition, index) =>
        `(type $d${index} ${definition}) (export "t${index}" (type $t${index} (eq $d${index})))`,
    )
    .join('\n      ')
  const aliases = named.map((_, index) => `(alias export $h "t${index}" (type $t${index}))`).join('\n  ')

  const params = flat(ty).length > MAX_FLAT_PARAMS ? ['i32'] : flat(ty)
  const results = flat(ty)
  const indirect = results.length > MAX_FLAT_RESULTS
  const { size, align } = layout(ty)
  const paramText = params.map((core) => `(param ${core})`).join(' ')
  const forward = params.map((_, index) => `local.get ${index}`).join(' ')
  // With more than one flat result, the lowered import writes them to a return area it is given,
  // and the lifted export returns the area's address.
  const importType = indirect
    ? `(func (param ${[...params, 'i32'].join(' ')}))`
    : `(func ${paramText} (result ${results[0]}))`
  const exports = indirect
    ? `(func (export "f") ${paramText} (result i32) (local $ret i32)
      i32.const 0 i32.const 0 i32.const ${align} i32.const ${size} call $realloc local.set $ret
      ${forward} local.get $ret call $g local.get $ret)
    (func (export "post") (param i32) call $reset)`
    : `(func (export "f") ${paramText} (result ${results[0]}) ${forward} call $g)
    (func (export "post") (param ${results[0]}) call $reset)`
  const wat = `(component
  (import "${interfaceName}" (instance $h
      ${declarations}
      (export "g" (func (param "x" ${t}) (result ${t})))))
  (alias export $h "g" (func $g))
  ${aliases}
  (core module $mem
    (memory (export "memory") 1)
    (global $bump (mut i32) (i32.const 16))
    ;; Bump allocation, growing the memory; the export's post-return resets it.
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
      (local $at i32) (local $end i32)
      global.get $bump local.get $align i32.add i32.const 1 i32.sub
      i32.const 0 local.get $align i32.sub i32.and local.set $at
      local.get $at local.get $size i32.add local.set $end
      (block $fits (loop $grow
        local.get $end memory.size i32.const 16 i32.shl i32.le_u br_if $fits
        i32.const 1 memory.grow i32.const -1 i32.eq if unreachable end
        br $grow))
      local.get $end global.set $bump
      local.get $old_size if local.get $at local.get $old local.get $old_size memory.copy end
      local.get $at)
    (func (export "reset") i32.const 16 global.set $bump))
  (core instance $m (instantiate $mem))
  (alias core export $m "memory" (core memory $memory))
  (alias core export $m "realloc" (core func $realloc))
  (core func $g_lowered (canon lower (func $g) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core module $main
    (import "m" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "m" "reset" (func $reset))
    (import "h" "g" (func $g ${importType.slice('(func '.length)})
    ${exports})
  (core instance $i (instantiate $main
    (with "m" (instance $m))
    (with "h" (instance (export "g" (func $g_lowered))))))
  (func $f (param "x" ${t}) (result ${t})
    (canon lift (core func $i "f") (memory $memory) (realloc $realloc) string-encoding=utf8
      (post-return (core func $i "post"))))
  (export "f" (func $f)))`
  return { wat, interfaceName }
}
