import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'

export interface Credentials {
  url: string
  accessToken: string
  refreshToken?: string
}

/** `$XDG_CONFIG_HOME/keyward/credentials.json`, or under ~/.config. */
export function credentialsPath (env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config')
  return join(base, 'keyward', 'credentials.json')
}

export async function readCredentials (path: string): Promise<Credentials | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Credentials
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/** Tokens are secrets: the folder is the user's alone (0700) and the file too (0600), even if it existed before. */
export async function writeCredentials (path: string, credentials: Credentials): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  await writeFile(path, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 })
  await chmod(path, 0o600)
}
