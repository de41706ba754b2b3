/**
 * Filesystem globs, matched in time linear in the path's length. The syntax is the one
 * `globProblem` in ./patterns.ts accepts: `*` and `?` within one segment, `[abc]`, `[a-z]` and
 * `[!abc]` classes, `{a,b}` alternatives, and `**` as a whole segment for any number of segments.
 * Wildcards match names starting with a dot too: a grant covers everything the glob spells,
 * hidden files included.
 *
 * Why not a regular expression: the paths come from the guest, and a backtracking engine takes
 * exponential time on `**\/x/**\/y/**` against a path of many near-misses (seconds for 4 KB, on the
 * JS thread). No well-kept npm matcher avoids backtracking (they all compile to RegExp), so the
 * glob becomes a small automaton (Thompson's construction) run over the path one code point at a
 * time while tracking the set of live states: O(path length × glob length), with no backtracking.
 */
import { classEnd } from './patterns.js'

/** A state that consumes one code point, a fork that consumes none, or the accepting state. */
type State =
  | { kind: 'step'; accepts: (codePoint: number) => boolean; next: number; cost: number }
  | { kind: 'fork'; next: number[] }
  | { kind: 'match' }

const SLASH = 0x2f
const isSlash = (codePoint: number) => codePoint === SLASH
const isNameCharacter = (codePoint: number) => codePoint !== SLASH

/** The index of the `}` closing the `{` at `open`, or -1. */
function closingBrace(segment: string, open: number): number {
  let depth = 0
  for (let index = open; index < segment.length; index++) {
    if (segment[index] === '{') depth++
    else if (segment[index] === '}' && --depth === 0) return index
  }
  return -1
}

/** Splits the inside of a `{...}` group at its top-level commas. */
function alternatives(inside: string): string[] {
  const parts: string[] = []
  let depth = 0
  let start = 0
  for (let index = 0; index < inside.length; index++) {
    const char = inside[index]
    if (char === '{') depth++
    else if (char === '}') depth--
    else if (char === ',' && depth === 0) {
      parts.push(inside.slice(start, index))
      start = index + 1
    }
  }
  parts.push(inside.slice(start))
  return parts
}

/**
 * The test of a `[...]` class; `body` is what lies between the brackets. `a-z` is a range (by code
 * point), a `-` first or last is itself; a range written backwards matches nothing. A class never
 * matches `/`.
 */
function characterClass(body: string): { accepts: (codePoint: number) => boolean; ranges: number } {
  const negated = body.startsWith('!') || body.startsWith('^')
  const members = Array.from(negated ? body.slice(1) : body, (char) => char.codePointAt(0) ?? 0)
  const ranges: [number, number][] = []
  for (let index = 0; index < members.length; index++) {
    const low = members[index] ?? 0
    const high = members[index + 2]
    if (members[index + 1] === 0x2d && high !== undefined) {
      ranges.push([low, high])
      index += 2
    } else {
      ranges.push([low, low])
    }
  }
  const inClass = (codePoint: number) => ranges.some(([low, high]) => low <= codePoint && codePoint <= high)
  return {
    accepts: (codePoint) => codePoint !== SLASH && inClass(codePoint) !== negated,
    ranges: ranges.length,
  }
}

/** Builds the automaton back to front: each piece is compiled knowing the state that follows it. */
class Automaton {
  readonly states: State[] = [{ kind: 'match' }]

