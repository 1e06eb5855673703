// Runs every test file under test/ with node:test through tsx. Node 20's runner does not expand
// globs, so the files are listed here; extra arguments (a file or folder) narrow the run.
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

function collect (path) {
  if (statSync(path).isFile()) return path.endsWith('.test.ts') ? [path] : []
  return readdirSync(path).sort().flatMap((entry) => collect(join(path, entry)))
}

const roots = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const flags = process.argv.slice(2).filter((a) => a.startsWith('--'))
const files = (roots.length > 0 ? roots : ['test']).flatMap(collect)
if (files.length === 0) {
  console.error('no test files found')
  process.exit(1)
}
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=120000', ...flags, ...files], {
  stdio: 'inherit',
  env: { ...process.env, NODE_ENV: 'test' }
})
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
