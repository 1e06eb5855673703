import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

type Log = (...args: unknown[]) => void

/**
 * A request's logger, made the first time something logs through it. Most requests log nothing,
 * and pino's child costs microseconds per request (its bindings go through redaction); the child
 * made on demand has the same bindings (the request id) and options, so its lines are identical.
 */
export class RequestLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | undefined

  constructor (private readonly parent: FastifyBaseLogger, private readonly bindings: Bindings, private readonly options: ChildLoggerOptions) {}

  private get logger (): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings, Object.keys(this.options).length === 0 ? undefined : this.options)
    return this.made
  }

  get level () { return this.logger.level }
  set level (level) { this.logger.level = level }

  // Prototype methods, not arrow fields: nothing is allocated per request beyond this object.
  fatal (...args: unknown[]) { (this.logger.fatal as Log)(...args) }
  error (...args: unknown[]) { (this.logger.error as Log)(...args) }
  warn (...args: unknown[]) { (this.logger.warn as Log)(...args) }
  info (...args: unknown[]) { (this.logger.info as Log)(...args) }
  debug (...args: unknown[]) { (this.logger.debug as Log)(...args) }
  trace (...args: unknown[]) { (this.logger.trace as Log)(...args) }
  silent (...args: unknown[]) { (this.logger.silent as Log)(...args) }

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options)
  }
}

/** Fastify's childLoggerFactory option: a RequestLogger per request instead of a pino child. */
export function requestLoggerFactory (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new RequestLogger(logger, bindings, options)
}
