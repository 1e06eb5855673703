import type { operations } from './generated/openapi.ts'
import { OPERATIONS } from './generated/operations.ts'
import { Transport, type TransportOptions } from './transport.ts'
import { Verifier, type VerifyCacheOptions, type VerifyOptions, type VerifyResult } from './verify.ts'

export type OperationId = keyof typeof OPERATIONS & keyof operations

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : undefined
type Parameters_<O extends OperationId> = operations[O]['parameters']

type Part<O extends OperationId, K extends 'path' | 'query' | 'header'> = NonNullable<Parameters_<O>[K]>

/** What an operation takes: its path parameters, query, headers and JSON body, each only where it has one. */
export type Input<O extends OperationId> =
  ([Part<O, 'path'>] extends [never] ? { path?: never } : { path: Part<O, 'path'> }) &
  ([Part<O, 'query'>] extends [never] ? { query?: never } : { query?: Part<O, 'query'> }) &
  ([Part<O, 'header'>] extends [never] ? { headers?: never } : { headers?: Part<O, 'header'> }) &
  (operations[O] extends { requestBody: infer R } ? { body: Json<R> } : operations[O] extends { requestBody?: infer R } ? { body?: Json<R> } : { body?: never })

type Responses<O extends OperationId> = operations[O]['responses']
/** What an operation answers on success (undefined for 204). */
export type Output<O extends OperationId> =
  200 extends keyof Responses<O> ? Json<Responses<O>[200]>
    : 201 extends keyof Responses<O> ? Json<Responses<O>[201]>
      : undefined

type HasRequired<O extends OperationId> = operations[O] extends { requestBody: unknown } ? true
  : [Part<O, 'path'>] extends [never] ? false : true

/** One method per operation of the API, named by its operationId. */
export type Api = {
  [O in OperationId]: HasRequired<O> extends true
    ? (input: Input<O>) => Promise<Output<O>>
    : (input?: Input<O>) => Promise<Output<O>>
}

export interface KeywardOptions extends TransportOptions {
  /** An access token, or an issued key with the `keyward:verify` scope for verify-only backends. */
  token?: string
  /** Local cache for verify(); off unless given (see VerifyCacheOptions). */
  cache?: VerifyCacheOptions | false
}

function query (values: Record<string, unknown> | undefined): string {
  if (values === undefined) return ''
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue
    for (const item of Array.isArray(value) ? value : [value]) params.append(name, String(item))
  }
  const text = params.toString()
  return text === '' ? '' : `?${text}`
}

/** The typed client: `keyward.api.<operationId>(input)` for the whole API, `keyward.verify()` for the hot path. */
export class Keyward {
  readonly api: Api
  readonly #transport: Transport
  readonly #verifier: Verifier
  #token: string | undefined

  constructor (options: KeywardOptions) {
    this.#transport = new Transport(options)
    this.#token = options.token
    this.#verifier = new Verifier(this.#transport, options.token ?? '', options.cache ?? false)
    const api: Record<string, (input?: Input<OperationId>) => Promise<unknown>> = {}
    for (const id of Object.keys(OPERATIONS) as OperationId[]) api[id] = (input) => this.call(id, input)
    this.api = api as unknown as Api
  }

  /** Replaces the access token for later calls (after login or refresh); verify keeps the token it was built with. */
  setToken (token: string | undefined) {
    this.#token = token
  }

  /** Calls one operation by its operationId. */
  async call<O extends OperationId> (id: O, input?: Input<O>): Promise<Output<O>> {
    const { method, path } = OPERATIONS[id]
    const params = (input?.path ?? {}) as Record<string, string>
    const url = path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? '')) +
      query(input?.query as Record<string, unknown> | undefined)
    const headers: Record<string, string> = { ...(input?.headers as Record<string, string> | undefined) }
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`
    let body: string | undefined
    if (input?.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(input.body)
    }
    const answer = await this.#transport.send(method, url, headers, body)
    return (answer.body ?? undefined) as Output<O>
  }

  /** Verifies an issued key; resolves with Keyward's answer (VALID or why not), throws KeywardError when there is none. */
  verify (key: string, options?: VerifyOptions): Promise<VerifyResult> {
    return this.#verifier.verify(key, options)
  }

  close (): Promise<void> {
    return this.#transport.close()
  }
}
