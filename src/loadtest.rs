//! A load generator that drives the participant API as real participants do: start a session, consent,
//! read the instructions, answer every trial (practice included), finish. Every request is retried on
//! network errors and 5xx replies (honouring `Retry-After`) until it is acknowledged, so a server or
//! database restart mid-run only slows participants down. What was acknowledged is recorded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use anyhow::{bail, Context};
use rand::Rng;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub url: String,
    pub study: String,
    pub participants: usize,
    pub concurrency: usize,
    /// Distinguishes the external ids of separate runs against one study.
    pub run_id: String,
    /// Give up on a request after this long without an acknowledgement.
    pub patience: Duration,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub elapsed: Duration,
    pub participants_finished: usize,
    /// Response ids the server acknowledged with 200.
    pub acknowledged: Vec<Uuid>,
    /// Latencies of acknowledged requests, per endpoint.
    pub latencies: HashMap<&'static str, Vec<Duration>>,
    /// Replies that were retried, by status (0 = no reply: connection refused, reset, timed out).
    pub retries: HashMap<u16, usize>,
}

impl LoadReport {
    pub fn responses_per_second(&self) -> f64 {
        self.acknowledged.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of an endpoint's latencies.
    pub fn latency(&self, endpoint: &str, q: f64) -> Option<Duration> {
        let mut sorted = self.latencies.get(endpoint)?.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).copied()
    }

    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "{} participants finished, {} responses acknowledged in {:.1} s: {:.0} responses/s",
            self.participants_finished,
            self.acknowledged.len(),
            self.elapsed.as_secs_f64(),
            self.responses_per_second()
        )];
        let mut endpoints: Vec<&&str> = self.latencies.keys().collect();
        endpoints.sort();
        for endpoint in endpoints {
            let ms = |q| {
                self.latency(endpoint, q)
                    .map_or(0.0, |d| d.as_secs_f64() * 1e3)
            };
            lines.push(format!(
                "  {endpoint:<12} n={:<7} p50={:>6.1} ms  p95={:>6.1} ms  p99={:>6.1} ms",
                self.latencies[endpoint].len(),
                ms(0.50),
                ms(0.95),
                ms(0.99)
            ));
        }
        if !self.retries.is_empty() {
            let mut retries: Vec<_> = self.retries.iter().collect();
            retries.sort();
            lines.push(format!("  retried: {retries:?} (status 0 = no reply)"));
        }
        lines.join("\n")
    }
}

#[derive(Default)]
struct Shared {
    acknowledged: Vec<Uuid>,
    latencies: HashMap<&'static str, Vec<Duration>>,
    retries: HashMap<u16, usize>,
    finished: usize,
}

pub async fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let (client, shared, next, options) = (
            client.clone(),
            shared.clone(),
            next.clone(),
            options.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= options.participants {
                    return anyhow::Ok(());
                }
                let participant = Participant {
                    client: &client,
                    options: &options,
                    shared: &shared,
                };
                participant
                    .take_part(&format!("load-{}-{i}", options.run_id))
                    .await
                    .with_context(|| format!("participant {i}"))?;
            }
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let shared = Arc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("workers still running"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?;
    Ok(LoadReport {
        elapsed: start.elapsed(),
        participants_finished: shared.finished,
        acknowledged: shared.acknowledged,
        latencies: shared.latencies,
        retries: shared.retries,
    })
}

/// The parts of replies a participant needs.
#[derive(Deserialize)]
struct Started {
    token: String,
}

#[derive(Deserialize)]
struct Trial {
    position: i64,
}

struct Participant<'a> {
    client: &'a reqwest::Client,
    options: &'a LoadOptions,
    shared: &'a Mutex<Shared>,
}

impl Participant<'_> {
    async fn take_part(&self, external_id: &str) -> anyhow::Result<()> {
        let api = format!("{}/api/v1", self.options.url.trim_end_matches('/'));
        let (_, started) = self
            .send("sessions", || {
                self.client
                    .post(format!("{api}/studies/{}/sessions", self.options.study))
                    .json(&json!({"external_id": external_id, "source": "link"}))
            })
            .await?;
        let token = serde_json::from_slice::<Started>(&started)
            .context("no token")?
            .token;
        let session = format!("{api}/sessions/{token}");
        self.send("consent", || self.client.post(format!("{session}/consent")))
            .await?;
        self.send("instructions", || {
            self.client.post(format!("{session}/instructions"))
        })
        .await?;
        loop {
            let (status, trial) = self
                .send("next", || self.client.get(format!("{session}/trials/next")))
                .await?;
            if status == StatusCode::NO_CONTENT {
                break;
            }
            let position = serde_json::from_slice::<Trial>(&trial)
                .context("no position")?
                .position;
            let (chosen, confidence, rt_ms) = {
                let mut rng = rand::rng();
                (
                    rng.random_range(0..2),
                    rng.random_range(1..=3),
                    rng.random_range(300..3000),
                )
            };
            let response_id = Uuid::new_v4();
            let body = json!({
                "response_id": response_id, "position": position, "chosen": chosen,
                "confidence": confidence, "rt_ms": rt_ms,
            });
            let (status, _) = self
                .send("responses", || {
                    self.client.post(format!("{session}/responses")).json(&body)
                })
                .await?;
            if status == StatusCode::OK {
                self.lock().acknowledged.push(response_id);
            }
        }
        self.send("finish", || {
            self.client
                .post(format!("{session}/finish"))
                .json(&json!({}))
        })
        .await?;
        self.lock().finished += 1;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends until the server answers with a non-5xx status; a 4xx other than 409 is an error.
    async fn send(
        &self,
        endpoint: &'static str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let give_up = Instant::now() + self.options.patience;
        let mut backoff = Duration::from_millis(50);
        loop {
            let sent = Instant::now();
            let wait = match request().send().await {
                Ok(reply) if !reply.status().is_server_error() => {
                    let status = reply.status();
                    let body = reply.bytes().await.unwrap_or_default();
                    if status.is_client_error() && status != StatusCode::CONFLICT {
                        bail!("{endpoint}: {status} {}", String::from_utf8_lossy(&body));
                    }
                    self.lock()
                        .latencies
                        .entry(endpoint)
                        .or_default()
                        .push(sent.elapsed());
                    return Ok((status, body));
                }
                Ok(reply) => {
                    *self
                        .lock()
                        .retries
                        .entry(reply.status().as_u16())
                        .or_default() += 1;
                    let after = reply
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    after.map_or(backoff, Duration::from_secs)
                }
                Err(_) => {
                    *self.lock().retries.entry(0).or_default() += 1;
                    backoff
                }
            };
            if Instant::now() + wait > give_up {
                bail!(
                    "{endpoint}: no acknowledgement within {:?}",
                    self.options.patience
                );
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}
