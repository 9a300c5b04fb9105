# rpcgate container image: a static (musl) binary in an empty image. No shell, no
# package manager, no libc: the binary only, run as a numeric non-root user.
# The k8s/ manifests expect it as rpcgate:0.1.0 (the crate's version); pin your
# registry's digest with an overlay's `images:`. k8s/check reads this file for these rules.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rpcgate --bin rpcgate --target x86_64-unknown-linux-musl

# rpcgate makes no TLS connections (backends and Redis are cluster-internal), so the
# image needs no CA bundle, no /etc/passwd (USER is numeric) and no /tmp.
FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/rpcgate /rpcgate
USER 65532:65532
EXPOSE 8545 8580
ENTRYPOINT ["/rpcgate"]
