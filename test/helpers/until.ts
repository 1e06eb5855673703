import { AssertionError } from 'node:assert'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Polls `probe` until it returns something truthy, and returns that; past `deadlineMs` it fails
 * with `message` (a function can say what it last saw). For waits no event announces.
 */
export async function until<T> (probe: () => T | Promise<T>, deadlineMs: number, message: string | (() => string), everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    const value = await probe()
    if (value) return value as NonNullable<T>
    if (Date.now() >= deadline) {
      throw new AssertionError({ message: `${typeof message === 'function' ? message() : message} (not within ${deadlineMs} ms)` })
    }
    await sleep(everyMs)
  }
}
