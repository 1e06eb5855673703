import type { NextFunction, Request, Response } from 'express'
import { Guard, type GuardOptions } from './policy.ts'
import type { VerifyResult } from './verify.ts'

declare global {
  namespace Express {
    interface Request {
      /** Keyward's answer for the caller's key; null when Keyward was unreachable and the policy failed open. */
      keyward?: VerifyResult | null
    }
  }
}

export type KeywardExpressOptions = GuardOptions

/** Express (or Connect) middleware verifying the caller's key before the handlers after it. */
export function keyward (options: KeywardExpressOptions) {
  const guard = new Guard(options)
  return function keywardMiddleware (req: Request, res: Response, next: NextFunction) {
    guard.check(req.headers).then(({ result, refusal }) => {
      req.keyward = result
      if (refusal === null) return next()
      if (refusal.retryAfter !== null) res.setHeader('retry-after', String(refusal.retryAfter))
      res.status(refusal.statusCode).json(guard.errorBody(refusal))
    }, next)
  }
}

export default keyward
export type { Refusal, UnavailableEvent } from './policy.ts'
