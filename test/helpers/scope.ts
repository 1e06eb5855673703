import { after } from 'node:test'

/** What a test's resources live as long as: node:test's TestContext, or a suite's `suiteScope()`. */
export interface TestScope {
  after (fn: () => unknown): void
}

const cleanups = new WeakMap<TestScope, Array<() => unknown>>()

/**
 * Runs `fn` when the scope ends, last registered first (an app closes before the folder it lives
 * in is removed), every one of them even when one fails.
 */
export function onScopeEnd (scope: TestScope, fn: () => unknown) {
  let stack = cleanups.get(scope)
  if (stack === undefined) {
    const own: Array<() => unknown> = []
    cleanups.set(scope, own)
    scope.after(() => unwind(own))
    stack = own
  }
  stack.push(fn)
}

async function unwind (stack: Array<() => unknown>) {
  const errors: unknown[] = []
  for (const fn of stack.splice(0).reverse()) {
    try {
      await fn()
    } catch (err) {
      errors.push(err)
    }
  }
  if (errors.length === 1) throw errors[0]
  if (errors.length > 1) throw new AggregateError(errors, 'several cleanups failed')
}

/**
 * A scope for what a whole suite shares, ended by the suite's `after` hook. Call it in the
 * `describe` body (a suite's hooks get no TestContext with `after` on Node 20), build on it in
 * `before`.
 */
export function suiteScope (): TestScope {
  const ends: Array<() => unknown> = []
  after(async () => { for (const fn of ends) await fn() })
  return { after: (fn) => { ends.push(fn) } }
}
