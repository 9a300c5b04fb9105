# rpcgate container image (the k8s/ manifests expect it as rpcgate:0.1.0).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rpcgate --bin rpcgate

FROM debian:bookworm-slim
COPY --from=build /src/target/release/rpcgate /usr/local/bin/rpcgate
USER 65532:65532
EXPOSE 8545
ENTRYPOINT ["/usr/local/bin/rpcgate"]
