/**
 * Syntax checks for the permission patterns of a manifest's `[permissions]`: filesystem globs
 * and network `host:port` patterns. They say what is wrong with a pattern; granting or denying
 * access by them is the host functions' job.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { domainToASCII } from 'node:url'

import { quoted } from './quoted.js'

/** Characters that make a path segment a pattern rather than a literal name. */
const GLOB_CHARACTERS = /[*?[\]{}]/

/** Whether a path segment of a glob contains wildcards. */
export function isGlobSegment(segment: string): boolean {
  return GLOB_CHARACTERS.test(segment)
}

/**
 * The index of the `]` closing the class that opens at `open` in `segment`, or -1. A `]` right
 * after `[` (or `[!`, `[^`) is a member, not the end, so `[]a]` and `[!]]` are classes.
 */
export function classEnd(segment: string, open: number): number {
  const negation = segment[open + 1] === '!' || segment[open + 1] === '^' ? 1 : 0
  return segment.indexOf(']', open + negation + 2)
}

/** A range written backwards in the class `[body]` (`z-a`), or undefined. */
function backwardRange(body: string): string | undefined {
  const members = Array.from(/^[!^]/.test(body) ? body.slice(1) : body)
  for (let index = 0; index + 2 < members.length; index++) {
    const [low = '', dash, high = ''] = members.slice(index, index + 3)
    if (dash !== '-') continue
    if ((low.codePointAt(0) ?? 0) > (high.codePointAt(0) ?? 0)) return `${low}-${high}`
    index += 2
  }
  return undefined
}

/** Finds an unclosed `[` class or an unbalanced `{a,b}` group in one segment. */
function bracketProblem(segment: string): string | undefined {
  let braces = 0
  for (let index = 0; index < segment.length; index++) {
    const char = segment[index]
    if (char === '[') {
      const close = classEnd(segment, index)
      if (close === -1) return `unclosed "[" in ${quoted(segment)}`
      const backward = backwardRange(segment.slice(index + 1, close))
      if (backward !== undefined)
        return `the range ${quoted(backward)} in ${quoted(segment)} is written backwards`
      index = close
    } else if (char === ']') {
      return `"]" without "[" in ${quoted(segment)}`
    } else if (char === '{') {
      braces++
    } else if (char === '}') {
      if (--braces < 0) return `"}" without "{" in ${quoted(segment)}`
    }
  }
  return braces === 0 ? undefined : `unclosed "{" in ${quoted(segment)}`
}

/**
 * What is wrong with a filesystem glob, or undefined when it is acceptable: relative to the
 * manifest's directory, `/` as the separator, no `..` segment, `**` only as a whole segment,
 * balanced `[...]` and `{...}`.
 */
export function globProblem(glob: string): string | undefined {
  if (glob === '') return 'a glob cannot be empty'
  if (glob.includes('\0')) return 'a glob cannot contain a NUL character'
  if (glob.startsWith('/') || /^[A-Za-z]:/.test(glob)) {
    return "a glob must be relative to the manifest's directory, not absolute"
  }
  // A backslash is an escape in glob syntax and a separator on Windows: either reading is a trap.
  if (glob.includes('\\')) return 'use "/" as the separator; "\\" is not allowed'
  if (glob.startsWith('!')) return 'negated globs are not supported: list what is granted'
  for (const segment of glob.split('/')) {
    // Refused even where it stays inside: what a glob's `..` steps back from is not known until
    // the glob is matched.
    if (segment === '..') return '".." is not allowed in a glob: write the path without it'
    if (segment.includes('**') && segment !== '**')
      return `"**" must be a whole path segment, as in "data/**"`
    const problem = bracketProblem(segment)
    if (problem !== undefined) return problem
  }
  return undefined
}

/** The leading literal segments of a glob (`./data` for `./data/**\/*.txt`), or '' when none. */
export function globBase(glob: string): string {
  const literal: string[] = []
  for (const segment of glob.split('/')) {
    if (isGlobSegment(segment)) break
    literal.push(segment)
  }
  return literal.join('/')
}

/**
 * A label of a granted name: letters, digits, hyphens and underscores, at most 63. Wider than a
 * host name's rule because the URL parser takes such names as they are (`my_bucket.s3...`), and a
 * grant must be able to name what a guest can ask for.
 */
const HOST_LABEL = /^[a-z0-9_-]{1,63}$/i

/** Longest `host:port` pattern: a 253-character name, `*.`, a bracketed IPv6 address, a port. */
const MAX_PATTERN_CHARS = 300

/**
 * A last label that makes the WHATWG URL parser, which turns grants into hosts, read the whole
 * name as an IPv4 address: all digits, or `0x` and hex digits (`0x7f000001` is 127.0.0.1).
 */
const NUMERIC_LABEL = /^(?:\d+|0x[0-9a-f]*)$/i

