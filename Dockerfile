# Cairn node image, built from source in Docker (needs a registry for the base images).
#
#   docker build -t cairn-node:local .
#
# Without a registry, `cairn-testnet image` builds an equivalent image offline: the binaries
# built on the host, FROM scratch, with exactly the shared libraries they load.
#
# The image runs as root (uid 0): the generated docker-compose.yml bind-mounts each node's home
# (keys written 0600 by the host user) read-only at /cairn and its RocksDB data volume at
# /cairn/data.

FROM rust:1-bookworm AS build
# RocksDB's bindings are generated with bindgen (libclang) and its C++ is built with clang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cairn-node --bin cairn \
 && install -D -m 0755 target/release/cairn-node /out/cairn-node \
 && install -D -m 0755 target/release/cairn /out/cairn

FROM debian:bookworm-slim
COPY --from=build /out/cairn-node /out/cairn /usr/local/bin/
ENV CAIRN_HOME=/cairn \
    CAIRN_P2P_LISTEN=/ip4/0.0.0.0/tcp/26656 \
    CAIRN_RPC_LISTEN=0.0.0.0:8545
USER 0:0
WORKDIR /cairn
EXPOSE 26656 8545
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/cairn-node", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/cairn-node"]
CMD ["run", "--home", "/cairn"]
