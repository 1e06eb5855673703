import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { it } from 'node:test'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

function sources (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : []
  })
}

/** Every error code the server can answer with: thrown AppErrors, built error bodies, and the error module's tables. */
function serverCodes (): Set<string> {
  const codes = new Set<string>()
  const add = (text: string, pattern: RegExp) => { for (const m of text.matchAll(pattern)) codes.add(m[1] as string) }
  for (const file of [...sources('plugins'), ...sources('routes')]) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    add(text, /AppError\(\d{3}, '([A-Z_]+)'/g)
    add(text, /errorBody\(request, \d{3}, '([A-Z_]+)'/g)
  }
  const errors = readFileSync(join(ROOT, 'plugins/app/errors.ts'), 'utf8')
  add(errors, /code: '([A-Z_]+)'/g)
  add(errors, /^ {2}\d{3}: '([A-Z_]+)'/gm)
  return codes
}

it('the console puts every error code the server can answer with into words', async () => {
  const { ApiError } = await import(new URL('../../../public/console/js/errors.js', import.meta.url).href) as {
    ApiError: new (status: number, body: { code: string, message: string }, retryAfter: number) => { text: string }
  }
  const codes = serverCodes()
  // The scan finds the codes we know of, so an empty or broken scan cannot pass.
  for (const known of ['WRONG_PASSWORD', 'SESSION_REVOKED', 'CSRF_INVALID', 'STORE_BUSY', 'INTERNAL_ERROR', 'METHOD_NOT_ALLOWED', 'RATE_LIMITED']) {
    assert.ok(codes.has(known), known)
  }
  const unworded = [...codes].filter((code) => new ApiError(400, { code, message: 'the detail' }, 0).text === 'the detail')
  assert.deepEqual(unworded, [])
  // The API's message still follows the words.
  assert.equal(new ApiError(403, { code: 'WRONG_PASSWORD', message: 'The password is wrong' }, 0).text, 'Wrong password: The password is wrong')
})
