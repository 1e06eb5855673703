import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { AggregatorRegistry } from 'prom-client'
import pino from 'pino'
import { configOrExit, type Config } from './config.ts'
import { listenScope } from './plugins/app/listen.ts'
import { listenMetrics, metricsListener, metricsStartupLine } from './plugins/app/metrics/listener.ts'
import { openStore } from './plugins/app/store/open.ts'
import { connectMongo } from './plugins/external/mongodb.ts'

/** Crashes of one worker slot within this window that stop its restarts (a crash loop). */
const CRASH_WINDOW_MS = 60_000
const MAX_CRASHES = 5

interface Slot { id: number, worker: Worker, crashes: number[] }

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
  const count = Number(process.env.WORKERS ?? availableParallelism())
  if (!Number.isInteger(count) || count < 1 || count > 256) {
    console.error(`Invalid configuration: WORKERS must be an integer between 1 and 256 (got "${process.env.WORKERS}")`)
    process.exit(78)
  }

  // Migrations and indexes, once, before any worker opens the store.
  const mongo = config.mongo === undefined ? undefined : await connectMongo(config.mongo.uri, config.mongo.connectTimeoutMs)
  const store = openStore(config, mongo === undefined ? undefined : { client: mongo, owned: true })
  await store.init()
  await store.close()

  // The whole service's metrics on METRICS_PORT, listening before any worker is forked so that a
  // taken port stops start-up with one line instead of leaving workers behind.
  const metrics = new AggregatorRegistry()
  let metricsServer: FastifyInstance | null = null
  if (config.metrics.port !== 0) {
    metricsServer = metricsListener({ token: config.metrics.token, contentType: metrics.contentType, text: () => metrics.clusterMetrics() })
    try {
      await listenMetrics(metricsServer, config.metrics.host, config.metrics.port)
    } catch (err) {
      console.error(`Keyward could not start: ${(err as Error).message}`)
      process.exit(1)
    }
  }
  const { level, line } = metricsStartupLine(config.metrics)
  log[level](line)

  const entry = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './server.ts' : './server.js', import.meta.url))
  // Workers answer metrics from their own registries; the primary adds them up. Their own
  // METRICS_PORT server would collide, so workers serve metrics only through the primary.
  // Workers accept from the shared listening socket themselves (SCHED_NONE): a worker that stops
  // listening during a reload leaves its pending connections in the kernel's queue for the
  // others. With round-robin handoff, a connection handed to a closing worker could hang.
  cluster.schedulingPolicy = cluster.SCHED_NONE
  cluster.setupPrimary({ exec: entry })
  const workerEnv = { KEYWARD_CLUSTER_WORKER: '1', METRICS_PORT: '0' }
  const slots = new Map<number, Slot>()
  let stopping = false

  const fork = (slotId: number): Promise<Worker> => {
    const worker = cluster.fork(workerEnv)
    const slot = slots.get(slotId)
    if (slot === undefined) slots.set(slotId, { id: slotId, worker, crashes: [] })
    else slot.worker = worker
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

  cluster.on('exit', (worker, code, signal) => {
    const slot = [...slots.values()].find((s) => s.worker === worker)
    if (slot === undefined || stopping) return
    const now = Date.now()
    slot.crashes = slot.crashes.filter((t) => now - t < CRASH_WINDOW_MS).concat(now)
    if (slot.crashes.length > MAX_CRASHES) {
      log.error({ slot: slot.id, crashes: slot.crashes.length }, `worker ${slot.id} crashed ${slot.crashes.length} times in a minute: not restarting it`)
      slots.delete(slot.id)
      if (slots.size === 0) {
        log.fatal('every worker is crash-looping; exiting')
        process.exit(1)
      }
      return
    }
    const delay = Math.min(100 * 2 ** (slot.crashes.length - 1), 5000)
    log.warn({ slot: slot.id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; restarting it')
    setTimeout(() => { if (!stopping) fork(slot.id).catch((err) => log.error({ err }, 'restarted worker failed to start')) }, delay)
  })

  try {
    await Promise.all(Array.from({ length: count }, (_, i) => fork(i)))
  } catch (err) {
    // The worker printed why; the primary stops the others instead of restarting them in a loop.
    stopping = true
    console.error(`Keyward could not start: ${(err as Error).message}`)
    for (const slot of slots.values()) slot.worker.process.kill('SIGTERM')
    await metricsServer?.close()
    process.exit(1)
  }
  log.info({ workers: count, pid: process.pid }, `cluster ready: ${count} workers listening at http://${config.host}:${config.port} (${listenScope(config.host)})`)
  if (typeof process.send === 'function') process.send('ready')

  cluster.on('message', (worker, message: { type?: string, id?: number }) => {
    // Cache invalidations of one worker (without Redis) go to every other worker.
    if (message?.type === 'keyward:cache') {
      for (const other of Object.values(cluster.workers ?? {})) {
        if (other !== undefined && other !== worker && other.isConnected()) other.send(message)
      }
      return
    }
    // A worker asked for the whole service's metrics (/metrics on the API port).
    if (message?.type !== 'keyward:metrics') return
    metrics.clusterMetrics().then(
      (text) => worker.send({ type: 'keyward:metrics', id: message.id, text }),
      (err: Error) => worker.send({ type: 'keyward:metrics', id: message.id, error: err.message }))
  })

  let reloading = false
  process.on('SIGHUP', () => {
    if (reloading || stopping) return
    reloading = true
    ;(async () => {
      log.info('reloading workers one at a time')
      for (const slot of [...slots.values()]) {
        const old = slot.worker
        // The replacement listens before the old worker stops accepting: some worker always accepts.
        const replacement = cluster.fork(workerEnv)
        await new Promise<void>((resolve, reject) => {
          replacement.on('message', (m) => { if (m === 'ready') resolve() })
          replacement.once('exit', (code) => reject(new Error(`replacement exited with ${code}`)))
        })
        slot.worker = replacement
        await retire(old)
      }
      log.info('reload finished')
    })().catch((err) => log.error({ err }, 'reload failed')).finally(() => { reloading = false })
  })

  const retire = (worker: Worker) => new Promise<void>((resolve) => {
    if (worker.isDead()) return resolve()
    worker.once('exit', () => resolve())
    worker.process.kill('SIGTERM')
    setTimeout(() => { if (!worker.isDead()) worker.process.kill('SIGKILL') }, config.http.shutdownTimeoutMs + 2000).unref()
  })

  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'cluster stopping: workers finish in-flight requests')
    setTimeout(() => process.exit(1), config.http.shutdownTimeoutMs + 5000).unref()
    await Promise.all([...slots.values()].map((slot) => retire(slot.worker)))
    await metricsServer?.close()
    process.exit(0)
  }
  process.on('SIGTERM', () => { shutdown('SIGTERM').catch(() => process.exit(1)) })
  process.on('SIGINT', () => { shutdown('SIGINT').catch(() => process.exit(1)) })
}

if (cluster.isPrimary) await primary()
