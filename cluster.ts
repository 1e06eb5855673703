import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { AggregatorRegistry, type PrometheusContentType } from 'prom-client'
import pino, { type Logger } from 'pino'
import { configOrExit, exitIfConfigError, type Config } from './config.ts'
import { listenScope } from './plugins/app/listen.ts'
import { answerMetricsRequest } from './plugins/app/metrics/cluster-metrics.ts'
import { listenMetrics, metricsListener, metricsStartupLine } from './plugins/app/metrics/listener.ts'
import { openStore } from './plugins/app/store/open.ts'
import { connectMongo } from './plugins/external/mongodb.ts'

/** Crashes of one worker slot within this window that stop its restarts (a crash loop). */
const CRASH_WINDOW_MS = 60_000
const MAX_CRASHES = 5
/** Workers answer metrics from their own registries; the primary adds them up, so they serve no METRICS_PORT of their own. */
const WORKER_ENV = { KEYWARD_CLUSTER_WORKER: '1', METRICS_PORT: '0' }

interface Slot { id: number, worker: Worker, crashes: number[] }

/** WORKERS, or one per core; anything else stops start-up with exit code 78 (a configuration error). */
function workerCount (): number {
  const count = Number(process.env.WORKERS ?? availableParallelism())
  if (!Number.isInteger(count) || count < 1 || count > 256) {
    console.error(`Invalid configuration: WORKERS must be an integer between 1 and 256 (got "${process.env.WORKERS}")`)
    process.exit(78)
  }
  return count
}

/** Migrations and indexes, once, before any worker opens the store. */
async function migrate (config: Config) {
  const mongo = config.mongo === undefined ? undefined : await connectMongo(config.mongo.uri, config.mongo.connectTimeoutMs)
  const store = openStore(config, mongo === undefined ? undefined : { client: mongo, owned: true })
  await store.init()
  await store.close()
}

function couldNotStart (reason: string): never {
  console.error(`Keyward could not start: ${reason}`)
  process.exit(1)
}

/**
 * The whole service's metrics on METRICS_PORT, listening before any worker is forked so that a
 * taken port stops start-up with one line instead of leaving workers behind.
 */
async function serveMetrics (config: Config, log: Logger, aggregator: AggregatorRegistry<PrometheusContentType>): Promise<FastifyInstance | null> {
  let server: FastifyInstance | null = null
  if (config.metrics.port !== 0) {
    server = metricsListener({ token: config.metrics.token, contentType: aggregator.contentType, text: () => aggregator.clusterMetrics() })
    await listenMetrics(server, config.metrics.host, config.metrics.port).catch((err: Error) => couldNotStart(err.message))
  }
  const { level, line } = metricsStartupLine(config.metrics)
  log[level](line)
  return server
}

/** Resolves once the worker says it listens; rejects if it exits first. */
function listening (worker: Worker): Promise<Worker> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if (message === 'ready') { cleanup(); resolve(worker) }
    }
    const onExit = (code: number | null) => { cleanup(); reject(new Error(`worker exited with ${code} before it was ready`)) }
    const cleanup = () => { worker.off('message', onMessage); worker.off('exit', onExit) }
    worker.on('message', onMessage)
    worker.on('exit', onExit)
  })
}

/** The server workers: one slot each, restarted when they crash, replaced one at a time on reload. */
class WorkerPool {
  private readonly slots = new Map<number, Slot>()
  private reloading = false
  stopping = false

  constructor (private readonly log: Logger, private readonly shutdownTimeoutMs: number) {
    cluster.on('exit', (worker, code, signal) => this.restart(worker, code, signal))
    // A message to a worker that has just died fails with EPIPE before its exit is seen; without a
    // listener that 'error' event is an uncaught error and would stop the whole cluster.
    cluster.on('fork', (worker) => worker.on('error', (err) => this.log.warn({ err, pid: worker.process.pid }, 'a message to a worker failed; it is going away')))
  }

  /** Forks a slot's worker; resolves once it listens. */
  fork (slotId: number): Promise<Worker> {
    const worker = cluster.fork(WORKER_ENV)
    const slot = this.slots.get(slotId)
    if (slot === undefined) this.slots.set(slotId, { id: slotId, worker, crashes: [] })
    else slot.worker = worker
    return listening(worker)
  }

