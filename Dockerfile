# The ferry binary and the example transforms, for docker-compose.yml.
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release -p ferry \
 && cargo build --release --target wasm32-wasip2 --manifest-path guest-examples/Cargo.toml

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
COPY --from=build /src/guest-examples/target/wasm32-wasip2/release/*.wasm /opt/ferry/guest-examples/target/wasm32-wasip2/release/
COPY pipelines /opt/ferry/pipelines
WORKDIR /opt/ferry
ENTRYPOINT ["ferry"]
CMD ["run", "pipelines/sensors-to-mongo.toml"]
