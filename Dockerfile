# ember images.
#
# `docker compose up` builds the `runtime` target from source (multi-stage). Machines
# without a registry build tests/docker/Dockerfile.local instead (host-built binaries
# FROM scratch; see tests/docker/run.sh).

# ---- build from source ----------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins -p ember-control-plane -p ember-data-node -p emberctl \
 && mkdir -p /out \
 && cp target/release/ember-control-plane target/release/ember-data-node target/release/emberctl /out/

# ---- small runtime image ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /data ember \
 && mkdir -p /data && chown ember:ember /data
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /data
EXPOSE 7379 6379 16379
VOLUME ["/data"]