  #add(state: State): number {
    this.states.push(state)
    return this.states.length - 1
  }

  /** A step testing `accepts` (whose test costs `cost` more, a class's ranges), then `next`. */
  #step(accepts: (codePoint: number) => boolean, next: number, cost = 0): number {
    return this.#add({ kind: 'step', accepts, next, cost })
  }

  /** Zero or more code points that `accepts`, then `next`. */
  #repeat(accepts: (codePoint: number) => boolean, next: number): number {
    const fork: State = { kind: 'fork', next: [] }
    const loop = this.#add(fork)
    fork.next.push(this.#step(accepts, loop), next)
    return loop
  }

  /** `**` with the `/` before each segment it stands for: `(/[^/]+)*`, then `next`. */
  anySegments(next: number): number {
    const fork: State = { kind: 'fork', next: [] }
    const loop = this.#add(fork)
    const name = this.#add({ kind: 'fork', next: [] })
    const firstCharacter = this.#step(isNameCharacter, name)
    ;(this.states[name] as { next: number[] }).next.push(firstCharacter, loop)
    fork.next.push(this.#step(isSlash, firstCharacter), next)
    return loop
  }

  /** A `/` and one segment pattern (no `/` inside), then `next`. */
  segment(segment: string, next: number): number {
    return this.#step(isSlash, this.#pattern(segment, next))
  }

  /** The wildcards and literals of `text`, then `next`. */
  #pattern(text: string, next: number): number {
    // Parsed left to right into pieces, compiled right to left.
    const pieces: ((next: number) => number)[] = []
    for (let index = 0; index < text.length;) {
      const char = text[index] ?? ''
      if (char === '*') {
        pieces.push((after) => this.#repeat(isNameCharacter, after))
        index++
        continue
      }
      if (char === '?') {
        pieces.push((after) => this.#step(isNameCharacter, after))
        index++
        continue
      }
      if (char === '[') {
        const close = classEnd(text, index)
        if (close !== -1) {
          const { accepts, ranges } = characterClass(text.slice(index + 1, close))
          pieces.push((after) => this.#step(accepts, after, ranges))
          index = close + 1
          continue
        }
      }
      if (char === '{') {
        const close = closingBrace(text, index)
        if (close !== -1) {
          const options = alternatives(text.slice(index + 1, close))
          pieces.push((after) =>
            this.#add({ kind: 'fork', next: options.map((o) => this.#pattern(o, after)) }),
          )
          index = close + 1
          continue
        }
      }
      const codePoint = text.codePointAt(index) ?? 0
      pieces.push((after) => this.#step((candidate) => candidate === codePoint, after))
      index += codePoint > 0xffff ? 2 : 1
    }
    return pieces.reduceRight((after, piece) => piece(after), next)
  }
}

/**
 * A test for the relative paths a glob describes, with the work its last answer took. Given a
 * budget of work, it answers `undefined` once the budget is spent (the path neither matched nor
 * refused).
 */
export interface GlobMatcher {
  (relativePath: string, budget?: number): boolean | undefined
  /** The automaton's states: a match visits each at most once per code point. */
  readonly states: number
  /**
   * The work the last match did: a unit for each state it visited, and one more for each range of
   * a `[...]` class it tested (range by range); linear in the path's length.
   */
  readonly visits: number
}

/**
 * A test for the relative paths (`/`-separated, no leading `./`) that `glob` describes. `**` may
 * stand for no segment at all, so `data/**` matches `data` itself too.
 */
export function globMatcher(glob: string): GlobMatcher {
  const automaton = new Automaton()
  const segments = glob.split('/').filter((segment) => segment !== '' && segment !== '.')
  // Every segment is matched with the `/` before it, so `**` can match zero segments.
  const start = segments.reduceRight(
    (next, segment) => (segment === '**' ? automaton.anySegments(next) : automaton.segment(segment, next)),
    0,
  )
  const { states } = automaton
  // `seen[state] === round` marks a state already in the set being built, so each state is
  // visited once per code point: this bound is the linear-time guarantee.
  const seen = new Int32Array(states.length).fill(-1)
  let visits = 0

  // Reused by every call: one array rather than one a state.
  const pending: number[] = []
  const addWithForks = (set: number[], state: number, round: number) => {
    pending.push(state)
    while (pending.length > 0) {
      const current = pending.pop() as number
      if (seen[current] === round) continue
      seen[current] = round
      visits++
      const node = states[current]
      if (node?.kind === 'fork') for (const following of node.next) pending.push(following)
      else set.push(current)
    }
  }

  const matches = (relativePath: string, budget = Infinity): boolean | undefined => {
    seen.fill(-1)
    visits = 0
    let round = 0
    // Two sets, swapped at each code point rather than made anew.
    let live: number[] = []
    let next: number[] = []
    addWithForks(live, start, round)
    const text = relativePath === '' ? '' : `/${relativePath}`
    for (let index = 0; index < text.length;) {
      if (visits > budget) return undefined
      const codePoint = text.codePointAt(index) ?? 0
      index += codePoint > 0xffff ? 2 : 1
      next.length = 0
      round++
      for (const state of live) {
        const node = states[state]
        if (node?.kind !== 'step') continue
        visits += node.cost
        if (node.accepts(codePoint)) addWithForks(next, node.next, round)
      }
      if (next.length === 0) return false
      ;[live, next] = [next, live]
    }
    return live.includes(0)
  }
  return Object.defineProperties(matches as GlobMatcher, {
    states: { value: states.length },
    visits: { get: () => visits },
  })
}
