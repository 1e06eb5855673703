import { scrypt as scryptCallback, type ScryptOptions } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { AppError } from './errors.ts'

/** scrypt parameters: N = 2^ln, block size r, parallelism p. */
export interface ScryptParams { ln: number, r: number, p: number }

const KEY_LENGTH = 32

/**
 * Bounds the derivations in flight. scrypt runs on libuv's thread pool, which file, DNS and zlib
 * work share: a burst of logins or reveals must not take every thread. Past `concurrency`,
 * callers wait in a queue; past `queueMax` waiting, they are refused with 503 and Retry-After.
 */
export class KdfGate {
  private running = 0
  private readonly waiting: Array<() => void> = []

  constructor (readonly concurrency: number, readonly queueMax: number) {}

  get queued (): number {
    return this.waiting.length
  }

  async run<T> (work: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrency) {
      this.running++
    } else {
      if (this.waiting.length >= this.queueMax) {
        throw new AppError(503, 'SERVICE_BUSY', 'Too many password and passphrase checks are in progress; retry shortly', { 'retry-after': '1' })
      }
      // The slot is handed over by the caller that finishes, so `running` stays counted.
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    }
    try {
      return await work()
    } finally {
      const next = this.waiting.shift()
      if (next === undefined) this.running--
      else next()
    }
  }
}

const THREAD_POOL_SIZE = Number(process.env.UV_THREADPOOL_SIZE) || 4
const HALF_POOL = Math.max(1, Math.floor(THREAD_POOL_SIZE / 2))
/**
 * One gate per process, as the thread pool is: half its threads, and never every core but one, since
 * each derivation keeps a core busy and the event loop (verify, health) needs one of its own (on 2
 * cores, two derivations tripled verify's p99 in the bench's storm). 16 may wait per half-pool
 * thread, whatever the cores.
 */
export const kdfGate = new KdfGate(Math.max(1, Math.min(HALF_POOL, availableParallelism() - 1)), 16 * HALF_POOL)

/** scrypt of a secret (NFKC-normalised) on the libuv thread pool, through the gate; also derives vault keys. */
export function scrypt (secret: string, salt: Buffer, params: ScryptParams, gate: KdfGate = kdfGate): Promise<Buffer> {
  const N = 2 ** params.ln
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 }
  return gate.run(() => new Promise((resolve, reject) => {
    scryptCallback(secret.normalize('NFKC'), salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key)))
  }))
}
