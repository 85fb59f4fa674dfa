//! A private PostgreSQL cluster under the data directory, run from the server binaries installed on the
//! machine, so `meilab demo` needs no database set-up. PostgreSQL refuses to run as root, so under root
//! the cluster belongs to the unprivileged `postgres` user and every server command runs as that user.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context};

const SUPERUSER: &str = "meilab";
const UNPRIVILEGED_USER: &str = "postgres";

pub struct PrivateCluster {
    root: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
    started_here: bool,
}

impl PrivateCluster {
    /// Starts the cluster in `root` (created on first use), or joins it if it is already running.
    /// Blocking: call it at start-up or from `spawn_blocking`.
    pub fn start(root: &Path) -> anyhow::Result<Self> {
        let bin = server_binaries()?;
        let run_as = (effective_uid()? == 0).then(|| UNPRIVILEGED_USER.to_string());
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create the database folder {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", root.display()))?;
        // Several processes (tests, a server and a worker) may start the cluster at once.
        let lock = File::create(root.join("cluster.lock"))?;
        lock.lock().context("cannot lock the database folder")?;

        let mut cluster = Self {
            root,
            bin,
            run_as,
            port: 0,
            started_here: false,
        };
        cluster.prepare_owner()?;
        if !cluster.pgdata().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        match cluster.running_port()? {
            Some(port) => cluster.port = port,
            None => {
                cluster.port = free_port()?;
                cluster.pg_ctl_start()?;
                cluster.started_here = true;
            }
        }
        Ok(cluster)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server if this process started it.
    pub fn stop(&self) {
        if self.started_here {
            let pgdata = self.pgdata();
            let _ = self.run(
                &self.bin.join("pg_ctl"),
                &["-D", &path_str(&pgdata), "-m", "fast", "-w", "stop"],
            );
        }
    }

    /// Restarts the server on the same port (operations and tests of outage handling).
    pub fn restart(&self) -> anyhow::Result<()> {
        let pgdata = path_str(&self.pgdata());
        // Without a log file the server would write to, and hold open, this process's pipes.
        let log = path_str(&self.root.join("server.log"));
        let output = self.run(
            &self.bin.join("pg_ctl"),
            &["-D", &pgdata, "-l", &log, "-m", "fast", "-w", "restart"],
        )?;
        check(output, "pg_ctl restart")
    }

    fn pgdata(&self) -> PathBuf {
        self.root.join("data")
    }

    fn prepare_owner(&self) -> anyhow::Result<()> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let status = Command::new("chown")
            .args(["-R", &format!("{user}:"), &path_str(&self.root)])
            .status()
            .context("cannot run chown")?;
        if !status.success() {
            bail!(
                "meilab runs as root and needs the unprivileged user `{user}` to own the private database \
                 (create it with `useradd {user}`), or set DATABASE_URL to an existing database"
            );
        }
        let reachable = Command::new("runuser")
            .args(["-u", user, "--", "test", "-w", &path_str(&self.root)])
            .status()
            .context("cannot run runuser")?;
        if !reachable.success() {
            bail!(
                "the unprivileged user `{user}` cannot reach {}: choose a --data-dir outside private home \
                 folders (e.g. /var/tmp/meilab) or set DATABASE_URL",
                self.root.display()
            );
        }
        Ok(())
    }

    fn initdb(&self) -> anyhow::Result<()> {
        let pgdata = path_str(&self.pgdata());
        let output = self.run(
            &self.bin.join("initdb"),
            &[
                "-D",
                &pgdata,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        check(output, "initdb")
    }

    fn running_port(&self) -> anyhow::Result<Option<u16>> {
        let pgdata = path_str(&self.pgdata());
        let status = self.run(&self.bin.join("pg_ctl"), &["-D", &pgdata, "status"])?;
        if !status.status.success() {
            return Ok(None);
        }
        // postmaster.pid: line 4 holds the port.
        let pid_file = fs::read_to_string(self.pgdata().join("postmaster.pid"))?;
        let port = pid_file
            .lines()
            .nth(3)
            .and_then(|line| line.trim().parse().ok())
            .context("cannot read the port of the running private database")?;
        Ok(Some(port))
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let pgdata = path_str(&self.pgdata());
        let log = path_str(&self.root.join("server.log"));
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {pgdata} -c max_connections=200",
            self.port
        );
        let output = self.run(
            &self.bin.join("pg_ctl"),
            &[
                "-D", &pgdata, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        )?;
        check(output, "pg_ctl start").with_context(|| format!("see {log}"))
    }

    fn run(&self, program: &Path, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .current_dir(&self.root)
            .output()
            .with_context(|| format!("cannot run {}", program.display()))
    }
}

fn check(output: Output, what: &str) -> anyhow::Result<()> {
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

/// `MEILAB_PG_BIN`, else the newest `/usr/lib/postgresql/<v>/bin`, else `initdb` on the PATH.
fn server_binaries() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MEILAB_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
    {
        return Ok(dir);
    }
    bail!(
        "no database: set DATABASE_URL to a PostgreSQL database, or install the PostgreSQL server \
         (e.g. `apt-get install postgresql`) so meilab can run a private one"
    )
}

fn effective_uid() -> anyhow::Result<u32> {
    let status =
        fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .context("cannot read the effective user id")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
