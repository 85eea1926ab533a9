# The app of docker-compose.yml: Aquifer's examples, exporting their pools' metrics over OTLP.
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --examples --all-features \
 && mkdir -p /out \
 && for e in postgres mysql neo4j sqlite; do cp "target/release/examples/$e" /out/; done

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
COPY deploy/run-examples.sh /usr/local/bin/run-examples
CMD ["run-examples"]
