# syntax=docker/dockerfile:1
# One image for every component: the first argument picks it (see manifests/ and docs/deployment.md).
#   docker build -t ghcr.io/devops-360-online/ml-inference:0.1.0 .
#   docker run --rm ghcr.io/devops-360-online/ml-inference:0.1.0 --help
#   docker run --rm -p 8080:8080 ghcr.io/devops-360-online/ml-inference:0.1.0 all
# The base image is pinned by tag; pin it by digest too in your registry mirror if you can
# (`FROM node:20.20.2-bookworm-slim@sha256:...`). Debian (glibc), not Alpine: node-llama-cpp's
# prebuilt llama.cpp binaries need glibc.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# ---- build: every dependency, compile TypeScript into dist/ ---------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV NODE_ENV=development
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: nothing the compiler needs runs an install script (node-llama-cpp's only
# checks for a prebuilt binary, which comes as an optional dependency anyway).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-assets.mjs ./scripts/
COPY src ./src
COPY console ./console
# tsc, then scripts/copy-assets.mjs puts the SQL and Lua files next to their compiled modules.
RUN npm run build

# ---- production dependencies only (the same install test/k8s/production-install.test.ts runs) --
FROM ${NODE_IMAGE} AS deps
# cpu (default): drop node-llama-cpp's CUDA and Vulkan prebuilt binaries (~600 MB; ML_GPU=cpu).
# gpu: keep them, for ML_GPU=auto|cuda|vulkan on GPU nodes.
ARG LLAMA_BINARIES=cpu
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && if [ "$LLAMA_BINARIES" = "cpu" ]; then rm -rf node_modules/@node-llama-cpp/*-cuda* node_modules/@node-llama-cpp/*-vulkan*; fi

# ---- runtime ----------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    MODEL_CACHE_DIR=/models
WORKDIR /app
# A fixed, unprivileged uid/gid above 10000 (the manifests run as 10001:10001 and check it).
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app \
 && mkdir -p /data /models \
 && chown 10001:10001 /data /models
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
# The code is owned by root and read-only to the app user; only /data, /models (and /tmp) are
# written, which Kubernetes mounts as emptyDir / PVC under a read-only root filesystem.
USER 10001:10001
EXPOSE 8080 8081 8082 8083 8084
ENTRYPOINT ["node", "dist/main.js"]
CMD ["all"]
