import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { HolderCommand, HolderReport } from './connection-holder.ts'

// What the connection suites share: the client processes that hold connections (connection-holder.ts)
// and the /proc readings of a server process.

const HOLDER = fileURLToPath(new URL('./connection-holder.ts', import.meta.url))

/** A client process that opens and holds connections on command. */
export function spawnHolder (): ChildProcess {
  return fork(HOLDER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/** Sends a holder one command and resolves with its report. */
export async function ask<T extends HolderReport> (holder: ChildProcess, command: HolderCommand): Promise<T> {
  const answer = once(holder, 'message') as Promise<[T]>
  holder.send(command)
  return (await answer)[0]
}

export async function askAll<T extends HolderReport> (holders: ChildProcess[], command: (i: number) => HolderCommand): Promise<T[]> {
  return Promise.all(holders.map((h, i) => ask<T>(h, command(i))))
}

export function rssKiB (pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
}

/** Open sockets of a process, counted from its descriptor table. */
export function socketCount (pid: number): number {
  let sockets = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++
    } catch {
      // Closed between the listing and the read.
    }
  }
  return sockets
}
