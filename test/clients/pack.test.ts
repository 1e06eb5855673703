import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { tempDir } from '../helpers/tmp.ts'

const exec = promisify(execFile)
const PACKAGE = fileURLToPath(new URL('../../clients/node/', import.meta.url))
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'

test('npm pack produces a package that installs and imports in a fresh folder', async () => {
  const folder = await tempDir('keyward-pack')
  try {
    // prepack builds dist/ with tsc; the tarball lands in the temporary folder, not the tree.
    const { stdout } = await exec(NPM, ['pack', '--pack-destination', folder.dir, '--silent'], { cwd: PACKAGE })
    const tarball = join(folder.dir, stdout.trim().split('\n').pop()!)
    const app = join(folder.dir, 'app')
    await exec('mkdir', [app])
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
    // Its one dependency (undici) comes from the npm cache when it is there.
    await exec(NPM, ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: app })
    const probe = `
      const client = await import('@keyward/client')
      const fastify = await import('@keyward/client/fastify')
      const express = await import('@keyward/client/express')
      const k = new client.Keyward({ baseUrl: 'http://127.0.0.1:1' })
      await k.close()
      console.log(JSON.stringify([typeof client.Keyward, typeof client.KeywardError, typeof fastify.default, typeof express.keyward, typeof k.api.verifyKey]))`
    const imported = await exec(process.execPath, ['--input-type=module', '-e', probe], { cwd: app })
    assert.deepEqual(JSON.parse(imported.stdout), ['function', 'function', 'function', 'function', 'function'])
    const cli = await exec(join(app, 'node_modules', '.bin', 'keyward'), [], { cwd: app, env: { ...process.env, XDG_CONFIG_HOME: folder.dir } }).catch((e: { stdout: string, code: number }) => e)
    assert.equal((cli as { code?: number }).code, 1)
    assert.match(cli.stdout, /Usage: keyward/)
  } finally {
    await folder.remove()
  }
})