function hostnameProblem(host: string, wildcard: boolean): string | undefined {
  if (host.length > 253) return `host ${quoted(host)} is longer than 253 characters`
  // One trailing dot (a fully qualified name) is part of the name: the URL parser keeps it.
  const labels = (host.endsWith('.') ? host.slice(0, -1) : host).split('.')
  // Only the dotted decimal form passes: any other spelling of an address would grant it without
  // showing it, to a reader of the manifest or of `validate`'s grants line.
  if (NUMERIC_LABEL.test(labels.at(-1) ?? '')) {
    if (wildcard)
      return `${quoted(`*.${host}`)}: a wildcard goes before a name, not an address (no URL has such a host)`
    if (!isIPv4(host)) return `${quoted(host)} is not a valid IPv4 address: write it as four decimal numbers`
    // 0.0.0.0/8 is "this host": a connection to 0.0.0.0 reaches services bound to loopback only.
    return host.startsWith('0.')
      ? `${quoted(host)} stands for this host: name the address itself, as "127.0.0.1"`
      : undefined
  }
  if (/[^\x00-\x7f]/.test(host)) {
    // Refused rather than converted: a look-alike letter would pass a reader of the grants line.
    const ascii = domainToASCII(host)
    return ascii === ''
      ? `${quoted(host)} is not a valid host name`
      : `${quoted(host)} is not ASCII: write the name as URLs reach the host, "${ascii}"`
  }
  const bad = labels.find((label) => !HOST_LABEL.test(label))
  if (bad !== undefined) return `${quoted(host)} is not a valid host name (label ${quoted(bad)})`
  // What the URL parser refuses could never be matched, and a grant is read through it: an
  // `xn--` label that is no punycode (`xn--zz`) passed this far.
  return URL.canParse(`http://${host}/`) ? undefined : `${quoted(host)} is not a valid host name`
}

/**
 * What is wrong with a bracketed IPv6 grant. It must be written as URLs write it, and name an
 * address a request reaches as itself: `[0::1]` is `[::1]`, `[::]` reaches this host's
 * loopback-only services, and `[::ffff:7f00:1]` is 127.0.0.1, none of them visibly so.
 */
function ipv6Problem(host: string): string | undefined {
  // Node's isIPv6 takes a zone id (`%eth0`); a URL cannot hold one, and a grant names an
  // address, not an interface.
  if (!isIPv6(host.slice(1, -1)) || host.includes('%')) {
    return `${quoted(host)} is not a valid IPv6 address${host.includes('%') ? ' (a zone id is not allowed)' : ''}`
  }
  const written = new URL(`http://${host}/`).hostname
  if (written === '[::]') return `${quoted(host)} stands for this host: name the address itself, as "[::1]"`
  // The last 32 bits of ::ffff:0:0/96 (mapped) and ::/96 (compatible) are an IPv4 address.
  const v4 = /^\[::(?:ffff:)?([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(written)
  if (v4 !== null) {
    const [high, low] = [parseInt(v4[1] ?? '', 16), parseInt(v4[2] ?? '', 16)]
    const dotted = [high >> 8, high & 255, low >> 8, low & 255].join('.')
    return `${quoted(host)} is an IPv4 address: write it as "${dotted}"`
  }
  return written === host
    ? undefined
    : `${quoted(host)} is written otherwise than URLs write it: write "${written}"`
}

/** Ports a URL's scheme implies, for the pattern a URL grant most likely meant. */
const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443', 'ws:': '80', 'wss:': '443' }

/**
 * What is wrong with a `host:port` pattern, or undefined when it is acceptable. The host is a
 * name, `*.` followed by a name (any subdomain), an IPv4 address or a bracketed IPv6 address; the
 * port is 1..65535 or `*`. A bare `*` host is refused: granting every host must be the host
 * application's decision, not a line in the component's own manifest. A URL is a common slip:
 * left to the host:port rule, its scheme would be blamed as a bad host or port, so it is named as
 * a URL, with the pattern it meant.
 */
export function hostPatternProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_PATTERN_CHARS) {
    return `a host:port pattern has at most ${MAX_PATTERN_CHARS} characters, this one ${pattern.length}`
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(pattern)) {
    let meant = 'host:port'
    if (URL.canParse(pattern)) {
      const url = new URL(pattern)
      const port = url.port === '' ? DEFAULT_PORTS[url.protocol] : url.port
      if (url.hostname !== '') meant = `${url.hostname}:${port ?? 'port'}`
    }
    return `${quoted(pattern)} is a URL, not a host:port pattern: write "${meant}"`
  }
  const colon = pattern.lastIndexOf(':')
  if (colon === -1 || pattern.endsWith(']')) {
    const example = pattern.startsWith('[') ? '[::1]:8080' : 'example.com:443'
    return `${quoted(pattern)} has no port: write host:port, as in "${example}"`
  }
  const host = pattern.slice(0, colon)
  const port = pattern.slice(colon + 1)
  // No leading zero: `080` would be shown as written and grant port 80.
  if (port !== '*' && !(/^[1-9]\d{0,4}$/.test(port) && Number(port) <= 65535)) {
    return `port ${quoted(port)} must be 1..65535 or *`
  }
  if (host.startsWith('[') && host.endsWith(']')) return ipv6Problem(host)
  if (host.includes(':')) return `an IPv6 address must be in brackets, as in "[::1]:8080"`
  if (host === '' || host === '*') return 'the host must be named; use *.example.com for subdomains'
  const wildcard = host.startsWith('*.')
  const name = wildcard ? host.slice(2) : host
  if (name.includes('*')) return `a wildcard may only be the first label, as in "*.example.com"`
  return hostnameProblem(name, wildcard)
}
