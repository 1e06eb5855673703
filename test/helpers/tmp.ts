import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onScopeEnd, type TestScope } from './scope.ts'

/** A fresh temporary folder for one test's real SQLite file, removed afterwards. */
export async function tempDir (label = 'keyward') {
  const dir = await mkdtemp(join(tmpdir(), `${label}-`))
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) }
}

/** A fresh temporary folder removed when the test (or suite scope) ends. */
export async function testDir (scope: TestScope, label = 'keyward') {
  const { dir, remove } = await tempDir(label)
  onScopeEnd(scope, remove)
  return dir
}
