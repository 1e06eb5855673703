import { BlockList, isIP } from 'node:net'

const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** Whether an address to listen on accepts connections from this machine only. */
export function isLoopback (host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true
  const family = isIP(host)
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6')
}

/** For the start-up line: who can connect, and how to change it. */
export function listenScope (host: string): string {
  if (isLoopback(host)) return 'loopback only: set HOST=0.0.0.0 to accept connections from other machines'
  return host === '0.0.0.0' || host === '::' ? `HOST=${host}: every interface` : `HOST=${host}`
}

/** The variables that chose an address and port, named in start-up lines and failures. */
export interface ListenTarget { host: string, port: number, hostVariable: string, portVariable: string }

/** One line for a listen() that failed, naming the variable to change; never a stack. */
export function listenFailure (err: unknown, target: ListenTarget): string {
  const { host, port, hostVariable, portVariable } = target
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'EADDRINUSE') return `${portVariable}=${port} on ${host} is already in use by another process: stop it or choose another ${portVariable}`
  if (code === 'EACCES') return `${portVariable}=${port} on ${host} needs privileges this process lacks: choose a ${portVariable} above 1023`
  if (code === 'EADDRNOTAVAIL') return `${hostVariable}=${host} is not an address of this machine`
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${hostVariable}=${host} does not resolve to an address`
  return `cannot listen on ${host}:${port} (${hostVariable}, ${portVariable}): ${(err as Error).message}`
}
