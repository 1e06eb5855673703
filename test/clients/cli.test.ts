import assert from 'node:assert/strict'
import { stat } from 'node:fs/promises'
import { after, before, test } from 'node:test'
import { run } from '../../clients/node/src/commands.ts'
import { credentialsPath } from '../../clients/node/src/credentials.ts'
import { registerUser } from '../helpers/app.ts'
import { tempDir } from '../helpers/tmp.ts'
import { startKeyward, type RunningKeyward } from './keyward.ts'

let kw: RunningKeyward
let config: Awaited<ReturnType<typeof tempDir>>
before(async () => { [kw, config] = await Promise.all([startKeyward(), tempDir('keyward-cli')]) })
after(async () => { await Promise.all([kw.close(), config.remove()]) })

async function keyward (...argv: string[]) {
  const lines: string[] = []
  const code = await run(argv, { out: (line) => lines.push(line), env: { XDG_CONFIG_HOME: config.dir } })
  return { code, text: lines.join('\n') }
}

test('login, keys list|create|rotate|revoke, verify and usage, as tables and --json', async () => {
  assert.equal((await keyward('keys', 'list')).code, 1, 'not signed in yet')
  const user = await registerUser(kw.test.app)
  assert.equal((await keyward('login', '--url', kw.url, '--email', user.email, '--password', user.password)).code, 0)
  const file = credentialsPath({ XDG_CONFIG_HOME: config.dir })
  assert.equal((await stat(file)).mode & 0o777, 0o600)

  const created = JSON.parse((await keyward('keys', 'create', '--name', 'cli-key', '--scopes', 'read,write', '--monthly-limit', '10', '--json')).text)
  assert.match(created.secret, /^kw_/)
  const listed = await keyward('keys', 'list')
  assert.match(listed.text, /^id\s+name\s+kind\s+status/)
  assert.match(listed.text, /cli-key\s+issued\s+active/)

  const verified = await keyward('verify', created.secret, '--scopes', 'read', '--json')
  assert.equal(verified.code, 0)
  assert.equal(JSON.parse(verified.text).code, 'VALID')
  assert.match((await keyward('usage')).text, /keyId\s+name\s+units/)
  assert.equal(JSON.parse((await keyward('usage', created.key.id, '--json')).text).keyId, created.key.id)

  const rotated = JSON.parse((await keyward('keys', 'rotate', created.key.id, '--json')).text)
  assert.notEqual(rotated.secret, created.secret)
  assert.match((await keyward('keys', 'revoke', created.key.id)).text, /revoked/)
  const refused = await keyward('verify', rotated.secret)
  assert.equal(refused.code, 2)
  assert.match(refused.text, /REVOKED/)
  assert.match((await keyward('keys', 'revoke', 'nope')).text, /^404 NOT_FOUND/)
})
