# syntax=docker/dockerfile:1
# Multi-stage build: the builder runs the same set-up and build steps as
# scripts/run and CI (scripts/setup.sh, then its `build_release`);
# the runtime is a slim Debian with only the binary and the site assets.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
# Tools first (cached while only sources change).
COPY scripts/setup.sh scripts/setup.sh
COPY end2end/package.json end2end/package-lock.json end2end/
RUN bash -c 'source scripts/setup.sh && ensure_build_tools'
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN bash -c 'source scripts/setup.sh && build_release' \
 && cp target/release/chat /chat

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chat \
 && useradd --system --uid 10001 --gid chat --home-dir /app --shell /usr/sbin/nologin chat \
 && mkdir -p /app/data && chown chat:chat /app/data
WORKDIR /app
COPY --from=builder /chat /app/chat
COPY --from=builder /src/target/site /app/site
ENV PORT=8080 \
    LEPTOS_SITE_ROOT=/app/site \
    DATABASE_URL=sqlite://data/chat.db \
    LOG_FORMAT=json
USER chat
EXPOSE 8080
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=4s --start-period=20s --retries=3 CMD ["/app/chat", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/chat"]
