# syntax=docker/dockerfile:1
#
# tiktools-broker: a two-stage image.
#   build   — installs every dependency and compiles src/ to dist/ (server + browser client)
#   runtime — production dependencies only, the compiled dist/ and openapi.yaml, run as `node`
#
#   docker build -t tiktools-broker .
#   docker run --rm -p 8080:8080 --env-file .env tiktools-broker
#
# test/deploy/production-install.test.ts reads this file and repeats the runtime
# stage outside Docker (same files, same `npm ci`, same CMD): keep them in step.
#
# Base image: node:20-bookworm-slim rather than node:20-alpine.
#   - glibc (Debian 12), like the machines the test suite runs on: no musl
#     surprises (DNS resolution, locale/ICU, prebuilt native add-ons of a
#     future dependency, malloc behaviour under load);
#   - the same Node 20 line the project is tested with (package.json: node >=20.6);
#   - "slim" drops compilers, headers and docs: a few tens of MB more than
#     alpine, a fraction of the full node:20 image.
# For reproducible releases, pin the digest: --build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:...
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------- build stage
FROM ${NODE_IMAGE} AS build
WORKDIR /app

# Dependencies first, so a source change does not reinstall them.
# --ignore-scripts: the build only needs tsc; no dependency must run code at install.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --ignore-scripts --no-audit --no-fund

COPY tsconfig.json tsconfig.client.json ./
COPY src ./src
RUN npm run build

# -------------------------------------------------------------- runtime stage
FROM ${NODE_IMAGE} AS runtime

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tiktools-broker" \
      org.opencontainers.image.description="Self-hosted token broker for the tik.tools TikTok LIVE API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/node:20-bookworm-slim"

ENV NODE_ENV=production
# The V8 flags of `npm start`: a 32 MB young-generation semi-space (V8's default here is 16 MB).
# Under sustained load a token request allocates ~3–4 KB that dies young; with the default,
# about one broker process in ten was seen to keep promoting that garbage and run ~1.5x slower
# (bench/README.md). Costs up to ~32 MB more RSS under load; override with -e NODE_OPTIONS=.
ENV NODE_OPTIONS="--max-semi-space-size=32"
WORKDIR /app

# Production dependencies only, exactly as locked; no install scripts. The npm
# cache lives in a BuildKit cache mount, not in the image. Files stay owned by
# root: the `node` user can read the app but not change it.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The server reads openapi.yaml from the folder above dist/
# (src/routes/docs.ts: new URL('../../openapi.yaml', import.meta.url) from dist/routes/).
COPY --from=build /app/dist ./dist
COPY openapi.yaml ./

USER node
EXPOSE 8080

# No curl in the slim image: node itself asks /healthz on the port the server uses.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Exec form: node is PID 1 and gets SIGTERM itself (no npm or shell in front);
# the server drains with close-with-grace (at most 2 x UPSTREAM_TIMEOUT_MS + 7 s, 17 s by
# default: give `docker stop` -t 20).
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
