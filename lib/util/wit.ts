/**
 * Questions asked of WIT types (the structural types of a component's listing) in more than one
 * place: what JS sees in place of a function's result, and whether a type holds some kind of value.
 */
import type { WitFuncType, WitType } from '../component.js'
import { lowerCamel } from './names.js'

/**
 * The type JS sees in place of a function's result: a `result`'s ok type (its err is an exception,
 * for exports and host functions alike), otherwise the result's own type.
 */
export function valueTypeOf(func: WitFuncType): WitType | undefined {
  return func.result?.kind === 'result' ? func.result.ok : func.result
}

/**
 * Whether `type`, or a type inside it (a list's or option's element, a field, a tuple member, a
 * case's or a result's payload), passes `test`.
 */
export function someType(type: WitType, test: (type: WitType) => boolean): boolean {
  if (test(type)) return true
  const inside = (inner: WitType | undefined) => inner !== undefined && someType(inner, test)
  switch (type.kind) {
    case 'list':
    case 'option':
      return inside(type.element)
    case 'record':
      return type.fields.some((field) => inside(field.type))
    case 'tuple':
      return type.types.some(inside)
    case 'variant':
      return type.cases.some((item) => inside(item.type))
    case 'result':
      return inside(type.ok) || inside(type.err)
    default:
      return false
  }
}

/**
 * Whether a JS value of `type` may have an own `tag` of `ok`, and of `err`: a host function for a
 * `result` import may return the result itself (`{ tag, val }`, as jco takes it) except with a
 * tag its ok value may carry, which is then the ok value. jco's rule, which the addon repeats
 * (crate/src/component/linker.rs): a result's value has either tag, a variant's its cases of
 * those names, a record with a field and flags with a flag whose JS key is `tag` (`tag` or `TAG`
 * in WIT; jco looks at the WIT name only) may have any, an option's what its element's may.
 */
export function tagsCarried(type: WitType | undefined): { ok: boolean; err: boolean } {
  switch (type?.kind) {
    case 'result':
      return { ok: true, err: true }
    case 'variant':
      return {
        ok: type.cases.some((item) => item.name === 'ok'),
        err: type.cases.some((item) => item.name === 'err'),
      }
    case 'record': {
      const any = type.fields.some((field) => lowerCamel(field.name) === 'tag')
      return { ok: any, err: any }
    }
    case 'flags': {
      const any = type.names.some((name) => lowerCamel(name) === 'tag')
      return { ok: any, err: any }
    }
    case 'option':
      return tagsCarried(type.element)
    default:
      return { ok: false, err: false }
  }
}
