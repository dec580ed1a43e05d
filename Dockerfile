# syntax=docker/dockerfile:1
#
# teleport-discord container image.
#   docker build -t teleport-discord .
#   docker run -v /path/teleport-discord.toml:/etc/teleport-discord.toml:ro \
#     -v /path/identity:/var/lib/teleport/plugins/discord/teleport-identity:ro \
#     -p 8080:8080 teleport-discord
# The build stage runs the same `cargo build --release --locked` as CI.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
ENV CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
# 1. Dependencies only, cached until Cargo.toml/Cargo.lock/build inputs change.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin teleport-discord \
    && rm -rf src
# 2. The crate itself.
COPY src ./src
ARG TELEPORT_DISCORD_GIT_COMMIT=unknown
ENV TELEPORT_DISCORD_GIT_COMMIT=${TELEPORT_DISCORD_GIT_COMMIT}
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin teleport-discord \
    && cp target/release/teleport-discord /teleport-discord

# Distroless: glibc and CA certificates, no shell; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /teleport-discord /usr/local/bin/teleport-discord
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
