// Worker entry for the soak: a worker does not inherit the parent's tsx loader, so register it
// here, then run the TypeScript body.
import { register } from 'tsx/esm/api'

register()
await import('./worker-body.ts')