  /** Restart policy: a dead worker comes back after a backoff, unless its slot crashes in a loop. */
  private restart (worker: Worker, code: number, signal: string) {
    const slot = [...this.slots.values()].find((s) => s.worker === worker)
    if (slot === undefined || this.stopping) return
    const now = Date.now()
    slot.crashes = slot.crashes.filter((t) => now - t < CRASH_WINDOW_MS).concat(now)
    if (slot.crashes.length > MAX_CRASHES) {
      this.log.error({ slot: slot.id, crashes: slot.crashes.length }, `worker ${slot.id} crashed ${slot.crashes.length} times in a minute: not restarting it`)
      this.slots.delete(slot.id)
      if (this.slots.size === 0) {
        this.log.fatal('every worker is crash-looping; exiting')
        process.exit(1)
      }
      return
    }
    const delay = Math.min(100 * 2 ** (slot.crashes.length - 1), 5000)
    this.log.warn({ slot: slot.id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; restarting it')
    setTimeout(() => { if (!this.stopping) this.fork(slot.id).catch((err) => this.log.error({ err }, 'restarted worker failed to start')) }, delay)
  }

  /** Rolling reload, one at a time; a reload asked for while one runs, or while stopping, is ignored. */
  reload () {
    if (this.reloading || this.stopping) return
    this.reloading = true
    this.replaceEach()
      .catch((err) => this.log.error({ err }, 'reload failed'))
      .finally(() => { this.reloading = false })
  }

  /** Each replacement listens before the worker it replaces stops accepting, so some worker always accepts. */
  private async replaceEach () {
    this.log.info('reloading workers one at a time')
    for (const slot of [...this.slots.values()]) {
      const old = slot.worker
      slot.worker = await listening(cluster.fork(WORKER_ENV))
      await this.retire(old)
    }
    this.log.info('reload finished')
  }

  /** SIGTERM (the worker drains its requests), SIGKILL if it outlives its shutdown bound. */
  private retire (worker: Worker) {
    return new Promise<void>((resolve) => {
      if (worker.isDead()) return resolve()
      worker.once('exit', () => resolve())
      worker.process.kill('SIGTERM')
      setTimeout(() => { if (!worker.isDead()) worker.process.kill('SIGKILL') }, this.shutdownTimeoutMs + 2000).unref()
    })
  }

  /** Retires every worker; none is restarted from now on. */
  async stop () {
    this.stopping = true
    await Promise.all([...this.slots.values()].map((slot) => this.retire(slot.worker)))
  }
}

/** Relays what workers say to each other or ask of the primary. */
function relayMessages (aggregator: AggregatorRegistry<PrometheusContentType>) {
  cluster.on('message', (worker, message: { type?: string }) => {
    // Cache invalidations of one worker (without Redis) go to every other worker.
    if (message?.type === 'keyward:cache') {
      for (const other of Object.values(cluster.workers ?? {})) {
        if (other !== undefined && other !== worker && other.isConnected()) other.send(message)
      }
      return
    }
    // A worker asked for the whole service's metrics (/metrics on the API port).
    answerMetricsRequest(aggregator, worker, message)
  })
}

/**
 * The primary of cluster mode (`npm run cluster`): runs the start-up work that must happen once
 * (migrations and indexes), forks WORKERS HTTP processes, restarts a crashed worker with backoff
 * (and gives up on a slot that crashes in a loop), reloads workers one at a time on SIGHUP with
 * no request refused, shuts everything down gracefully on SIGTERM, and serves the metrics of the
 * whole service on METRICS_PORT.
 */
async function primary () {
  const config: Config = configOrExit()
  const log = pino({ level: config.logLevel })
  const count = workerCount()
  await migrate(config).catch((err: unknown) => {
    exitIfConfigError(err)
    couldNotStart((err as Error).message)
  })
  const aggregator = new AggregatorRegistry<PrometheusContentType>()
  const metricsServer = await serveMetrics(config, log, aggregator)

  // Workers accept from the shared listening socket themselves (SCHED_NONE): a worker that stops
  // listening during a reload leaves its pending connections in the kernel's queue for the
  // others. With round-robin handoff, a connection handed to a closing worker could hang.
  cluster.schedulingPolicy = cluster.SCHED_NONE
  cluster.setupPrimary({ exec: fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './server.ts' : './server.js', import.meta.url)) })
  const pool = new WorkerPool(log, config.http.shutdownTimeoutMs)
  relayMessages(aggregator)
  // SIGHUP is the rolling reload, not a stop.
  closeWithGrace({ delay: config.http.shutdownTimeoutMs + 5000, skip: ['SIGHUP'], logger: log }, async ({ signal, err }) => {
    if (err !== undefined) log.error({ err }, 'cluster stopping after an uncaught error')
    else log.info({ signal }, 'cluster stopping: workers finish in-flight requests')
    await pool.stop()
    await metricsServer?.close()
  })

  try {
    await Promise.all(Array.from({ length: count }, (_, i) => pool.fork(i)))
  } catch (err) {
    if (pool.stopping) return
    // The worker printed why; the primary stops the others instead of restarting them in a loop.
    pool.stop().catch(() => {})
    await metricsServer?.close()
    couldNotStart((err as Error).message)
  }
  log.info({ workers: count, pid: process.pid }, `cluster ready: ${count} workers listening at http://${config.host}:${config.port} (${listenScope(config.host)})`)
  if (typeof process.send === 'function') process.send('ready')
  process.on('SIGHUP', () => pool.reload())
}

if (cluster.isPrimary) await primary()
