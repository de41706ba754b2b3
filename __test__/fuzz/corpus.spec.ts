/**
 * Every input a fuzz run saved under fixtures/corpus/<target>/ is a regression test: replayed here
 * through its target's property, in a child process per target (a saved crash must not take the
 * ava worker with it). A file named `failing-*` is a known finding not fixed yet: test.failing.
 */
import { existsSync, readdirSync } from 'node:fs'
import path from 'node:path'

import test from 'ava'

import type { ReplayReport } from '../../fuzz/child.js'
import { runChild } from '../../fuzz/spawn.js'
import { TARGETS } from '../../fuzz/targets.js'
import { root } from '../helpers.js'

const corpus = path.join(root, 'fixtures', 'corpus')

for (const target of Object.keys(TARGETS)) {
  const dir = path.join(corpus, target)
  const files = existsSync(dir) ? readdirSync(dir).sort() : []
  for (const known of [false, true]) {
    const chosen = files
      .filter((file) => file.startsWith('failing-') === known)
      .map((file) => path.join(dir, file))
    if (chosen.length === 0) continue
    const title = `${target}: the ${chosen.length} saved input(s)${known ? ' of unfixed findings' : ''} pass the property`
    ;(known ? test.failing : test)(title, async (t) => {
      // Strict: the findings the fuzz runs skip as known are exactly what a saved input checks.
      const result = await runChild<ReplayReport>([target, '--replay', ...chosen], 120_000, {
        FUZZ_STRICT: '1',
      })
      if (result.kind === 'crash') {
        const file = result.last === undefined ? 'unknown' : Buffer.from(result.last).toString()
        t.fail(`the replay ${result.how} on ${file}\n${result.stderr.slice(-2000)}`)
        return
      }
      const failures = result.report.results.filter((item) => !item.ok)
      t.deepEqual(
        failures,
        [],
        failures.map((item) => `${path.basename(item.file)}: ${item.error}`).join('\n'),
      )
      t.is(result.report.results.length, chosen.length)
    })
  }
}

test('the corpus folders belong to known targets', (t) => {
  const folders = existsSync(corpus) ? readdirSync(corpus) : []
  t.deepEqual(
    folders.filter((folder) => !(folder in TARGETS)),
    [],
  )
})
