//! The yardstick beside `bench load`: pgbench's durable one-row inserts (each its own committed
//! transaction) on the same database, with as many clients as the load had participants at once and
//! for as long, and the CPU they cost PostgreSQL.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context};

use super::load::ClusterCpu;

const TABLE: &str = "bench_pgbench_rows";

/// What pgbench did.
pub struct Inserts {
    pub clients: usize,
    pub seconds: u64,
    pub per_second: f64,
    pub count: u64,
    /// CPU seconds the cluster spent meanwhile (`None`: the cluster is not on this machine).
    pub postgres_cpu: Option<f64>,
}

/// pgbench next to the PostgreSQL server binaries, else the one on `PATH`.
pub fn find() -> Option<std::path::PathBuf> {
    let beside = crate::db::cluster::server_binaries()
        .ok()
        .map(|bin| bin.join("pgbench"))
        .filter(|path| path.exists());
    beside.or_else(|| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("pgbench"))
            .find(|path| path.exists())
    })
}

/// Runs `pgbench` with `clients` clients for `seconds` on the database of `database_url`, each
/// transaction one `INSERT` of one row into a table of one column, made for the run and dropped after.
pub async fn run(
    pgbench: &Path,
    pool: &sqlx::PgPool,
    database_url: &str,
    work_dir: &Path,
    clients: usize,
    seconds: u64,
    cluster: Option<&ClusterCpu>,
) -> anyhow::Result<Inserts> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {TABLE} (n integer NOT NULL)"
    )))
    .execute(pool)
    .await?;
    let script = work_dir.join("pgbench-insert.sql");
    std::fs::write(&script, format!("INSERT INTO {TABLE} VALUES (1);\n"))?;

    // The password goes by the environment, not the command line, where any user could read it.
    let mut url = reqwest::Url::parse(database_url).context("not a database URL")?;
    let password = url
        .password()
        .map(|p| percent_encoding::percent_decode_str(p).decode_utf8())
        .transpose()
        .context("the database URL's password is not UTF-8")?
        .map(|p| p.into_owned());
    let _ = url.set_password(None);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(clients.max(1));
    let mut command = tokio::process::Command::new(pgbench);
    command
        .args(["--no-vacuum", "--protocol=prepared"])
        .arg(format!("--client={clients}"))
        .arg(format!("--jobs={threads}"))
        .arg(format!("--time={seconds}"))
        .arg("--file")
        .arg(&script)
        .arg(url.as_str())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let before = cluster.map(ClusterCpu::seconds);
    let output = command.output().await.context("cannot run pgbench")?;
    let after = cluster.map(ClusterCpu::seconds);
    let count: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {TABLE}")))
            .fetch_one(pool)
            .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {TABLE}")))
        .execute(pool)
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let Some(per_second) = tps(&stdout) else {
        bail!("pgbench printed no rate: {}", stdout.trim());
    };
    Ok(Inserts {
        clients,
        seconds,
        per_second,
        count: count as u64,
        postgres_cpu: before.zip(after).map(|(b, a)| a - b),
    })
}

/// The rate in pgbench's `tps = 4823.1 (without initial connection time)` line.
fn tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_read_from_the_tps_line() {
        let stdout = "transaction type: insert.sql\nnumber of clients: 64\n\
                      latency average = 13.2 ms\n\
                      initial connection time = 40.5 ms\n\
                      tps = 4823.123456 (without initial connection time)\n";
        assert_eq!(tps(stdout), Some(4823.123456));
        assert_eq!(tps("no rate here"), None);
    }
}
