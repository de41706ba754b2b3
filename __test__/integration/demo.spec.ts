import { execFileSync } from 'node:child_process'

import test from 'ava'

import { root } from '../helpers.js'

test('the demo prints the greeting, the stopped runaway and the denied memory hog', (t) => {
  const output = execFileSync(process.execPath, ['--import', 'tsx', 'examples/demo.ts'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  })
  t.regex(output, /greet\("world"\) returned "Hello, world!"/)
  t.regex(output, /stopped by its 50 ms timeout .*ERR_WASM_TIMEOUT/)
  t.regex(output, /growth was denied/)
})
