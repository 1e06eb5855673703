import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { configOrExit, exitIfConfigError } from './config.ts'
import { listenFailure, listenScope } from './plugins/app/listen.ts'

/** One HTTP process: validated config, the app, listen, and a bounded graceful shutdown. */
async function main () {
  const config = configOrExit()

  let app
  try {
    app = await buildApp(config)
  } catch (err) {
    exitIfConfigError(err)
    console.error(`Keyward could not start: ${(err as Error).message}`)
    process.exit(1)
  }

  closeWithGrace({ delay: config.http.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an uncaught error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
  })

  const fail = async (line: string) => {
    console.error(`Keyward could not start: ${line}`)
    await app.close().catch(() => {})
    process.exit(1)
  }
  try {
    await app.ready()
  } catch (err) {
    exitIfConfigError(err)
    return fail((err as Error).message)
  }
  // Start-up work blocks the event loop; under-pressure's first sample would count it and shed
  // the first requests with 503. Take connections only once a clean sample has been seen.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  for (let waited = 0; app.isUnderPressure() && waited < 10_000; waited += 250) await new Promise((resolve) => setTimeout(resolve, 250))
  const scope = listenScope(config.host)
  try {
    await app.listen({ port: config.port, host: config.host, listenTextResolver: (address) => `Keyward listening at ${address} (${scope})` })
  } catch (err) {
    return fail(listenFailure(err, { host: config.host, port: config.port, hostVariable: 'HOST', portVariable: 'PORT' }))
  }
  // Tell a process manager (PM2 wait_ready, the cluster primary) that this process is serving.
  if (typeof process.send === 'function') process.send('ready')
}

await main()
