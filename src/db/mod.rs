//! PostgreSQL access: the pool, embedded migrations, a private cluster when no `DATABASE_URL` is set,
//! and one file of queries per aggregate.

pub mod activations;
pub mod admins;
pub mod analysis_data;
pub mod cluster;
pub mod dashboard;
pub mod image_sets;
pub mod images;
pub mod jobs;
pub mod judgments;
pub mod response_export;
pub mod responses;
pub mod sessions;
pub mod studies;
pub mod trials;

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use crate::config::Settings;

/// The database of a process: `DATABASE_URL`, or the private cluster under the data directory.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<cluster::PrivateCluster>,
}

impl Database {
    /// Connects (starting the private cluster if needed) and applies the migrations.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let (url, cluster) = match &settings.database_url {
            Some(url) => (url.expose_secret().to_string(), None),
            None => {
                let root = settings.data_dir.join("postgres");
                let cluster =
                    tokio::task::spawn_blocking(move || cluster::PrivateCluster::start(&root))
                        .await??;
                create_database(&cluster.url("postgres"), "meilab").await?;
                (cluster.url("meilab"), Some(cluster))
            }
        };
        let pool = connect(&url, settings.db_pool_size).await?;
        migrate(&pool).await?;
        Ok(Self { pool, cluster })
    }

    /// Closes the pool and stops the private cluster if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
        }
    }
}

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// A pool with bounded size and short acquire timeouts, so a database outage turns into 503s, not hangs.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("database migration failed")
}

/// Creates `name` on the server of `admin_url` unless it exists.
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .context("cannot connect to PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
    }
    Ok(())
}
