/**
 * How failures cross between the addon and JS without N-API throwing them.
 *
 * N-API throws inside a `v8::TryCatch` of its own, which V8 counts as no handler at all: under
 * `node --abort-on-uncaught-exception` (how services get core dumps) every trap, timeout or bad
 * argument a binding threw aborted the process even inside the caller's `try`, and so did every
 * error a host function threw back into the addon. So neither side throws across the boundary: a
 * failing binding puts its error in the environment's failure box and returns the box, and a host
 * function's wrapper does the same with what the host threw. Each side throws it again (or hands
 * it on) on its own side, where the caller's `try` catches it as any JS error.
 */
import { types } from 'node:util'

import { failureBox } from '../native.js'

/** The environment's failure box: one object, shared by every copy of this package (ESM and CommonJS). */
const FAILED = failureBox() as { error: unknown; describe?: (thrown: unknown) => string | undefined }

/**
 * What a HostError says of a value a host function threw: the message of an Error (or of an
 * object with a string `name` and `message`, as a DOMException), else undefined (the addon then
 * names the value's kind). Read here for the addon: a throwing getter or a revoked `Proxy` meets
 * this `try`, where read through N-API it aborted a process run with `--abort-on-uncaught-exception`.
 */
FAILED.describe = (thrown: unknown): string | undefined => {
  const native = types.isNativeError(thrown)
  try {
    if (native || (typeof thrown === 'object' && thrown !== null && errorLike(thrown))) {
      const { message } = thrown as { message?: unknown }
      return typeof message === 'string' ? message : ''
    }
  } catch {
    return native ? '' : undefined
  }
  return undefined
}

function errorLike(thrown: object): boolean {
  const { name, message } = thrown as { name?: unknown; message?: unknown }
  return typeof name === 'string' && typeof message === 'string'
}

/** What a binding returned, or, when it returned the box, the error it holds thrown (the box emptied). */
export function unbox<T>(returned: T): T {
  if (returned !== FAILED) return returned
  const error = FAILED.error
  FAILED.error = undefined
  throw error
}

/** The box holding `error`, as a host function's wrapper returns it to the addon instead of throwing. */
export function boxed(error: unknown): typeof FAILED {
  FAILED.error = error
  return FAILED
}
