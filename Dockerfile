# Tollgate container image: Node 24, production dependencies only, non-root, config in /app/routes by default
# (the Helm chart mounts its own). Build: docker build -t tollgate .
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY routes ./routes
COPY policies ./policies
# The built policy bundle: the image has no opa, so routes/gateway.yaml serves this (see policies/README.md).
COPY bundles ./bundles
# Generated state (dev keys, audit segments) lives in the data dir; it must be writable by the runtime user.
RUN mkdir -p /app/.tollgate && chown node:node /app/.tollgate
USER node
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/tollgate.mjs"]
CMD ["serve", "--config", "/app/routes"]
