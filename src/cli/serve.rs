use std::net::TcpListener;

use anyhow::Context;

use crate::config::Settings;
use crate::db::Database;
use crate::jobs::Worker;
use crate::stimuli::store::ImageStore;
use crate::web::{self, AppState};

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let database = Database::open(&settings).await?;
    let result = serve_until_stopped(&settings, &database).await;
    database.close().await;
    result
}

pub async fn migrate_only(settings: Settings) -> anyhow::Result<()> {
    let database = Database::open(&settings).await?;
    println!("database is up to date");
    database.close().await;
    Ok(())
}

/// Serves until SIGINT / SIGTERM, then drains requests in flight.
pub(super) async fn serve_until_stopped(
    settings: &Settings,
    database: &Database,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&settings.bind).with_context(|| {
        format!(
            "cannot listen on {} (in use? choose another with --bind)",
            settings.bind
        )
    })?;
    let state = AppState::new(
        database.pool.clone(),
        ImageStore::new(settings.data_dir.join("images")),
        settings.participant_key()?,
    )
    .with_public_url(settings.public_url());
    let limiter = web::api::limit::Limits::from_settings(settings)?;
    let server = web::serve_with(listener, state, limiter)?;
    tracing::info!(url = %settings.public_url(), "serving");
    // One job worker runs beside the server; `meilab worker` adds more anywhere.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(database.pool.clone(), settings.data_dir.clone());
    let worker = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let result = server.await.context("server failed");
    let _ = stop.send(());
    let _ = worker.await;
    result
}
