/**
 * Filesystem globs as regular expressions, for matching paths that are already canonical (no `.`,
 * `..` or symlinks left). The syntax is the one `globProblem` in ./patterns.ts accepts: `*` and
 * `?` within one segment, `[abc]`, `[a-z]` and `[!abc]` classes, `{a,b}` alternatives, and `**`
 * as a whole segment for any number of segments. Wildcards match names starting with a dot too:
 * a grant covers everything the glob spells, hidden files included.
 */

const REGEXP_SYNTAX = /[\\^$.*+?()[\]{}|/]/g

function escapeLiteral(text: string): string {
  return text.replace(REGEXP_SYNTAX, '\\$&')
}

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

/** A `[...]` class; `body` is what lies between the brackets. */
function characterClass(body: string): string {
  const negated = body.startsWith('!') || body.startsWith('^')
  const members = (negated ? body.slice(1) : body).replace(/[\\\]^[]/g, '\\$&')
  return negated ? `[^/${members}]` : `[${members}]`
}

/** The regular expression source of one path segment (no `/` inside). */
function segmentSource(segment: string): string {
  let source = ''
  let literal = ''
  const flush = () => {
    source += escapeLiteral(literal)
    literal = ''
  }
  for (let index = 0; index < segment.length; index++) {
    const char = segment[index] ?? ''
    if (char === '*' || char === '?') {
      flush()
      source += char === '*' ? '[^/]*' : '[^/]'
    } else if (char === '[') {
      // As in patterns.ts, a `]` right after `[` (or `[!`) is a member, not the end.
      const close = segment.indexOf(']', index + 2)
      if (close === -1) {
        literal += char
        continue
      }
      flush()
      source += characterClass(segment.slice(index + 1, close))
      index = close
    } else if (char === '{') {
      const close = closingBrace(segment, index)
      if (close === -1) {
        literal += char
        continue
      }
      flush()
      source += `(?:${alternatives(segment.slice(index + 1, close))
        .map(segmentSource)
        .join('|')})`
      index = close
    } else {
      literal += char
    }
  }
  flush()
  return source
}

/**
 * A test for the relative paths (`/`-separated, no leading `./`) that `glob` describes. `**` may
 * stand for no segment at all, so `data/**` matches `data` itself too.
 */
export function globMatcher(glob: string): (relativePath: string) => boolean {
  const segments = glob.split('/').filter((segment) => segment !== '' && segment !== '.')
  // Every segment is matched with the `/` before it, so `**` can match zero segments.
  const source = segments
    .map((segment) => (segment === '**' ? '(?:/[^/]+)*' : `/${segmentSource(segment)}`))
    .join('')
  const regexp = new RegExp(`^${source}$`, 'u')
  return (relativePath) => regexp.test(relativePath === '' ? '' : `/${relativePath}`)
}
