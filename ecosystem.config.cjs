// PM2 process file for running Keyward on a VM without containers:
//   npm run build && pm2 start ecosystem.config.cjs && pm2 save
// PM2 is a devDependency, so `npm ci` brings the version `npm run pm2` is tested with; a production
// install (`npm ci --omit=dev`, the Docker image) has none: install it with `npm install -g pm2`.
// Zero-downtime code reload of the API: `pm2 reload keyward-api`.
// Secrets (JWT_SECRET, KEY_HASH_SECRET, ...) and MONGODB_URI/REDIS_URL come from the environment
// PM2 is started in (or add them under `env`); nothing secret belongs in this file.
// `.cjs` because package.json has "type": "module" and PM2 loads this file with require().
// On stop PM2 sends SIGINT; both processes shut down gracefully on SIGINT as on SIGTERM.

module.exports = {
  apps: [
    {
      name: 'keyward-api',
      script: 'dist/server.js',
      // Node's cluster module via PM2: one HTTP process per core sharing the port. Do not use
      // dist/cluster.js here, PM2 is the primary.
      exec_mode: 'cluster',
      instances: 'max',
      // Restart a process whose RSS grows past 1 GB (leak guard; the API's steady state is far lower).
      max_memory_restart: '1G',
      // A process counts as online only after it sends process.send('ready') once listening,
      // so `pm2 reload` replaces processes one by one without refusing connections.
      wait_ready: true,
      // How long to wait for that 'ready' (MongoDB selection timeout and start-up included).
      listen_timeout: 15000,
      // Wait up to 15 s after the stop signal before SIGKILL: above the app's own graceful
      // shutdown bound (SHUTDOWN_TIMEOUT_MS, 10 s), so in-flight requests can finish.
      kill_timeout: 15000,
      env: {
        NODE_ENV: 'production',
        // Keyward listens on loopback unless HOST is set: every interface here, for a load balancer
        // on another machine. Start PM2 with HOST=127.0.0.1 when the proxy runs on this one.
        HOST: process.env.HOST ?? '0.0.0.0'
      }
    },
    {
      name: 'keyward-worker',
      script: 'dist/worker.js',
      exec_mode: 'fork',
      // One jobs process is enough; more may run (each scheduled job is processed once).
      instances: 1,
      // Online only once the BullMQ workers are started and it sends 'ready'.
      wait_ready: true,
      // PM2's default wait for 'ready' is 3 s; start-up connects to MongoDB and Redis first.
      listen_timeout: 15000,
      // The worker lets running jobs finish on a stop signal, bounded by SHUTDOWN_TIMEOUT_MS
      // + 20 s (30 s by default); 35 s lets that bound fire before PM2's SIGKILL.
      kill_timeout: 35000,
      env: {
        NODE_ENV: 'production'
      }
    }
  ]
}
