import { configOrExit } from '../config.ts'
import { runJob } from '../plugins/app/jobs/runner.ts'
import { findJob, SCHEDULE } from '../jobs/schedule.ts'
import { openJobContext } from '../jobs/standalone.ts'

const USAGE = `usage: npm run jobs -- run <${SCHEDULE.map((j) => j.name).join('|')}> | list`

/** Runs one maintenance job now, for operators. */
async function main (argv: string[]): Promise<number> {
  const [command, name] = argv
  if (command === 'list') {
    for (const job of SCHEDULE) console.log(`${job.name.padEnd(16)} ${job.pattern.padEnd(14)} ${job.description}`)
    return 0
  }
  const job = name === undefined ? undefined : findJob(name)
  if (command !== 'run' || job === undefined) {
    console.error(USAGE)
    return 64
  }
  const config = configOrExit({ ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' })
  const { ctx, close } = await openJobContext(config)
  try {
    const result = await runJob(job, ctx)
    console.log(JSON.stringify({ job: job.name, result }))
    return 0
  } catch (err) {
    console.error(`${job.name} failed: ${(err as Error).message}`)
    return 1
  } finally {
    await close()
  }
}

process.exitCode = await main(process.argv.slice(2))
