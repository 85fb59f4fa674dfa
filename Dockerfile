# Build stage: queries are checked against the committed .sqlx data, so no database is needed here.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked && cp target/release/meilab /usr/local/bin/meilab

# Run stage: the binary carries its migrations, templates and static files.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data meilab && mkdir -p /data && chown meilab /data
COPY --from=build /usr/local/bin/meilab /usr/local/bin/meilab
USER meilab
ENV MEILAB_BIND=0.0.0.0:8080 MEILAB_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["meilab"]
CMD ["serve"]
