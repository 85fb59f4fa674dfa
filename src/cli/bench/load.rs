//! `meilab bench load`: the participant API under load, end to end on this machine. A fresh database
//! gets a synthetic study, `meilab serve` runs as its own process, simulated participants take part
//! (`meilab loadtest`), and afterwards the database must hold exactly the acknowledged responses.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::db;
use crate::loadtest::{self, LoadOptions};
use crate::states::StudyStatus;
use crate::stimuli::store::ImageStore;
use crate::stimuli::synthetic::{self, SyntheticOptions};
use crate::stimuli::{TrialKind, TrialSpec, UnitSpec};
use crate::study::{self, StudyConfig};

const SLUG: &str = "load";

#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 500)]
    pub participants: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Main trials per session, each of a distinct unit (IMI: 40)
    #[arg(long, default_value_t = 40)]
    pub trials: i64,
    /// Catch trials per session (IMI: 5)
    #[arg(long, default_value_t = 5)]
    pub catch: i64,
    /// Keep the benchmark's database afterwards (it is dropped by default)
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(settings: Settings, args: LoadArgs) -> anyhow::Result<()> {
    let name = format!(
        "meilab_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (admin_url, cluster) = match &settings.database_url {
        Some(url) => (url.expose_secret().to_string(), None),
        None => {
            let root = settings.data_dir.join("postgres");
            let cluster =
                tokio::task::spawn_blocking(move || db::cluster::PrivateCluster::start(&root))
                    .await??;
            (cluster.url("postgres"), Some(cluster))
        }
    };
    let mut url = reqwest::Url::parse(&admin_url).context("DATABASE_URL is not a valid URL")?;
    url.set_path(&format!("/{name}"));
    db::create_database(&admin_url, &name).await?;
    let work_dir = settings.data_dir.join(format!("bench-{name}"));
    let result = measure(&args, url.as_str(), &work_dir).await;
    let _ = std::fs::remove_dir_all(&work_dir);
    if !args.keep {
        drop_database(&admin_url, &name).await?;
    } else {
        println!("database kept: {name}");
    }
    if let Some(cluster) = cluster {
        let _ = tokio::task::spawn_blocking(move || cluster.stop()).await;
    }
    result
}

async fn measure(args: &LoadArgs, database_url: &str, work_dir: &Path) -> anyhow::Result<()> {
    let pool = db::connect(database_url, 2).await?;
    db::migrate(&pool).await?;
    create_study(&pool, work_dir, args).await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(work_dir)
        .env("DATABASE_URL", database_url)
        // Every simulated participant comes from this one address.
        .env("MEILAB_SESSIONS_PER_IP_PER_MINUTE", "0")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start meilab serve")?;
    let server_pid = server.id().context("the server exited at once")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await?;

    println!(
        "load benchmark: {} participants, concurrency {}, {} main + {} catch trials per session (and practice), {} cores",
        args.participants,
        args.concurrency,
        args.trials,
        args.catch,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let before = CpuTimes::read(server_pid);
    let started = Instant::now();
    let report = loadtest::run(LoadOptions {
        url: base,
        study: SLUG.into(),
        participants: args.participants,
        concurrency: args.concurrency,
        run_id: "bench".into(),
        patience: Duration::from_secs(60),
    })
    .await;
    let wall = started.elapsed().as_secs_f64();
    let after = CpuTimes::read(server_pid);
    let _ = server.kill().await;
    let report = report?;
    println!("{}", report.summary());
    println!(
        "CPU seconds over {wall:.1} s wall: server {:.1}, PostgreSQL {:.1}, load generator {:.1} (of {:.1} available)",
        after.server - before.server,
        after.postgres - before.postgres,
        after.client - before.client,
        wall * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
    );

    let stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT response_id FROM responses")
        .fetch_all(&pool)
        .await?;
    let stored_set: HashSet<_> = stored.iter().copied().collect();
    let acknowledged: HashSet<_> = report.acknowledged.iter().copied().collect();
    let missing = acknowledged.difference(&stored_set).count();
    let unacknowledged = stored_set.difference(&acknowledged).count();
    pool.close().await;
    if missing > 0
        || unacknowledged > 0
        || stored.len() != stored_set.len()
        || report.participants_finished != args.participants
    {
        bail!(
            "stored responses do not match: {missing} acknowledged missing, {unacknowledged} stored but not acknowledged, {} rows for {} ids, {} of {} participants finished",
            stored.len(),
            stored_set.len(),
            report.participants_finished,
            args.participants
        );
    }
    println!(
        "database: exactly the {} acknowledged responses, none duplicated; every participant finished",
        stored.len()
    );
    Ok(())
}

async fn create_study(pool: &sqlx::PgPool, work_dir: &Path, args: &LoadArgs) -> anyhow::Result<()> {
    let store = ImageStore::new(work_dir.join("images"));
    let mut set =
        tokio::task::spawn_blocking(move || synthetic::build(&store, &SyntheticOptions::default()))
            .await??;
    // Sessions show distinct units: the synthetic units are repeated (as further taps) until there
    // are enough for a session.
    let (units, main) = (set.units.clone(), set.trials.clone());
    let mut copy = 1;
    while (set.units.len() as i64) < args.trials {
        let offset = set.units.len();
        set.units.extend(units.iter().map(|u| UnitSpec {
            tap: format!("{}-{copy}", u.tap),
            ..u.clone()
        }));
        set.trials.extend(
            main.iter()
                .filter(|t| t.kind != TrialKind::Practice)
                .map(|t| TrialSpec {
                    unit: t.unit + offset,
                    ..t.clone()
                }),
        );
        copy += 1;
    }
    let config = StudyConfig {
        trials_per_session: args.trials,
        catch_per_session: args.catch,
        lock_ms: 0,
        ..StudyConfig::default()
    };
    let mut tx = pool.begin().await?;
    study::create(
        &mut tx,
        SLUG,
        "Load benchmark",
        StudyStatus::Active,
        &config,
        &set,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(reply) = reqwest::get(format!("{base}/readyz")).await {
            if reply.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("meilab serve did not become ready within 30 s")
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .with_context(|| format!("cannot drop the benchmark database {name}"))?;
    Ok(())
}

/// CPU seconds (user + system) used so far by the server, by this process and by every PostgreSQL
/// process on the machine (Linux `/proc`; zero elsewhere).
struct CpuTimes {
    server: f64,
    client: f64,
    postgres: f64,
}

impl CpuTimes {
    fn read(server_pid: u32) -> Self {
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter_map(|stat| {
                let (comm, seconds) = parse_stat(&stat)?;
                (comm == "postgres").then_some(seconds)
            })
            .sum();
        let of = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat).map(|(_, seconds)| seconds))
                .unwrap_or(0.0)
        };
        Self {
            server: of(&server_pid.to_string()),
            client: of("self"),
            postgres,
        }
    }
}

/// The command name and user + system CPU seconds of a `/proc/PID/stat` line (clock ticks are 1/100 s).
fn parse_stat(stat: &str) -> Option<(&str, f64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // After the command: state is field 3, utime field 14 and stime field 15 of the whole line.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((&stat[open + 1..close], ticks / 100.0))
}
