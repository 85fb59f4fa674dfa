//! `meilab bench load`: the participant API under load, end to end on this machine. A fresh database
//! gets a synthetic study, `meilab serve` runs as its own process, simulated participants take part
//! (`meilab loadtest`), and afterwards the database must hold exactly the acknowledged responses.
//! What an answer costs is given as CPU time per acknowledged response, of the server and of the
//! PostgreSQL cluster, and the rate is set beside pgbench's durable one-row inserts on the same
//! database right after (see [`super::pgbench`]).

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
    /// Skip the pgbench run beside the load (run by default when pgbench is installed)
    #[arg(long)]
    pub no_pgbench: bool,
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
    let cluster = ClusterCpu::find(&pool).await?;
    let (synchronous_commit, fsync): (String, String) =
        sqlx::query_as("SELECT current_setting('synchronous_commit'), current_setting('fsync')")
            .fetch_one(&pool)
            .await?;

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
    let before = CpuTimes::read(server_pid, cluster.as_ref());
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
    let after = CpuTimes::read(server_pid, cluster.as_ref());
    let _ = server.kill().await;
    let report = report?;
    println!("{}", report.summary());
    let (server_cpu, client_cpu) = (after.server - before.server, after.client - before.client);
    let postgres_cpu = after.postgres.zip(before.postgres).map(|(a, b)| a - b);
    println!(
        "CPU seconds over {wall:.1} s wall: server {server_cpu:.1}, PostgreSQL {}, load generator {client_cpu:.1} (of {:.1} available)",
        postgres_cpu.map_or("unknown (not on this machine)".into(), |s| format!("{s:.1}")),
        wall * std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
    );
    let per_response = |seconds: f64| seconds * 1e3 / report.acknowledged.len().max(1) as f64;
    match postgres_cpu {
        Some(postgres_cpu) => println!(
            "CPU per acknowledged response: server {:.3} ms + PostgreSQL {:.3} ms = {:.3} ms (synchronous_commit {synchronous_commit}, fsync {fsync})",
            per_response(server_cpu),
            per_response(postgres_cpu),
            per_response(server_cpu + postgres_cpu)
        ),
        None => println!(
            "CPU per acknowledged response: server {:.3} ms (PostgreSQL's unknown)",
            per_response(server_cpu)
        ),
    }
    if !args.no_pgbench {
        match super::pgbench::find() {
            Some(pgbench) => {
                let inserts = super::pgbench::run(
                    &pgbench,
                    &pool,
                    database_url,
                    work_dir,
                    args.concurrency,
                    wall.ceil() as u64,
                    cluster.as_ref(),
                )
                .await?;
                let cost = inserts.postgres_cpu.map_or(String::new(), |s| {
                    format!(
                        ", PostgreSQL {:.3} ms CPU per insert",
                        s * 1e3 / inserts.count.max(1) as f64
                    )
                });
                println!(
                    "pgbench right after, {} clients for {} s, one durable one-row INSERT per transaction: {:.0} inserts/s{cost}",
                    inserts.clients, inserts.seconds, inserts.per_second
                );
                println!(
                    "responses/s to pgbench's inserts/s: {:.2}",
                    report.responses_per_second() / inserts.per_second
                );
            }
            None => println!("pgbench not found: no rate to compare with"),
        }
    }

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

/// CPU seconds (user + system) used so far by the server, by this process and by the PostgreSQL
/// cluster (Linux `/proc`; zero elsewhere).
struct CpuTimes {
    server: f64,
    client: f64,
    postgres: Option<f64>,
}

impl CpuTimes {
    fn read(server_pid: u32, cluster: Option<&ClusterCpu>) -> Self {
        let of = |pid: &str| {
            Stat::read(pid).map_or(0.0, |stat| stat.own_seconds + stat.children_seconds)
        };
        Self {
            server: of(&server_pid.to_string()),
            client: of("self"),
            postgres: cluster.map(ClusterCpu::seconds),
        }
    }
}

/// A PostgreSQL cluster on this machine, found by the postmaster of a connection's backend. Its CPU
/// time is the postmaster's and its running processes', plus that of the processes it started that
/// have exited (the kernel adds theirs to the postmaster's children's time when it reaps them), so
/// connections that come and go are counted too, and no other cluster's processes are.
pub struct ClusterCpu {
    postmaster: u32,
}

impl ClusterCpu {
    /// `None` when the backend is not a process on this machine.
    pub async fn find(pool: &sqlx::PgPool) -> anyhow::Result<Option<Self>> {
        let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(pool)
            .await?;
        let Some(stat) = Stat::read(&backend.to_string()) else {
            return Ok(None);
        };
        let postmaster = Stat::read(&stat.parent.to_string());
        let is_postgres = |s: &Stat| s.command == "postgres";
        Ok(
            (is_postgres(&stat) && postmaster.as_ref().is_some_and(is_postgres)).then_some(Self {
                postmaster: stat.parent,
            }),
        )
    }

    pub fn seconds(&self) -> f64 {
        let Some(postmaster) = Stat::read(&self.postmaster.to_string()) else {
            return 0.0;
        };
        let children: f64 = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| Stat::read(entry.file_name().to_str()?))
            .filter(|stat| stat.parent == self.postmaster)
            .map(|stat| stat.own_seconds + stat.children_seconds)
            .sum();
        postmaster.own_seconds + postmaster.children_seconds + children
    }
}

/// The parts of a `/proc/PID/stat` line used here.
#[derive(Debug, PartialEq)]
struct Stat {
    command: String,
    parent: u32,
    /// User + system CPU seconds of the process, and of its children that exited and were waited for.
    own_seconds: f64,
    children_seconds: f64,
}

impl Stat {
    fn read(pid: &str) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Clock ticks are 1/100 s.
    fn parse(stat: &str) -> Option<Self> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        // After the command: state is field 3 of the whole line, the parent 4, utime 14, stime 15,
        // cutime 16 and cstime 17.
        let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
        Some(Self {
            command: stat[open + 1..close].to_string(),
            parent: fields.get(1)?.parse().ok()?,
            own_seconds: (ticks(11)? + ticks(12)?) / 100.0,
            children_seconds: (ticks(13)? + ticks(14)?) / 100.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_the_parent_and_cpu_seconds() {
        let line = "4242 (postgres) S 4200 4200 4200 0 -1 4194560 1234 0 0 0 150 25 300 70 20 0 1 0 \
                    5000 300000000 4000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                command: "postgres".into(),
                parent: 4200,
                own_seconds: 1.75,
                children_seconds: 3.7,
            })
        );
    }

    #[test]
    fn a_command_with_spaces_and_parentheses_is_read_whole() {
        let line = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 1 1 1";
        let stat = Stat::parse(line).expect("parses");
        assert_eq!((stat.command.as_str(), stat.parent), ("a (b) c", 1));
        assert_eq!(stat.own_seconds, 0.2);
    }
}
