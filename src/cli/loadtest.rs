//! `meilab loadtest`: drives a running server's participant API and prints throughput and latencies.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::loadtest::{self, LoadOptions};

#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// The server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    pub url: String,
    /// The study's URL name (it must be active)
    #[arg(long)]
    pub study: String,
    /// Simulated participants, all from this machine's address: the server's
    /// `sessions_per_ip_per_minute` (MEILAB_SESSIONS_PER_IP_PER_MINUTE, default 120, 0 = off) must allow them
    #[arg(long, default_value_t = 500)]
    pub participants: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Write the acknowledged response ids here, one per line
    #[arg(long)]
    pub acknowledged: Option<PathBuf>,
    /// Seconds a request is retried before the run fails
    #[arg(long, default_value_t = 120)]
    pub patience: u64,
}

pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let report = loadtest::run(LoadOptions {
        url: args.url,
        study: args.study,
        participants: args.participants,
        concurrency: args.concurrency,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
        patience: Duration::from_secs(args.patience),
    })
    .await?;
    println!("{}", report.summary());
    if let Some(path) = args.acknowledged {
        let ids: Vec<String> = report
            .acknowledged
            .iter()
            .map(|id| id.to_string())
            .collect();
        std::fs::write(&path, ids.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
