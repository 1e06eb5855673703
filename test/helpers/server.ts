import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer as createHttpServer, request as httpRequest } from 'node:http'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { TEST_SECRETS } from './app.ts'
import { testStoreEnv } from './store-env.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface RunningServer {
  proc: ChildProcess
  port: number
  url: string
  output: string[]
  /** Sends a signal and resolves with the exit code (null when killed by a signal). */
  stop (signal?: NodeJS.Signals): Promise<number | null>
}

/** Spawns the real server (server.ts under tsx) on a free port and waits until it listens (a cluster of many workers needs longer than startMs). */
export async function startServer (env: Record<string, string>, entry = 'server.ts', ready = /Keyward listening at http:\/\/127\.0\.0\.1:(\d+)/, startMs = 20_000): Promise<RunningServer> {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...TEST_SECRETS, ...testStoreEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const output: string[] = []
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const port = await new Promise<number>((resolve, reject) => {
    // A server that never says it listens is killed, not left running after the test gives up.
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`server did not start:\n${output.join('\n')}`)) }, startMs)
    // A chunk can end in the middle of a line: each stream keeps its unfinished line until the
    // rest arrives, so `output` holds whole lines only.
    const lines = (stream: NodeJS.ReadableStream) => {
      let partial = ''
      stream.on('data', (chunk: Buffer) => {
        const parts = (partial + chunk.toString('utf8')).split('\n')
        partial = parts.pop() ?? ''
        for (const line of parts.filter(Boolean)) {
          output.push(line)
          const match = ready.exec(line)
          if (match) { clearTimeout(timer); resolve(Number(match[1] ?? 0)) }
        }
      })
      stream.on('end', () => { if (partial !== '') output.push(partial) })
    }
    lines(proc.stdout!)
    lines(proc.stderr!)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}) before listening:\n${output.join('\n')}`)) })
  })
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    output,
    async stop (signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode
      proc.kill(signal)
      const [code] = await exited
      return code
    }
  }
}

/** Runs an entry point to completion and returns its exit code and output (for start-up failures). */
export async function runToExit (env: Record<string, string>, entry = 'server.ts', timeoutMs = 20_000, args: string[] = []) {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', ...TEST_SECRETS, ...testStoreEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  proc.stdout!.on('data', (c: Buffer) => { output += c.toString() })
  proc.stderr!.on('data', (c: Buffer) => { output += c.toString() })
  const started = Date.now()
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs)
  const [code] = await once(proc, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, output, ms: Date.now() - started }
}

/** A port that was free a moment ago (for the cluster, whose ready line names no port). */
export async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

export interface Received { body: string, signature: string, eventId: string }

/** A webhook receiver on loopback that answers 200 and keeps every delivery it gets. */
export async function startReceiver (path = '/hook') {
  const received: Received[] = []
  const server = createHttpServer((req, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      received.push({ body, signature: String(req.headers['keyward-signature']), eventId: String(req.headers['keyward-event-id']) })
      res.end()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}${path}`,
    received,
    close: () => { server.close() }
  }
}

/**
 * One request on a connection of its own (no keep-alive): under the cluster each one is accepted
 * anew, by whichever worker the kernel hands it to. Rejects when the connection breaks.
 */
export function requestOnce (url: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: { ...options.headers, connection: 'close' }, agent: false, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.end(options.body)
  })
}
