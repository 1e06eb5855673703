import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh temporary folder for one test's real SQLite file, removed afterwards. */
export async function tempDir (label = 'keyward') {
  const dir = await mkdtemp(join(tmpdir(), `${label}-`))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}
