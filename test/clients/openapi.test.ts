import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { GENERATED, generate } from '../../clients/node/scripts/generate.ts'
import { OPENAPI_FILE, openApiDocument } from '../../scripts/openapi.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const REDOCLY = fileURLToPath(new URL('../../node_modules/@redocly/cli/bin/cli.js', import.meta.url))

const served = openApiDocument()

test('the exported document (clients/node/openapi.json) is what the server serves: `npm run openapi` after a schema change', async () => {
  assert.equal(await readFile(OPENAPI_FILE, 'utf8'), await served)
})

test('the document is clean under Redocly\'s recommended rules', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [REDOCLY, 'lint', OPENAPI_FILE, '--format=json'], {
    cwd: ROOT,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' }
  })
  const report = JSON.parse(stdout) as { totals: { errors: number, warnings: number }, problems: Array<{ ruleId: string, message: string }> }
  assert.deepEqual(report.problems.map((p) => `${p.ruleId}: ${p.message}`), [])
  assert.equal(report.totals.errors + report.totals.warnings, 0)
})

test('every operation has a readable operationId, unique across the document', async () => {
  const doc = JSON.parse(await served) as { paths: Record<string, Record<string, { operationId?: string }>> }
  const ids = Object.values(doc.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId))
  for (const id of ids) assert.match(id ?? '', /^[a-z][A-Za-z]+$/)
  assert.equal(new Set(ids).size, ids.length)
  assert.ok(ids.includes('verifyKey') && ids.includes('listKeys') && ids.includes('createKey'))
})

test('the client\'s generated types match the exported document: `npm run generate -w clients/node` after an export', async () => {
  const { types, operations } = await generate()
  assert.equal(await readFile(GENERATED.types, 'utf8'), types)
  assert.equal(await readFile(GENERATED.operations, 'utf8'), operations)
})
