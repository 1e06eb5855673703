# syntax=docker/dockerfile:1
#
# Keyward API image.
#   docker build -t keyward .
#   docker run -p 8080:8080 -e JWT_SECRET=... -e KEY_HASH_SECRET=... -v keyward-data:/app/data keyward
# The same image runs the cluster entry (node dist/cluster.js) and the jobs worker
# (node dist/worker.js); see docker-compose.yml.

ARG NODE_IMAGE=node:24-slim

# ---- build: full install (dev deps included) and TypeScript compile -------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# ---- deps: production dependencies only ------------------------------------------------
# No pm2 or pino-pretty here: they are devDependencies (the image runs node itself, logs JSON).
# Optional deps are kept on purpose: libsql ships its native binary as an optional
# platform package (@libsql/linux-x64-gnu, ...). No install scripts are needed for it.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime

# tini as PID 1: forwards signals (graceful shutdown on SIGTERM) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# HOST: every interface of the container (Keyward's own default is loopback only).
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    DATA_DIR=/app/data

WORKDIR /app

# Application files stay owned by root (read-only for the runtime user);
# only the data directory is writable by `node`.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p /app/data && chown node:node /app/data

USER node
VOLUME /app/data
EXPOSE 8080

# No curl in the slim image: use node's global fetch. Non-2xx (e.g. 503) or no answer = unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/api/health', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/server.js"]
