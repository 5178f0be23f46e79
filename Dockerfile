# The stayup web service as a container: the very bundle the local runtime forks and the EC2
# instances run (src/web-service/bundle.ts), on Node.js 20, as a non-root user.
#   docker build -t stayup-web .
#   docker run -p 8000:8000 -e STAYUP_REDIS_URL=redis://host.docker.internal:6379 stayup-web
# The base image is pinned to an exact version (the Node.js the tests run on); CI may pin it
# further by digest when it pushes to ECR.

# ── build: bundle the service and its dependencies into one file ─────────────────────────────
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin/bundle-web-service.mjs bin/
COPY src/ src/
RUN node bin/bundle-web-service.mjs /out

# ── runtime: Node.js and the bundle, nothing else ─────────────────────────────────────────────
FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
COPY --from=build --chown=root:root /out/web-service.mjs /out/web-service.mjs.map ./
# The image's unprivileged "node" user (uid 1000); the files stay root-owned and read-only to it.
USER node
EXPOSE 8000
# Same probe as the ECS task definition's container health check (src/aws/ecs/container.ts).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=2 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8000/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains in-flight requests (src/web-service/main.ts); node runs as PID 1 and handles it.
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "/app/web-service.mjs"]
