import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The project's root: the bench's servers run from it. */
export const ROOT = fileURLToPath(new URL('../', import.meta.url))

/** Starts a server entry under tsx (from `cwd`, this checkout by default) and resolves once it prints where it listens. */
export function start (entry: string, env: Record<string, string>, cwd = ROOT): Promise<{ proc: ChildProcess, url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} did not start:\n${output}`)), 30_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve({ proc, url: match[1] as string })
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${entry} exited ${code}:\n${output}`)) })
  })
}

/** Stops a server started by start() and waits for it to exit. */
export async function stop (proc: ChildProcess) {
  if (proc.exitCode !== null) return
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  proc.kill('SIGTERM')
  await exited
}
