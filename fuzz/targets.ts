/** Every fuzz target by name. */
import { binariesTarget } from './binaries.js'
import { forwardingTarget } from './forwarding.js'
import { manifestTarget } from './manifest.js'
import type { Target } from './target.js'
import { valuesTarget, wrongValuesTarget } from './values.js'

export const TARGETS: Record<string, () => Target<never>> = {
  values: valuesTarget as () => Target<never>,
  'wrong-values': wrongValuesTarget as () => Target<never>,
  manifest: manifestTarget as () => Target<never>,
  binaries: binariesTarget as () => Target<never>,
  forwarding: forwardingTarget as () => Target<never>,
}
