// Worker entry for lifecycle.spec.ts: workers do not inherit ava's TypeScript loader, so register
// tsx here, then run the TypeScript body.
import { register } from 'tsx/esm/api'

register()
await import('./lifecycle-worker-body.ts')
