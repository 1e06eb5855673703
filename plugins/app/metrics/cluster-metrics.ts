import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, type PrometheusContentType, type Registry } from 'prom-client'

/** The IPC message a worker sends to ask for the whole service's metrics, and the primary's answer. */
interface MetricsMessage { type: 'keyward:metrics', id: number, text?: string, error?: string }

const MESSAGE_TYPE = 'keyward:metrics'
const PRIMARY_TIMEOUT_MS = 5000

function isMetricsMessage (message: unknown): message is MetricsMessage {
  return (message as MetricsMessage | null)?.type === MESSAGE_TYPE && (message as MetricsMessage).id !== undefined
}

/** Whether this process is a worker of Keyward's own primary (cluster.ts); PM2's cluster mode has no aggregator to ask. */
export function inKeywardCluster (): boolean {
  return cluster.isWorker && process.env.KEYWARD_CLUSTER_WORKER === '1'
}

/**
 * The whole service's metrics text: this process's registry, or under Keyward's cluster every
 * worker's, added up by the primary (prom-client's aggregator) and asked for over IPC.
 */
export function serviceMetricsText (registry: Registry): () => Promise<string> {
  if (!inKeywardCluster() || typeof process.send !== 'function') return () => registry.metrics()
  // Constructing an aggregator is what installs prom-client's worker-side IPC listener.
  new AggregatorRegistry() // eslint-disable-line no-new
  AggregatorRegistry.setRegistries([registry])
  let nextRequest = 0
  const pending = new Map<number, (answer: MetricsMessage) => void>()
  process.on('message', (message: unknown) => {
    if (!isMetricsMessage(message)) return
    pending.get(message.id)?.(message)
    pending.delete(message.id)
  })
  return () => {
    const id = ++nextRequest
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { pending.delete(id); reject(new Error('the cluster primary did not answer')) }, PRIMARY_TIMEOUT_MS)
      pending.set(id, (answer) => {
        clearTimeout(timer)
        if (answer.text !== undefined) resolve(answer.text)
        else reject(new Error(answer.error ?? 'aggregation failed'))
      })
      process.send?.({ type: MESSAGE_TYPE, id })
    })
  }
}

/** In the primary: answers a worker's request for the whole service's metrics; false when the message is something else. */
export function answerMetricsRequest (aggregator: AggregatorRegistry<PrometheusContentType>, worker: Worker, message: unknown): boolean {
  if (!isMetricsMessage(message)) return false
  aggregator.clusterMetrics().then(
    (text) => worker.send({ type: MESSAGE_TYPE, id: message.id, text }),
    (err: Error) => worker.send({ type: MESSAGE_TYPE, id: message.id, error: err.message }))
  return true
}
