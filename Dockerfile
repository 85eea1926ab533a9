# The app of docker-compose.yml: examples/service.rs, one HTTP service over PostgreSQL, MySQL, Neo4j and SQLite
# that exports its pools' metrics over OTLP.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --example service \
 && mkdir -p /out \
 && cp target/release/examples/service /out/aquifer-service

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data
COPY --from=build /out/aquifer-service /usr/local/bin/aquifer-service
# All interfaces inside the container; docker-compose.yml publishes the port on 127.0.0.1 only.
ENV SERVICE_ADDR=0.0.0.0:8080 SQLITE_PATH=/data/books.db
EXPOSE 8080
# SIGTERM (docker stop) makes the service finish its requests and close every pool before it exits.
STOPSIGNAL SIGTERM
CMD ["aquifer-service"]
