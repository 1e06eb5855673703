import { buildApp } from '../app.ts'
import { configOrExit } from '../config.ts'

const USAGE = 'usage: npm run admin -- promote <email> | demote <email>'

/** Operator commands against the configured store (and Redis, so running servers see the change at once). */
async function main (argv: string[]) {
  const [command, email] = argv
  if ((command !== 'promote' && command !== 'demote') || email === undefined) {
    console.error(USAGE)
    return 64
  }
  const config = configOrExit({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' })
  const app = await buildApp(config)
  try {
    await app.ready()
    const user = await app.auth.setRole(email, command === 'promote' ? 'admin' : 'user')
    console.log(`${user.email} is now ${user.role}`)
    return 0
  } catch (err) {
    console.error((err as Error).message)
    return 1
  } finally {
    await app.close()
  }
}

process.exitCode = await main(process.argv.slice(2))
