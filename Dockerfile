# syntax=docker/dockerfile:1.7
# Tollgate container image.
#
#   opa      the opa binary: compiles Rego to WASM (policy build and test in `build`; in `runtime`, the fallback of
#            live rebuilds and the capabilities of the build)
#   regoc    tollgate-regoc (tools/regoc): OPA's compiler, same version, as a process that stays running; the runtime
#            builds Rego mounted from a ConfigMap with it, without an `opa build` process per edit
#   build    every dependency (dev included): typecheck, the Rego unit tests, and the policy bundle built from the
#            sources (the runtime serves it when no other policy is configured)
#   deps     production dependencies only
#   runtime  Node 24, user node (uid 1000), no dev dependency; writes only to /var/lib/tollgate (data: audit log,
#            generated state) and /tmp, so it runs with a read-only root filesystem. TOLLGATE_PROFILE=production:
#            the gateway refuses to start until an identity (SPIFFE trust domain, OIDC or Kubernetes issuer) is
#            configured, and never turns the self-keyed dev issuer on (`npm start` outside the image keeps it).
#            NODE_OPTIONS caps V8's young generation at 4 MB semi-spaces (V8 sizes them up to 3 x 32 MB on a large
#            node, ~120 MB of RSS under load, for no throughput: bench/NOTES.md, memory); MALLOC_ARENA_MAX=2 keeps
#            glibc from giving each thread (libuv pool, V8 helpers, the OTLP export worker) its own malloc arena (up to
#            8 per core, ~20 MB of RSS on 2 cores under load, more on a large node); bin/tollgate.mjs sets V8's
#            old-generation growth for `serve` itself. The compile cache (compiled code, type-stripped sources) goes
#            to /tmp, the container's own writable volume.
#
# docker build -t tollgate:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#   --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
# docker run --read-only -p 8080:8080 -v $PWD/myconfig:/etc/tollgate/routes:ro tollgate:0.1.0
#
# Where no Docker daemon runs, test/e2e/image.test.ts builds these same stages from this file (its COPY and RUN
# lines, the .dockerignore'd context) and starts the entrypoint as uid 1000 on a read-only root (DEVELOPERS.md).
# Keep RUN lines relative to WORKDIR and free of cache cleaning (the npm cache is a build cache mount).
ARG NODE_IMAGE=node:24-bookworm-slim
ARG OPA_IMAGE=openpolicyagent/opa:1.22.3-static
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${OPA_IMAGE} AS opa

FROM ${GO_IMAGE} AS regoc
WORKDIR /src
COPY tools/regoc ./
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -trimpath -o tollgate-regoc .

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY --from=opa /opa /usr/local/bin/opa
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY policies ./policies
RUN npx tsc --noEmit -p tsconfig.json
RUN node bin/tollgate.mjs policy test --dir policies
RUN node bin/tollgate.mjs policy build --dir policies --output out/bundles/tollgate.tar.gz
# An empty directory owned by node becomes the data volume's mount point (a fresh volume takes its owner).
RUN mkdir -p out/data

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional too: optional peers of runtime packages (express of @a2a-js/sdk, the tests' agent server) are in the
# lockfile as devOptional and would otherwise be installed; no runtime package needs an optional dependency.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --omit=optional --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Gateway for AI agents: MCP federation, A2A and model traffic behind SPIFFE identity, Rego policy, limits and a tamper-evident audit log" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/tollgate/tollgate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
ENV NODE_ENV=production \
    TOLLGATE_PROFILE=production \
    TOLLGATE_CONFIG=/etc/tollgate/routes \
    HOST=0.0.0.0 \
    PORT=8080 \
    NODE_OPTIONS=--max-semi-space-size=4 \
    MALLOC_ARENA_MAX=2 \
    TOLLGATE_COMPILE_CACHE=/tmp/tollgate-compile-cache \
    PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
COPY --from=opa /opa /usr/local/bin/opa
COPY --from=regoc /src/tollgate-regoc /usr/local/bin/tollgate-regoc
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
COPY --from=build /app/out/bundles ./bundles
COPY docker/healthcheck.mjs ./docker/healthcheck.mjs
# The default config: a production skeleton without identity, so an image started without its own config says
# what to configure instead of serving. The Helm chart (and `docker run -v`) mount a real one over it.
COPY docker/config /etc/tollgate/routes
COPY --from=build --chown=node:node /app/out/data /var/lib/tollgate
USER node
VOLUME ["/var/lib/tollgate", "/tmp"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["node", "docker/healthcheck.mjs"]
ENTRYPOINT ["node", "bin/tollgate.mjs"]
CMD ["serve", "--config", "/etc/tollgate/routes"]
