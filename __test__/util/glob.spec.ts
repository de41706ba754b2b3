import test from 'ava'

import { globMatcher } from '../../lib/util/glob.js'

test('a glob with several ** against a 4 KB near-miss path visits each state at most once per character', (t) => {
  const matches = globMatcher('**/x/**/y/**/*.json')
  // Every x/ and y/ is a place where a backtracking matcher can restart: ~2 s before the fix.
  const nearMiss = `${'x/y/'.repeat(1024)}z`
  const hit = `${'x/y/'.repeat(1024)}z.json`
  t.is(nearMiss.length, 4097)
  t.false(matches(nearMiss))
  t.true(matches.visits <= matches.states * (nearMiss.length + 2), `${matches.visits} visits`)
  t.true(matches(hit))
  t.true(matches.visits <= matches.states * (hit.length + 2), `${matches.visits} visits`)
})

test('matching work grows linearly with the path, for every shape of near miss', (t) => {
  // Counted in states visited, not timed: a busy machine made the timed version fail.
  const matches = globMatcher('**/a*b*c/**/{x,y}*/**/?.json')
  const shapes = [
    (n: number) => `${'a/'.repeat(n)}q`,
    (n: number) => `${'ab/x/'.repeat(n)}q`,
    (n: number) => `${'abc/xy/'.repeat(n)}q.jsonx`,
    (n: number) => `${'aaaaaaaaaaaaaaaa'.repeat(n)}/q.json`,
  ]
  for (const shape of shapes) {
    const small = shape(500)
    const large = shape(8_000)
    t.false(matches(small))
    const smallVisits = matches.visits
    t.false(matches(large))
    const growth = matches.visits / smallVisits
    t.true(
      growth <= 1.1 * (large.length / small.length),
      `${large.length} characters: ${growth.toFixed(1)}× the work`,
    )
    t.true(matches.visits <= matches.states * (large.length + 2))
  }
})

// [glob, path, expected]: the syntax the manifest accepts, as a table.
const table: [string, string, boolean][] = [
  ['data/**', 'data', true],
  ['data/**', 'data/a.txt', true],
  ['data/**', 'data/deep/er/.hidden', true],
  ['data/**', 'database/a.txt', false],
  ['./data/**', 'data/a.txt', true],
  ['data/*.txt', 'data/a.txt', true],
  ['data/*.txt', 'data/.txt', true],
  ['data/*.txt', 'data/deep/a.txt', false],
  ['data/*.txt', 'data/a.txt.bak', false],
  ['**/*.json', 'top.json', true],
  ['**/*.json', 'x/y/z.json', true],
  ['**/*.json', 'x/y/z.json/w', false],
  ['**', '', true],
  ['**', 'anything/at/all', true],
  ['a/**/b', 'a/b', true],
  ['a/**/b', 'a/x/y/b', true],
  ['a/**/b', 'a/x/y/c', false],
  ['a/**/**/b', 'a/b', true],
  ['data/?.txt', 'data/b.txt', true],
  ['data/?.txt', 'data/bb.txt', false],
  ['data/?.txt', 'data/é.txt', true],
  ['data/?.txt', 'data/😀.txt', true],
  ['data/[ab].txt', 'data/a.txt', true],
  ['data/[ab].txt', 'data/c.txt', false],
  ['data/[!ab].txt', 'data/c.txt', true],
  ['data/[!ab].txt', 'data/a.txt', false],
  ['data/[^ab].txt', 'data/c.txt', true],
  ['data/[a-c].txt', 'data/b.txt', true],
  ['data/[a-c].txt', 'data/d.txt', false],
  ['data/[a-].txt', 'data/-.txt', true],
  ['data/[]a].txt', 'data/].txt', true],
  ['data/[!]].txt', 'data/].txt', false],
  ['data/[!]].txt', 'data/x.txt', true],
  ['{logs,data}/*.{txt,md}', 'logs/x.md', true],
  ['{logs,data}/*.{txt,md}', 'data/x.txt', true],
  ['{logs,data}/*.{txt,md}', 'logs/x.rs', false],
  ['{a,}b', 'b', true],
  ['{a,}b', 'ab', true],
  ['x{a,{b,c}d}y', 'xcdy', true],
  ['x{a,{b,c}d}y', 'xcy', false],
  ['{a*,b?}', 'azzz', true],
  ['{a*,b?}', 'bzz', false],
  ['config.toml', 'config.toml', true],
  ['config.toml', 'config.toml.bak', false],
  ['data.+(x)/**', 'data.x/a', false],
  ['data.+(x)/**', 'data.+(x)/a', true],
  ['a{b', 'a{b', true],
  ['a}b', 'a}b', true],
  ['data/*', 'data/a/b', false],
  ['*/*', 'a/b', true],
  ['*/*', 'a', false],
]

test('the glob syntax, as a table: **, *, ?, classes, ranges and nested {a,b}', (t) => {
  for (const [glob, candidate, expected] of table) {
    t.is(globMatcher(glob)(candidate), expected, `${glob} against ${JSON.stringify(candidate)}`)
  }
})
