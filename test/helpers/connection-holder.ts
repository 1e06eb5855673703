/**
 * A child process that holds thousands of idle HTTP keep-alive connections to a server, so the
 * test process does not spend its own open-file limit on them. Driven over IPC by
 * test/e2e/connections.test.ts: each connection sends one real request, reads the answer, then
 * stays open and idle until told otherwise.
 */
import net from 'node:net'

export type HolderCommand =
  | { op: 'open', port: number, addresses: string[], count: number, batch: number, path: string }
  | { op: 'probe', count: number, path: string }
  | { op: 'release', count: number }
  | { op: 'status' }

export interface OpenReport { op: 'opened', held: number, refused: number, failures: Record<string, number>, shed: number }
export interface ProbeReport { op: 'probed', statuses: number[] }
export interface StatusReport { op: 'status', held: number }
export type HolderReport = OpenReport | ProbeReport | StatusReport

const ANSWER_TIMEOUT_MS = 20_000
/** A 503 is a server shedding load for a moment (under-pressure): asked again once after this pause, as a client honouring Retry-After would. */
const SHED_RETRY_MS = 1000

/** One held connection: its socket and the answer it is waiting for, if any. */
class Held {
  open = true
  private buffer = ''
  private waiting: ((status: number) => void) | null = null

  constructor (readonly socket: net.Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => this.receive(chunk))
    socket.on('close', () => {
      this.open = false
      this.settle(0)
    })
    socket.on('error', () => {})
  }

  /** Sends one keep-alive GET and resolves with the answer's status (0 when the server closed first). */
  request (path: string): Promise<number> {
    if (!this.open) return Promise.resolve(0)
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(-1), ANSWER_TIMEOUT_MS)
      this.waiting = (status) => { clearTimeout(timer); resolve(status) }
      this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    })
  }

  private receive (chunk: string) {
    this.buffer += chunk
    const end = this.buffer.indexOf('\r\n\r\n')
    if (end === -1) return
    const head = this.buffer.slice(0, end)
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0)
    if (this.buffer.length < end + 4 + length) return
    this.buffer = this.buffer.slice(end + 4 + length)
    this.settle(Number(head.slice(9, 12)))
  }

  private settle (status: number) {
    const waiting = this.waiting
    this.waiting = null
    waiting?.(status)
  }
}

const held: Held[] = []
let nextAddress = 0

/** Connects from a loopback source address, asks once, and keeps the socket if it was answered. */
async function openOne (port: number, addresses: string[], path: string, failures: Record<string, number>, shed: { count: number }): Promise<boolean> {
  const localAddress = addresses[nextAddress++ % addresses.length]
  const socket = net.connect({ host: '127.0.0.1', port, localAddress })
  const connected = await new Promise<string | null>((resolve) => {
    socket.once('connect', () => resolve(null))
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
  if (connected !== null) {
    failures[connected] = (failures[connected] ?? 0) + 1
    socket.destroy()
    return false
  }
  const connection = new Held(socket)
  let status = await connection.request(path)
  if (status === 503) {
    shed.count++
    await new Promise((resolve) => setTimeout(resolve, SHED_RETRY_MS))
    status = await connection.request(path)
  }
  if (status === 200 && connection.open) {
    held.push(connection)
    return true
  }
  const reason = status === 0 ? 'closed by the server' : status === -1 ? 'no answer' : `HTTP ${status}`
  failures[reason] = (failures[reason] ?? 0) + 1
  socket.destroy()
  return false
}

async function run (command: HolderCommand): Promise<HolderReport> {
  switch (command.op) {
    case 'open': {
      const failures: Record<string, number> = {}
      const shed = { count: 0 }
      let ok = 0
      let refused = 0
      for (let done = 0; done < command.count; done += command.batch) {
        const size = Math.min(command.batch, command.count - done)
        const results = await Promise.all(Array.from({ length: size }, () => openOne(command.port, command.addresses, command.path, failures, shed)))
        for (const r of results) if (r) ok++; else refused++
      }
      return { op: 'opened', held: ok, refused, failures, shed: shed.count }
    }
    case 'probe': {
      const open = held.filter((h) => h.open).slice(0, command.count)
      return { op: 'probed', statuses: await Promise.all(open.map((h) => h.request(command.path))) }
    }
    case 'release': {
      const gone = held.splice(0, command.count)
      await Promise.all(gone.map((h) => new Promise((resolve) => {
        if (!h.open) return resolve(null)
        h.socket.once('close', resolve)
        h.socket.destroy()
      })))
      return { op: 'status', held: held.filter((h) => h.open).length }
    }
    case 'status':
      return { op: 'status', held: held.filter((h) => h.open).length }
  }
}

process.on('message', (command: HolderCommand) => {
  run(command).then((report) => process.send!(report), (err: Error) => {
    console.error(err)
    process.exit(1)
  })
})
// The test went away: let every socket go with the process.
process.on('disconnect', () => process.exit(0))
