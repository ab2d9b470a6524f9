# The ferry binary and the example transforms, for docker-compose.yml.
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --release -p ferry \
 && cargo build --release --target wasm32-wasip2 --manifest-path guest-examples/Cargo.toml

FROM debian:bookworm-slim
# curl answers the healthcheck (docker-compose.yml asks /ready).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ferry /usr/local/bin/ferry
COPY --from=build /src/guest-examples/target/wasm32-wasip2/release/*.wasm /opt/ferry/guest-examples/target/wasm32-wasip2/release/
COPY pipelines /opt/ferry/pipelines
WORKDIR /opt/ferry
# In a container the admin endpoint must be reachable from outside it.
ENV FERRY_ADMIN=0.0.0.0:8642
EXPOSE 8642
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD curl -fsS http://127.0.0.1:8642/ready || exit 1
ENTRYPOINT ["ferry"]
CMD ["run", "pipelines/sensors-to-mongo.toml"]
