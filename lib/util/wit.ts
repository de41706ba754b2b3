/**
 * Questions asked of WIT types (the structural types of a component's listing) in more than one
 * place: what JS sees in place of a function's result, and whether a type holds some kind of value.
 */
import type { WitFuncType, WitType } from '../component.js'

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
