import type { Store } from './types/index.ts'

/** The names of `T`'s members that are methods returning a promise. */
export type AsyncMethodName<T> = {
  [K in keyof T]-?: T[K] extends (...args: never[]) => Promise<unknown> ? K : never
}[keyof T] & string

/** Given an operation's name, what receives each call's duration in seconds (resolved once per operation). */
export type OperationObserver<K extends string> = (operation: K) => (seconds: number) => void

/** Store operations whose latency is measured: the request paths' reads and writes, and the health ping. */
export const TIMED_STORE_OPERATIONS = [
  'getUser', 'findUserByEmail', 'getSession', 'getKey', 'listKeys', 'updateKey', 'createKey', 'findVersionByHash',
  'findCredentialByHash', 'recordUsage', 'monthlyUsage', 'appendAudit', 'keyStats', 'ping'
] as const satisfies ReadonlyArray<AsyncMethodName<Store>>

export type TimedStoreOperation = typeof TIMED_STORE_OPERATIONS[number]

/** Every member of `target` and of its prototypes (class methods live there), but Object's own. */
function memberNames (target: object): Set<string | symbol> {
  const names = new Set<string | symbol>()
  for (let o: object | null = target; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const name of Reflect.ownKeys(o)) if (name !== 'constructor') names.add(name)
  }
  return names
}

function timedMethod (target: object, method: (...args: unknown[]) => Promise<unknown>, observe: (seconds: number) => void) {
  return async function timed (...args: unknown[]): Promise<unknown> {
    const started = performance.now()
    try {
      return await method.apply(target, args)
    } finally {
      observe((performance.now() - started) / 1000)
    }
  }
}

/**
 * A new object with `target`'s interface whose `operations` report their duration: the target is
 * left untouched. Methods are bound to the target once, other properties read through to it, and
 * each timed method is built once, so a call allocates no closure of its own.
 */
export function timed<T extends object, K extends AsyncMethodName<T>> (target: T, operations: readonly K[], observerOf: OperationObserver<K>): T {
  const view: Record<string | symbol, unknown> = {}
  for (const name of memberNames(target)) {
    const value: unknown = Reflect.get(target, name)
    if (typeof value === 'function') view[name] = value.bind(target)
    else Object.defineProperty(view, name, { get: () => Reflect.get(target, name), enumerable: true })
  }
  for (const operation of operations) {
    view[operation] = timedMethod(target, Reflect.get(target, operation) as (...args: unknown[]) => Promise<unknown>, observerOf(operation))
  }
  return view as T
}

/** The store with its request-path operations timed. */
export function timedStore (store: Store, observerOf: OperationObserver<TimedStoreOperation>): Store {
  return timed(store, TIMED_STORE_OPERATIONS, observerOf)
}
