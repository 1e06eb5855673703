import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { configOrExit } from './config.ts'

/** One HTTP process: validated config, the app, listen, and a bounded graceful shutdown. */
async function main () {
  const config = configOrExit()

  let app
  try {
    app = await buildApp(config)
  } catch (err) {
    console.error(`Keyward could not start: ${(err as Error).message}`)
    process.exit(1)
  }

  closeWithGrace({ delay: config.http.shutdownTimeoutMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an uncaught error')
    else app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    await app.close()
  })

  try {
    await app.ready()
    // Start-up work blocks the event loop; under-pressure's first sample would count it and shed
    // the first requests with 503. Take connections only once a clean sample has been seen.
    await new Promise((resolve) => setTimeout(resolve, 1100))
    for (let waited = 0; app.isUnderPressure() && waited < 10_000; waited += 250) await new Promise((resolve) => setTimeout(resolve, 250))
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    app.log.error({ err }, 'could not listen')
    await app.close()
    process.exit(1)
  }
  // Tell a process manager (PM2 wait_ready, the cluster primary) that this process is serving.
  if (typeof process.send === 'function') process.send('ready')
}

await main()
