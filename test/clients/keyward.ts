import { createTestApp, registerUser, type TestApp } from '../helpers/app.ts'
import { Keyward, type KeywardOptions } from '../../clients/node/src/index.ts'

export interface RunningKeyward {
  test: TestApp
  url: string
  /** The signed-in owner's access token. */
  token: string
  /** A client signed in as the owner. */
  owner: Keyward
  /** Creates an issued key and returns its id and secret. */
  issue (body?: Record<string, unknown>): Promise<{ id: string, secret: string }>
  /** A client with the given options (its own pool); closed with the server. */
  client (options?: Partial<KeywardOptions>): Keyward
  close (): Promise<void>
}

/** The real app listening on 127.0.0.1 with a registered owner, for clients to call over HTTP. */
export async function startKeyward (env: Record<string, string> = {}): Promise<RunningKeyward> {
  const test = await createTestApp(env)
  const url = await test.app.listen({ host: '127.0.0.1', port: 0 })
  const { accessToken } = await registerUser(test.app)
  const clients: Keyward[] = []
  const client = (options: Partial<KeywardOptions> = {}) => {
    const made = new Keyward({ baseUrl: url, token: accessToken, ...options })
    clients.push(made)
    return made
  }
  const owner = client()
  return {
    test,
    url,
    token: accessToken,
    owner,
    client,
    async issue (body = {}) {
      const created = await owner.api.createKey({ body: { kind: 'issued', name: `key-${Math.random().toString(36).slice(2, 8)}`, ...body } })
      return { id: created.key.id, secret: created.secret! }
    },
    async close () {
      await Promise.all(clients.map((c) => c.close()))
      await test.close()
    }
  }
}
