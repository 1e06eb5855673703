/**
 * An aggregate's methods bound to it, as own properties of a plain object: spread together, the
 * aggregates of one adapter make a Store whose methods keep their flat names (`store.getKey`).
 * Helpers an aggregate keeps to itself are #private, so they are not copied. Name the aggregate's
 * interface as T: TypeScript drops class methods from spread types.
 */
export function methodsOf<T extends object> (aggregate: T): T {
  const methods: Record<string, unknown> = {}
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(aggregate))) {
    const member: unknown = Reflect.get(aggregate, name)
    if (name !== 'constructor' && typeof member === 'function') methods[name] = member.bind(aggregate)
  }
  return methods as T
}
