//! Settings: defaults, then an optional TOML file, then `MEILAB_*` variables and `DATABASE_URL`,
//! then command-line flags.

use std::path::{Path, PathBuf};

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};

use crate::study::recruit::ParticipantKey;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address the HTTP server listens on (default `127.0.0.1:8080`).
    pub bind: String,
    /// Images, weights, caches and the private database (default `./meilab-data`).
    pub data_dir: PathBuf,
    /// An existing PostgreSQL database; without it a private cluster runs under `data_dir`.
    pub database_url: Option<SecretString>,
    /// Base URL printed in links (default `http://<bind>`).
    pub public_url: Option<String>,
    /// Database connections per process (default 4 per CPU core, 8 to 32): more only queue in
    /// PostgreSQL, whose backends share the same cores.
    pub db_pool_size: u32,
    /// New participant sessions one client address may start per minute, all at once if it likes
    /// (default [`SESSIONS_PER_IP_PER_MINUTE`]; 0 = no limit). `meilab loadtest` from one
    /// machine needs at least its participant count.
    pub sessions_per_ip_per_minute: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client, as addresses or networks
    /// (`10.0.0.0/8`, `::1`); default none: the client is the peer of the connection. The login limit
    /// and the per-address session limit both count clients this way.
    pub trusted_proxies: Vec<String>,
    /// Directories whose files the dashboard may read on the server (weights to import, image folders);
    /// default: the data directory only. The command line is not bound by them.
    pub import_roots: Option<Vec<PathBuf>>,
    /// Largest zip upload of the dashboard, in MiB (default 2048); it is streamed to disk, never held in memory.
    pub max_upload_mib: u64,
    /// `text` (default) or `json` logs.
    pub log_format: String,
    /// Keys the pseudonyms of participants' external ids; default: generated once into `data_dir/secret.key`.
    pub secret: Option<SecretString>,
}

/// New sessions per client address per minute, all of them available at once. 120 lets a whole class
/// or lab group behind one NAT start in the same minute (larger groups are spread over the following
/// minutes by `Retry-After`, which the participant page honours), while a flood from one address gets
/// 120 sessions a minute instead of every unit's quota: 1,100 parallel starts from one address create
/// 120 sessions. `meilab bench load` turns the limit off for its single-address participants;
/// `meilab loadtest` needs the server's limit raised to its participant count.
pub const SESSIONS_PER_IP_PER_MINUTE: u32 = 120;

fn default_pool_size() -> i64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i64;
    (4 * cores).clamp(8, 32)
}

impl Settings {
    /// `file`: an explicit config file (must exist); otherwise `meilab.toml` is read if present.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder()
            .set_default("bind", "127.0.0.1:8080")?
            .set_default("data_dir", "./meilab-data")?
            .set_default("db_pool_size", default_pool_size())?
            .set_default("sessions_per_ip_per_minute", SESSIONS_PER_IP_PER_MINUTE)?
            .set_default("trusted_proxies", Vec::<String>::new())?
            .set_default("max_upload_mib", 2048)?
            .set_default("log_format", "text")?;
        builder = match file {
            Some(path) => builder.add_source(config::File::from(path).required(true)),
            None => builder.add_source(config::File::with_name("meilab.toml").required(false)),
        };
        builder = builder
            .add_source(
                config::Environment::with_prefix("MEILAB")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("trusted_proxies")
                    .with_list_parse_key("import_roots"),
            )
            .set_override_option("database_url", std::env::var("DATABASE_URL").ok())?;
        builder
            .build()
            .and_then(|c| c.try_deserialize())
            .context("invalid configuration")
    }

    /// The configured secret, or the one kept in the data directory (created on first use, owner-only).
    pub fn participant_key(&self) -> anyhow::Result<ParticipantKey> {
        if let Some(secret) = &self.secret {
            return Ok(ParticipantKey::new(secret.expose_secret().as_bytes()));
        }
        let path = self.data_dir.join("secret.key");
        if !path.exists() {
            std::fs::create_dir_all(&self.data_dir)
                .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
            let secret = hex::encode(rand::random::<[u8; 32]>());
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
        }
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(ParticipantKey::new(secret.trim().as_bytes()))
    }

    /// The directories the dashboard may read files from: the configured ones, else the data directory.
    pub fn import_roots(&self) -> Vec<PathBuf> {
        match &self.import_roots {
            Some(roots) => roots
                .iter()
                .filter(|r| !r.as_os_str().is_empty())
                .cloned()
                .collect(),
            None => vec![self.data_dir.clone()],
        }
    }

    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.bind),
        }
    }
}
