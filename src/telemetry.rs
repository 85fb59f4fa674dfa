use tracing_subscriber::{fmt, EnvFilter};

/// Structured logs on stderr; `RUST_LOG` filters, `MEILAB_LOG_FORMAT=json` for machines.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests, repeated commands) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
