// Worker entry for worker-threads.spec.ts: workers do not inherit ava's TypeScript loader, so
// register tsx here, then run the TypeScript body.
import { register } from 'tsx/esm/api'

register()
await import('./worker-body.ts')
