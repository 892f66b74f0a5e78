# Builds the `roost` binary with the web UI embedded.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin roost

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin roost \
 && mkdir -p /var/lib/roost && chown roost /var/lib/roost
COPY --from=build /src/target/release/roost /usr/local/bin/roost
USER roost
EXPOSE 8080
ENTRYPOINT ["roost"]
CMD ["serve"]
