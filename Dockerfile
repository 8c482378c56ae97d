# tokenauth: multi-stage build, small non-root runtime image.
# Not built in this project's CI (no Docker engine there): CI lints it with hadolint and tests
# the runtime contract it relies on (TOKENAUTH_BIND=0.0.0.0, non-root, SIGTERM, healthcheck)
# against the same binary.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so they are cached while only the sources change. Every target the
# manifest names must exist for cargo to load it, hence benches/ and a stub test.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches benches
RUN mkdir -p src tests/api && echo 'fn main() {}' > src/main.rs && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked && rm -rf src
COPY src src
COPY migrations migrations
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/tokenauth

FROM debian:bookworm-slim
# A fixed uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 tokenauth \
    && useradd --system --uid 10001 --gid tokenauth --home-dir /data --shell /usr/sbin/nologin tokenauth \
    && mkdir /data && chown tokenauth:tokenauth /data
COPY --from=build /src/target/release/tokenauth /usr/local/bin/tokenauth
COPY config/tokenauth.toml /etc/tokenauth/tokenauth.example.toml
USER 10001:10001
WORKDIR /data
# The default database, sqlite://tokenauth.db, is relative to WORKDIR: /data/tokenauth.db.
# DL3064 fires on any name containing TOKEN; neither value is a secret.
# hadolint ignore=DL3064
ENV TOKENAUTH_BIND=0.0.0.0:8080 \
    TOKENAUTH_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["tokenauth", "healthcheck"]
# `docker run IMAGE` serves; `docker run IMAGE user add alice --password-stdin` administers.
ENTRYPOINT ["tokenauth"]
CMD ["serve"]
