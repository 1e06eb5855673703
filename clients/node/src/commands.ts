import { parseArgs } from 'node:util'
import { Keyward } from './client.ts'
import { credentialsPath, readCredentials, writeCredentials, type Credentials } from './credentials.ts'
import { KeywardError } from './errors.ts'

const USAGE = `Usage: keyward <command> [--json]
  login --url <url> --email <email> [--password <password>]   sign in (password also from KEYWARD_PASSWORD)
  login --url <url> --token <token>                           keep a token or a keyward:verify key instead
  keys list
  keys create --name <name> [--scopes a,b] [--monthly-limit n] [--prefix p]
  keys rotate <id> [--grace <seconds>]
  keys revoke <id>
  verify <key> [--scopes a,b]
  usage [<key id>]                                             month to date, or one key's daily usage`

export interface Io {
  out: (line: string) => void
  env: NodeJS.ProcessEnv
}

type Row = Record<string, unknown>

/** Columns padded to their widest cell; nested values as JSON. */
export function table (rows: Row[], columns: string[]): string {
  const cell = (v: unknown) => v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(columns), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n')
}

const OPTIONS = {
  json: { type: 'boolean' },
  url: { type: 'string' },
  email: { type: 'string' },
  password: { type: 'string' },
  token: { type: 'string' },
  name: { type: 'string' },
  scopes: { type: 'string' },
  'monthly-limit': { type: 'string' },
  prefix: { type: 'string' },
  grace: { type: 'string' }
} as const

const list = (value: string | undefined) => value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter(Boolean)

async function login (values: Record<string, string | boolean | undefined>, path: string, io: Io): Promise<Credentials> {
  const url = values.url as string | undefined
  if (url === undefined) throw new Error('login needs --url')
  if (typeof values.token === 'string') return { url, accessToken: values.token }
  const password = (values.password as string | undefined) ?? io.env.KEYWARD_PASSWORD
  if (typeof values.email !== 'string' || password === undefined) throw new Error('login needs --email and --password (or KEYWARD_PASSWORD), or --token')
  const client = new Keyward({ baseUrl: url })
  try {
    const pair = await client.api.login({ body: { email: values.email, password } })
    io.out(`signed in as ${pair.user.email}; credentials in ${path}`)
    return { url, accessToken: pair.accessToken, refreshToken: pair.refreshToken }
  } finally {
    await client.close()
  }
}

/** Runs one command; resolves with the exit code. */
export async function run (argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true })
  const [command, sub, arg] = positionals
  const path = credentialsPath(io.env)
  const print = (data: unknown, rows: Row[], columns: string[]) => io.out(values.json === true ? JSON.stringify(data, null, 2) : table(rows, columns))
  if (command === 'login') {
    await writeCredentials(path, await login(values, path, io))
    return 0
  }
  const credentials = await readCredentials(path)
  if (credentials === null || command === undefined) {
    io.out(credentials === null && command !== undefined ? `not signed in: run keyward login first\n${USAGE}` : USAGE)
    return 1
  }
  const client = new Keyward({ baseUrl: credentials.url, token: credentials.accessToken })
  try {
    if (command === 'keys' && sub === 'list') {
      const page = await client.api.listKeys({ query: { limit: 100 } })
      print(page, page.items, ['id', 'name', 'kind', 'status', 'start', 'scopes', 'expiresAt'])
    } else if (command === 'keys' && sub === 'create') {
      if (values.name === undefined) throw new Error('keys create needs --name')
      const limit = values['monthly-limit'] === undefined ? undefined : Number(values['monthly-limit'])
      const created = await client.api.createKey({ body: { kind: 'issued', name: values.name, scopes: list(values.scopes), monthlyLimit: limit, prefix: values.prefix } })
      print(created, [{ ...created.key, secret: created.secret }], ['id', 'name', 'scopes', 'secret'])
    } else if (command === 'keys' && sub === 'rotate' && arg !== undefined) {
      const grace = values.grace === undefined ? undefined : Number(values.grace)
      const rotated = await client.api.rotateKey({ path: { id: arg }, body: { gracePeriodSeconds: grace } })
      print(rotated, [{ ...rotated.key, secret: rotated.secret }], ['id', 'name', 'version', 'secret'])
    } else if (command === 'keys' && sub === 'revoke' && arg !== undefined) {
      await client.api.revokeKey({ path: { id: arg } })
      print({ id: arg, status: 'revoked' }, [{ id: arg, status: 'revoked' }], ['id', 'status'])
    } else if (command === 'verify' && sub !== undefined) {
      const result = await client.verify(sub, { scopes: list(values.scopes) })
      print(result, [{ ...result, used: result.usage?.used, limit: result.usage?.limit }], ['valid', 'code', 'keyId', 'name', 'scopes', 'used', 'limit'])
      return result.valid ? 0 : 2
    } else if (command === 'usage' && sub === undefined) {
      const summary = await client.api.getUsageSummary()
      print(summary, summary.byKey, ['keyId', 'name', 'units', 'requests', 'monthlyLimit'])
    } else if (command === 'usage') {
      const series = await client.api.getKeyUsage({ path: { id: sub! }, query: { granularity: 'day' } })
      print(series, series.points, ['start', 'units', 'requests'])
    } else {
      io.out(USAGE)
      return 1
    }
    return 0
  } catch (error) {
    if (!(error instanceof KeywardError)) throw error
    io.out(`${error.statusCode} ${error.code}: ${error.message}${error.requestId === null ? '' : ` (request ${error.requestId})`}`)
    return 1
  } finally {
    await client.close()
  }
}
