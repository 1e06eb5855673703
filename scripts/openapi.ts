// Writes Keyward's OpenAPI document (/docs/json) to clients/node/openapi.json, from which the
// client's types are generated: `npm run openapi` after a route's schema changes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../app.ts'
import { createConfig } from '../config.ts'

export const OPENAPI_FILE = fileURLToPath(new URL('../clients/node/openapi.json', import.meta.url))

/** The document as the server serves it, from an app on a throwaway SQLite folder. */
export async function openApiDocument (): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), 'keyward-openapi-'))
  const app = await buildApp(createConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    // A busy machine must not answer the export with under-pressure's 503.
    MAX_EVENT_LOOP_DELAY_MS: '0',
    JWT_SECRET: 'openapi-export-jwt-secret-0123456789abcdef',
    KEY_HASH_SECRET: 'openapi-export-key-hash-secret-0123456789'
  }))
  try {
    const res = await app.inject({ method: 'GET', url: '/docs/json' })
    if (res.statusCode !== 200) throw new Error(`/docs/json answered ${res.statusCode}: ${res.body}`)
    return JSON.stringify(res.json(), null, 2) + '\n'
  } finally {
    await app.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await writeFile(OPENAPI_FILE, await openApiDocument())
  console.log(`wrote ${OPENAPI_FILE}`)
}
