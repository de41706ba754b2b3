/**
 * The capabilities example (built from ./src by `npm run build`): a guest asking the host for
 * files, a web page and a nap through airssys:host, loaded from its Component.toml. The manifest
 * grants ./data, sleeping and 127.0.0.1:8080, where this script serves a page on loopback; what
 * else the guest asks for is an err it receives, and a denial the host sees.
 *   node --import tsx examples/capabilities/main.ts
 */
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { ComponentError, loadComponent, type HttpResponse } from '../../lib/index.js'

const here = path.dirname(fileURLToPath(import.meta.url))

const server = http.createServer((_request, response) => response.end('a page served by the host'))
await new Promise<void>((resolve) => server.listen(8080, '127.0.0.1', resolve))

const sandbox = await loadComponent(here, {
  onDenied: (error) => console.log(`  host: ${error.code} (${error.capability}: ${error.request})`),
})

async function ask(name: string, arg: string | number): Promise<void> {
  try {
    const result = await sandbox.call(name, [arg])
    const shown =
      typeof result === 'object' && result !== null && 'status' in result
        ? `${(result as HttpResponse).status} ${Buffer.from((result as HttpResponse).body).toString()}`
        : JSON.stringify(result)
    console.log(`${name}(${JSON.stringify(arg)}) -> ${shown}`)
  } catch (error) {
    if (!(error instanceof ComponentError)) throw error
    console.log(`${name}(${JSON.stringify(arg)}) -> err ${JSON.stringify(error.payload)}`)
  }
}

await ask('read-file', 'data/greeting.txt')
await ask('read-file', '../hello/Component.toml')
await ask('fetch', 'http://127.0.0.1:8080/')
await ask('fetch', 'http://127.0.0.1:9090/')
await ask('nap', 100)
console.log(`denials: ${sandbox.metrics().capabilityDenials}`)

sandbox.dispose()
server.close()
