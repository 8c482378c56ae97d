# syntax=docker/dockerfile:1
# tokenauth: multi-stage build, small non-root runtime image.
#
# The base images are build arguments whose defaults are the public images, so the same file
# builds at a user's site from the registry (`docker build .`) and, where no registry is
# reachable, from local stand-ins (scripts/base-images.sh makes them; scripts/image-test.sh
# builds this file with podman from them and tests the image).
#
# Runtime: distroless cc (glibc, libgcc_s, CA bundle, tzdata; no shell, no package manager),
# as uid/gid 65532 (distroless's `nonroot`). Nothing there needs a RUN: /data is made in the
# build stage and copied over with its owner.
ARG BUILD_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
# Dependencies first, so they are cached while only the sources change. Every target the
# manifest names must exist for cargo to load it: benches/ is copied, and each [[test]]'s
# `path = "tests/..."` gets an empty stub. The registry is a cache mount (kept between builds
# by BuildKit and buildah), so a changed Cargo.lock downloads only what is new.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    mkdir -p src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && sed -n 's/^path = "\(tests\/[^"]*\)"$/\1/p' Cargo.toml | while read -r f; do \
         mkdir -p "$(dirname "$f")" && touch "$f"; done \
    && cargo build --release --locked && rm -rf src tests
COPY src src
COPY migrations migrations
# The commit the binary reports (build.rs reads it; .git is not in the build context).
# Declared here, not above, so a new commit does not invalidate the dependency layer.
# hadolint ignore=DL3064
ARG TOKENAUTH_BUILD_COMMIT=
# why touch every source: a cached target dir must never look newer than the sources.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    if [ -z "$TOKENAUTH_BUILD_COMMIT" ]; then unset TOKENAUTH_BUILD_COMMIT; fi \
    && find src migrations -exec touch {} + \
    && cargo build --release --locked \
    && strip target/release/tokenauth \
    && install -D -m 0755 target/release/tokenauth /out/usr/local/bin/tokenauth \
    && install -d -m 0750 -o 65532 -g 65532 /out/data

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/usr/local/bin/tokenauth /usr/local/bin/tokenauth
COPY --from=build --chown=65532:65532 /out/data /data
COPY config/tokenauth.toml /etc/tokenauth/tokenauth.example.toml
# distroless's `nonroot`; a fixed uid/gid so volume ownership is predictable across rebuilds.
USER 65532:65532
WORKDIR /data
# The default database, sqlite://tokenauth.db, is relative to WORKDIR: /data/tokenauth.db.
# DL3064 fires on any name containing TOKEN; neither value is a secret.
# hadolint ignore=DL3064
ENV TOKENAUTH_BIND=0.0.0.0:8080 \
    TOKENAUTH_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
# Exec form: the binary asks its own /healthz over loopback; no shell, no curl needed.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["tokenauth", "healthcheck"]
# `docker run IMAGE` serves; `docker run IMAGE user add alice --password-stdin` administers.
ENTRYPOINT ["tokenauth"]
CMD ["serve"]
