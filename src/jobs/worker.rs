//! A worker: claims jobs, runs them with a progress record flushed to the job row every half second
//! (which also carries cancellation back), and records the outcome. Run by `meilab worker` or
//! inside `meilab serve`; several workers on several machines share one queue.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use super::JobResult;
use crate::db;
use crate::progress::{Cancelled, Counters};
use crate::states::{JobKind, JobStatus};
use crate::stimuli::build::BuildSpec;
use crate::stimuli::image_set::{self, ImagesJob};
use crate::stimuli::store::ImageStore;

/// A running job whose heartbeat is older than this is taken over by another worker.
pub const STALE_SECS: f64 = 60.0;
const FLUSH: Duration = Duration::from_millis(500);
const IDLE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Worker {
    pub pool: PgPool,
    pub data_dir: PathBuf,
    pub store: ImageStore,
    pub name: String,
}

impl Worker {
    pub fn new(pool: PgPool, data_dir: PathBuf) -> Worker {
        let store = ImageStore::new(data_dir.join("images"));
        let name = format!(
            "{}:{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into()),
            std::process::id()
        );
        Worker {
            pool,
            data_dir,
            store,
            name,
        }
    }

    /// Runs jobs until `shutdown` completes; a job in progress at shutdown is left to its heartbeat
    /// expiring, so another worker resumes it (its finished batches are kept).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let step = async {
                match self.run_one().await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(IDLE).await,
                    Err(error) => {
                        tracing::warn!(%error, "job queue unavailable");
                        tokio::time::sleep(IDLE * 5).await;
                    }
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = step => {}
            }
        }
    }

    /// Claims and runs one job; false when the queue is empty.
    pub async fn run_one(&self) -> anyhow::Result<bool> {
        let job = {
            let mut conn = self.pool.acquire().await?;
            db::jobs::claim(&mut conn, &self.name, STALE_SECS).await?
        };
        let Some(job) = job else { return Ok(false) };
        tracing::info!(job = job.id, kind = %job.kind, "job started");
        let counters = Arc::new(Counters::default());
        let flusher = Flusher(tokio::spawn(flush(
            self.pool.clone(),
            job.id,
            counters.clone(),
        )));
        let outcome = self.execute(job.kind, job.payload, &counters).await;
        drop(flusher);
        let mut conn = self.pool.acquire().await?;
        let (phase, done, total) = snapshot(&counters);
        db::jobs::heartbeat(&mut conn, job.id, &phase, done, total).await?;
        match outcome {
            Ok(result) => {
                let result = result.to_json()?;
                db::jobs::finish(&mut conn, job.id, JobStatus::Done, Some(&result), None).await?;
                tracing::info!(job = job.id, "job done");
            }
            Err(error) if error.downcast_ref::<Cancelled>().is_some() => {
                db::jobs::finish(&mut conn, job.id, JobStatus::Cancelled, None, None).await?;
                tracing::info!(job = job.id, "job cancelled");
            }
            Err(error) => {
                let message = format!("{error:#}");
                db::jobs::finish(&mut conn, job.id, JobStatus::Failed, None, Some(&message))
                    .await?;
                tracing::warn!(job = job.id, error = %message, "job failed");
            }
        }
        Ok(true)
    }

    async fn execute(
        &self,
        kind: JobKind,
        payload: Value,
        counters: &Counters,
    ) -> anyhow::Result<JobResult> {
        match kind {
            JobKind::Build => {
                let spec: BuildSpec = serde_json::from_value(payload)?;
                let summary = crate::stimuli::build::run(
                    &self.pool,
                    &self.data_dir,
                    &self.store,
                    &spec,
                    counters,
                )
                .await?;
                Ok(JobResult::Build(summary))
            }
            JobKind::Images => {
                let job: ImagesJob = serde_json::from_value(payload)?;
                let summary = image_set::run_job(&self.pool, &self.store, &job, counters).await?;
                Ok(JobResult::Images(summary))
            }
            JobKind::Score => {
                let job: ScoreJob = serde_json::from_value(payload)?;
                let mut options = crate::observer::ScoreOptions::new(&self.data_dir);
                options.rule = job.rule.parse()?;
                options.metric = job.net;
                options.layers = job.layers;
                let summary = crate::observer::score_study(
                    &self.pool,
                    &self.store,
                    job.study_id,
                    &options,
                    counters,
                )
                .await?;
                Ok(JobResult::Score(summary))
            }
            JobKind::Weights => {
                let dir = self.data_dir.join("weights");
                let fetched = tokio::task::spawn_blocking(move || {
                    crate::vision::fetch::fetch(&dir, "python3")
                })
                .await??;
                let sets: Vec<String> = fetched.iter().map(|f| f.set.name()).collect();
                Ok(JobResult::Weights(sets))
            }
        }
    }
}

fn snapshot(c: &Counters) -> (String, i64, i64) {
    (
        c.phase.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        c.done.load(Ordering::Relaxed) as i64,
        c.total.load(Ordering::Relaxed) as i64,
    )
}

/// Stops the progress flusher however the job ends, including when its future is dropped at
/// shutdown (the heartbeat then expires and another worker resumes the job).
struct Flusher(tokio::task::JoinHandle<()>);

impl Drop for Flusher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn flush(pool: PgPool, id: i64, counters: Arc<Counters>) {
    loop {
        tokio::time::sleep(FLUSH).await;
        let (phase, done, total) = snapshot(&counters);
        let cancel = match pool.acquire().await {
            Ok(mut conn) => db::jobs::heartbeat(&mut conn, id, &phase, done, total).await,
            Err(e) => Err(e),
        };
        match cancel {
            Ok(true) => counters.cancel.store(true, Ordering::Relaxed),
            Ok(false) => {}
            Err(error) => tracing::warn!(job = id, %error, "cannot record job progress"),
        }
    }
}

/// Queues a trial build that passes [`BuildSpec::check`]; returns the job id.
pub async fn submit_build(pool: &PgPool, spec: &BuildSpec) -> anyhow::Result<i64> {
    spec.check()?;
    let mut conn = pool.acquire().await?;
    Ok(db::jobs::enqueue(&mut conn, JobKind::Build, &serde_json::to_value(spec)?).await?)
}

/// Queues an image-set registration; returns the job id.
pub async fn submit_images(pool: &PgPool, job: &ImagesJob) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    Ok(db::jobs::enqueue(&mut conn, JobKind::Images, &serde_json::to_value(job)?).await?)
}

/// Scoring a study's trials with the in-silico observer, as a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScoreJob {
    pub study_id: i64,
    /// `max-set` or `contrast`.
    pub rule: String,
    /// `alex`, `vgg`, `squeeze` or `colour`.
    pub net: crate::observer::Metric,
    /// Single LPIPS layers scored beside the full distance (`all`, `1,3`); absent in older jobs.
    #[serde(default)]
    pub layers: crate::observer::Layers,
}

/// Queues observer scoring; returns the job id.
pub async fn submit_score(pool: &PgPool, job: &ScoreJob) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    Ok(db::jobs::enqueue(&mut conn, JobKind::Score, &serde_json::to_value(job)?).await?)
}

/// Queues `weights fetch` into the data directory; returns the job id.
pub async fn submit_weights(pool: &PgPool) -> anyhow::Result<i64> {
    let mut conn = pool.acquire().await?;
    Ok(db::jobs::enqueue(&mut conn, JobKind::Weights, &serde_json::json!({})).await?)
}
