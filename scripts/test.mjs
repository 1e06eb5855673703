// Runs every test file under test/ with node:test through tsx. Node 20's runner does not expand
// globs, so the files are listed here; extra arguments (a file or folder) narrow the run.
// Suites that measure a whole cluster under traffic run afterwards, alone, so the other suites'
// load on this machine's two cores does not decide their timing. Suites under test/stress run
// for minutes and only when named (`npm run test:stress`). The MongoDB step-down runs alone too: it
// takes the shared replica set's primary away from every suite connected to it.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const ALONE = ['test/e2e/cluster.test.ts', 'test/e2e/connections.test.ts', 'test/e2e/mongo-stepdown.test.ts']
const STRESS = join('test', 'stress')

function collect (path, named) {
  if (statSync(path).isFile()) return path.endsWith('.test.ts') ? [path] : []
  if (!named && path === STRESS) return []
  return readdirSync(path).sort().flatMap((entry) => collect(join(path, entry), false))
}

const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'))
const files = (roots.length > 0 ? roots : ['test']).flatMap((root) => collect(join(root), true))
if (files.length === 0) {
  console.error('no test files found')
  process.exit(1)
}

function run (list, concurrency, timeoutMs = 300_000) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeoutMs}`, ...flags, ...list], {
      stdio: 'inherit',
      env: { ...process.env, NODE_ENV: 'test' }
    })
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)))
  })
}

const stress = files.filter((f) => f.startsWith(STRESS))
const together = files.filter((f) => !ALONE.includes(f) && !stress.includes(f))
const alone = files.filter((f) => ALONE.includes(f))
let code = together.length > 0 ? await run(together, 2) : 0
if (alone.length > 0) code = (await run(alone, 1)) || code
// Stress suites set their own bound from their duration.
if (stress.length > 0) code = (await run(stress, 1, 3_600_000)) || code
process.exit(code)
