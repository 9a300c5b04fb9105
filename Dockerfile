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

# The image holds no CA bundle: an https/wss upstream needs its tls.ca_file, or a
# bundle mounted and named by SSL_CERT_FILE. No /etc/passwd (USER is numeric), no /tmp.
FROM scratch
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/rpcgate /rpcgate
USER 65532:65532
EXPOSE 8545 8580
ENTRYPOINT ["/rpcgate"]
