import { randomBytes } from 'node:crypto'
import { CronExpressionParser } from 'cron-parser'
import type { JobContext, ScheduledJob } from './context.ts'
import { runJob } from './runner.ts'

const TICK_MS = 5000
const LEASE_MS = 30_000

export function nextRun (pattern: string, after: number, tz: string): number {
  return CronExpressionParser.parse(pattern, { currentDate: new Date(after), tz }).next().getTime()
}

/**
 * Embedded mode (no Redis): the API process runs the maintenance jobs on their schedules and
 * attempts due webhook deliveries. A lease in the store keeps it to one process at a time, so
 * under the cluster exactly one worker schedules; another takes over if that one dies.
 */
export class EmbeddedScheduler {
  readonly holder = `${process.pid}-${randomBytes(4).toString('hex')}`
  private timer: NodeJS.Timeout | null = null
  private readonly next = new Map<string, number>()
  private running: Promise<void> | null = null
  leader = false

  constructor (private readonly ctx: JobContext, private readonly jobs: ScheduledJob[]) {}

  start () {
    const now = this.ctx.clock.now()
    for (const job of this.jobs) this.next.set(job.name, nextRun(job.pattern, now, this.ctx.config.jobs.tz))
    this.timer = setInterval(() => { this.tick().catch(() => {}) }, TICK_MS)
    this.timer.unref()
  }

  nextRuns (): Record<string, number> {
    return Object.fromEntries(this.next)
  }

  /** One scheduling round: take or renew the lease, run what is due, attempt due deliveries. */
  tick (): Promise<void> {
    this.running ??= this.round().finally(() => { this.running = null })
    return this.running
  }

  private async round () {
    const now = this.ctx.clock.now()
    this.leader = await this.ctx.store.acquireLease('embedded-scheduler', this.holder, LEASE_MS, now)
    if (!this.leader) return
    for (const job of this.jobs) {
      const due = this.next.get(job.name) ?? 0
      if (due > now) continue
      this.next.set(job.name, nextRun(job.pattern, now, this.ctx.config.jobs.tz))
      await runJob(job, this.ctx).catch(() => {})
    }
    await this.ctx.notifier.deliverDue().catch((err) => this.ctx.log.error({ err }, 'webhook deliveries failed'))
  }

  /** Stops scheduling; a job already running finishes first. */
  async stop () {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    await this.running
    if (this.leader) await this.ctx.store.releaseLease('embedded-scheduler', this.holder).catch(() => {})
  }
}
