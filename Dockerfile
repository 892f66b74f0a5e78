# Builds the `roost` binary with the web UI embedded.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin roost

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/roost /usr/local/bin/roost
ENTRYPOINT ["roost"]
CMD ["serve"]
