# syntax=docker/dockerfile:1
#
# teleport-discord container image.
#   docker build -t teleport-discord .
#   docker run -v /path/teleport-discord.toml:/etc/teleport-discord.toml:ro \
#     -v /path/identity:/var/lib/teleport/plugins/discord/teleport-identity:ro \
#     -p 8080:8080 teleport-discord
# The build stage builds the production binary: `--no-default-features`
# leaves out the `demo` feature, so the image holds no emulator code, no gRPC
# server stubs and no test PKI. CI replays this stage outside Docker
# (.ci/dockerfile-build.sh).

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
ENV CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
# 1. Dependencies only, cached until the manifests, the lock file or the
#    protos change. Every target the manifests name gets a stub.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY testkit/Cargo.toml ./testkit/
RUN mkdir -p src benches tests/it testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs testkit/src/lib.rs \
    && for b in delivery reconcile pipeline; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && echo 'fn main() {}' > tests/it/main.rs \
    && cargo build --release --locked --no-default-features -p teleport-discord --bin teleport-discord \
    && rm -rf src
# 2. The crate itself.
COPY src ./src
ARG TELEPORT_DISCORD_GIT_COMMIT=unknown
ENV TELEPORT_DISCORD_GIT_COMMIT=${TELEPORT_DISCORD_GIT_COMMIT}
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features -p teleport-discord --bin teleport-discord

# Distroless: glibc and CA certificates, no shell; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/teleport-discord /usr/local/bin/teleport-discord
# Listen on every interface inside the container; the config, identity and
# tokens are mounted as files (the Helm chart's paths work:
# /var/lib/teleport/plugins/discord/...).
ENV TELEPORT_DISCORD_CONFIG=/etc/teleport-discord.toml \
    TELEPORT_DISCORD_LISTEN_ADDR=0.0.0.0:8080
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/teleport-discord", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/teleport-discord"]
CMD ["start"]
