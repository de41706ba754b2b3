/**
 * Reads back the WIT-like type strings that `component.exports` and `module.exports` give
 * (`func(name: string, n: u64) -> string`, `func(i32, i64) -> i64`), so tools such as the CLI can
 * convert values by type. Unknown forms parse as `other` rather than failing.
 */

/** A parsed value type. */
export type WitType =
  | { kind: 'primitive'; name: string }
  | { kind: 'list'; element: WitType }
  | { kind: 'option'; inner: WitType }
  | { kind: 'result'; ok?: WitType; err?: WitType }
  | { kind: 'tuple'; items: WitType[] }
  | { kind: 'record'; fields: { name: string; type: WitType }[] }
  | { kind: 'variant'; cases: { name: string; type?: WitType }[] }
  | { kind: 'other'; text: string }

/** A function's parameters (core wasm parameters have no names). */
export interface FuncSignature {
  params: { name?: string; type: WitType }[]
}

const TOKEN = /\s*(->|[A-Za-z_][A-Za-z0-9_-]*|\d+|[<>(){},:])/y

function tokenize(text: string): string[] {
  const tokens: string[] = []
  let position = 0
  for (;;) {
    TOKEN.lastIndex = position
    const match = TOKEN.exec(text)
    if (match === null) break
    tokens.push(match[1] as string)
    position = TOKEN.lastIndex
  }
  if (text.slice(position).trim() !== '') throw new SyntaxError(`cannot read type "${text}"`)
  return tokens
}

class Parser {
  #index = 0

  constructor(readonly tokens: string[]) {}

  peek(): string | undefined {
    return this.tokens[this.#index]
  }

  next(): string {
    const token = this.tokens[this.#index++]
    if (token === undefined) throw new SyntaxError('unexpected end of type')
    return token
  }

  expect(token: string): void {
    const found = this.next()
    if (found !== token) throw new SyntaxError(`expected "${token}", found "${found}"`)
  }

  /** Items separated by commas up to `close` (which is consumed). */
  list<T>(close: string, item: () => T): T[] {
    const items: T[] = []
    while (this.peek() !== close) {
      items.push(item())
      if (this.peek() === ',') this.next()
      else break
    }
    this.expect(close)
    return items
  }

  type(): WitType {
    const name = this.next()
    switch (name) {
      case 'list': {
        this.expect('<')
        const element = this.type()
        // A fixed length (`list<u8, 4>`) does not change how values convert.
        if (this.peek() === ',') {
          this.next()
          this.next()
        }
        this.expect('>')
        return { kind: 'list', element }
      }
      case 'option': {
        this.expect('<')
        const inner = this.type()
        this.expect('>')
        return { kind: 'option', inner }
      }
      case 'result': {
        if (this.peek() !== '<') return { kind: 'result' }
        this.next()
        const [ok, err] = this.list('>', () => {
          if (this.peek() !== '_') return this.type()
          this.next()
          return undefined
        })
        return { kind: 'result', ok, err }
      }
      case 'tuple':
        this.expect('<')
        return { kind: 'tuple', items: this.list('>', () => this.type()) }
      case 'record':
        this.expect('{')
        return {
          kind: 'record',
          fields: this.list('}', () => {
            const field = this.next()
            this.expect(':')
            return { name: field, type: this.type() }
          }),
        }
      case 'variant':
        this.expect('{')
        return {
          kind: 'variant',
          cases: this.list('}', () => {
            const caseName = this.next()
            if (this.peek() !== '(') return { name: caseName }
            this.next()
            const type = this.type()
            this.expect(')')
            return { name: caseName, type }
          }),
        }
      case 'enum':
      case 'flags':
        this.expect('{')
        this.list('}', () => this.next())
        return { kind: 'other', text: name }
      default:
        if (this.peek() === '<') {
          // own<resource>, borrow<resource>, map<K, V>: passed through unconverted.
          this.next()
          this.list('>', () => this.type())
          return { kind: 'other', text: name }
        }
        return { kind: 'primitive', name }
    }
  }

  func(): FuncSignature {
    this.expect('func')
    this.expect('(')
    const params = this.list(')', () => {
      const [first, second] = [this.tokens[this.#index], this.tokens[this.#index + 1]]
      if (first !== undefined && second === ':') {
        this.#index += 2
        return { name: first, type: this.type() }
      }
      return { type: this.type() }
    })
    return { params }
  }
}

/** Parses a function type string; throws a SyntaxError for text it cannot read. */
export function parseFuncSignature(text: string): FuncSignature {
  return new Parser(tokenize(text)).func()
}
