import { Agent, request } from 'node:http'
import { onScopeEnd, type TestScope } from './scope.ts'

export interface OneConnection {
  /** Sends a request over the connection and resolves with its status and parsed JSON body. */
  send (method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number, body: Record<string, unknown> }>
  /** The sockets the requests went over: one, unless the server closed the connection. */
  readonly sockets: Set<unknown>
}

/** A keep-alive agent with a single socket: every request meets what the server remembers per connection. */
export function oneConnection (scope: TestScope, url: string): OneConnection {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  onScopeEnd(scope, () => agent.destroy())
  const sockets = new Set<unknown>()
  const send: OneConnection['send'] = (method, path, headers, body) => new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, agent, headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
    req.on('socket', (socket) => sockets.add(socket))
    req.on('error', reject)
    req.end(body === undefined ? undefined : JSON.stringify(body))
  })
  return { send, sockets }
}
