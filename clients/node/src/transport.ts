import { Pool } from 'undici'
import { KeywardError, UNREACHABLE } from './errors.ts'

export interface TransportOptions {
  /** Keyward's origin, e.g. http://127.0.0.1:3000. */
  baseUrl: string
  /** Time allowed for the answer's headers, and again between body chunks (default 2000 ms). */
  timeoutMs?: number
  /** Keep-alive connections kept open to Keyward (default 16). */
  connections?: number
}

export interface Answer {
  statusCode: number
  body: unknown
}

/** Errors that mean the request never got an answer, so sending it once more is safe enough. */
const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED'
])

function isConnectionError (error: unknown): boolean {
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code
  return code !== undefined && CONNECTION_ERRORS.has(code)
}

function retryAfterSeconds (value: string | string[] | undefined): number | null {
  const seconds = Number(Array.isArray(value) ? value[0] : value)
  return Number.isFinite(seconds) && value !== undefined ? seconds : null
}

/** One keep-alive pool to Keyward; JSON in and out; error answers thrown as KeywardError. */
export class Transport {
  readonly #pool: Pool
  readonly #timeoutMs: number

  constructor (options: TransportOptions) {
    this.#timeoutMs = options.timeoutMs ?? 2000
    this.#pool = new Pool(options.baseUrl, {
      connections: options.connections ?? 16,
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
      connectTimeout: this.#timeoutMs
    })
  }

  /** Sends once, and once more only when the first attempt got no answer at all. */
  async send (method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
    try {
      return await this.#attempt(method, path, headers, body)
    } catch (error) {
      if (error instanceof KeywardError || !isConnectionError(error)) throw this.#unreachable(error)
      try {
        return await this.#attempt(method, path, headers, body)
      } catch (again) {
        throw this.#unreachable(again)
      }
    }
  }

  async #attempt (method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
    const res = await this.#pool.request({ method: method as 'GET', path, headers, body })
    const text = await res.body.text()
    const parsed: unknown = text === '' ? null : JSON.parse(text)
    if (res.statusCode >= 400) {
      const error = (parsed ?? {}) as { code?: string, message?: string, requestId?: string }
      throw new KeywardError(res.statusCode, error.code ?? 'HTTP_ERROR', error.message ?? `Keyward answered ${res.statusCode}`,
        error.requestId ?? null, retryAfterSeconds(res.headers['retry-after']))
    }
    return { statusCode: res.statusCode, body: parsed }
  }

  #unreachable (error: unknown): Error {
    if (error instanceof KeywardError) return error
    return new KeywardError(503, UNREACHABLE, `Keyward did not answer: ${(error as Error).message}`, null, null, { cause: error })
  }

  close (): Promise<void> {
    return this.#pool.close()
  }
}
