/**
 * How many handles hold each host object the guest was given, across this thread's instances. A
 * host function may give the guest one object as `own` more than once (a shared logger): its
 * `[Symbol.dispose]` must run once, when the last handle goes, not under the handles left. The
 * addon counts here, through the environment's box (see util/failure.ts), each time a handle to a
 * host object is made or goes, and asks whether the object's dispose is due.
 */
import { failureBox } from '../native.js'

/**
 * How a handle went: `dropped` by the guest (or with its instance, or in a value the host gave up
 * that was refused); `given-back` at the end of a loan (a borrow, or a call that never started);
 * `returned` to JS as `own`, which makes the object JS's; `given-up` for an object the host gave
 * up that never got a handle (refused at a cap, or an answer that came too late).
 */
type How = 'dropped' | 'given-back' | 'returned' | 'given-up'

interface Place {
  count: number
  /** A guest dropped one of its handles while others remained: dispose when the last goes. */
  dropped: boolean
  /** A guest returned one to JS as `own`: the object is JS's, until it is given again. */
  returned: boolean
}

const places = new WeakMap<object, Place>()
/** Objects disposed as given up in this turn: one twice in a refused value is disposed once. */
const givenUp = new Set<object>()

const box = failureBox() as {
  place?: (object: object) => void
  unplace?: (object: object, how: How) => boolean
}

box.place = (object) => {
  const place = places.get(object)
  if (place === undefined) places.set(object, { count: 1, dropped: false, returned: false })
  else {
    place.count++
    place.returned = false
  }
}

/** Whether the object's `[Symbol.dispose]` is due now that one of its handles went `how`. */
box.unplace = (object, how) => {
  const place = places.get(object)
  if (how === 'given-up') {
    if (place !== undefined || givenUp.has(object)) return false
    if (givenUp.size === 0) queueMicrotask(() => givenUp.clear())
    givenUp.add(object)
    return true
  }
  if (place === undefined) return how === 'dropped'
  place.count--
  if (how === 'dropped') place.dropped = true
  else if (how === 'returned') place.returned = true
  if (place.count > 0) return false
  places.delete(object)
  return place.dropped && !place.returned
}
