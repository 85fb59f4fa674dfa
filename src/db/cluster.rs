//! A private PostgreSQL cluster under the data directory, run from the server binaries installed on the
//! machine, so `meilab demo` needs no database set-up. PostgreSQL refuses to run as root, so under root
//! the cluster belongs to the unprivileged `postgres` user and every server command runs as that user.
//!
//! The cluster is private: it listens on a Unix socket in its data folder only (TCP on 127.0.0.1 only when
//! `MEILAB_PG_TCP_PORT` asks for it), every connection authenticates with a password (SCRAM), and the
//! application connects as [`APP_ROLE`], which is no superuser and owns the application database. The
//! bootstrap superuser is used only to set the cluster up. Both passwords are generated on first start and
//! kept beside the data, readable by the user running meilab only. A cluster of an earlier meilab (trust
//! authentication, TCP, the application connecting as the superuser) is brought to this state on start.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context};
use sqlx::postgres::PgConnectOptions;

/// The bootstrap superuser: set-up only.
const SUPERUSER: &str = "meilab";
/// The role the application connects as: LOGIN, CREATEDB (tests and `bench load` create their own
/// databases), nothing else.
pub const APP_ROLE: &str = "meilab_app";
/// The application database, owned by [`APP_ROLE`].
pub const APP_DATABASE: &str = "meilab";
const UNPRIVILEGED_USER: &str = "postgres";
const SUPERUSER_PASSWORD_FILE: &str = "superuser.password";
const APP_PASSWORD_FILE: &str = "app.password";
/// The port names the socket file (`.s.PGSQL.<port>` in the data folder); nothing listens on it over TCP.
const SOCKET_PORT: u16 = 5432;
/// Set to a port number to also listen on 127.0.0.1 (password authentication still applies).
const TCP_PORT_ENV: &str = "MEILAB_PG_TCP_PORT";

const PG_HBA: &str = "\
# Written by meilab: every connection authenticates with a password (SCRAM); nothing is trusted.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  scram-sha-256
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
";

pub struct PrivateCluster {
    root: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
    app_password: String,
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
            app_password: String::new(),
            started_here: false,
        };
        cluster.prepare_owner()?;
        let fresh = !cluster.pgdata().join("PG_VERSION").exists();
        let earlier = !fresh && cluster.is_from_an_earlier_version()?;
        let running = cluster.running_port()?;
        if earlier && running.is_some() {
            bail!(
                "the private database in {} is running with the open settings of an earlier meilab \
                 (trusted local connections); stop it (`pg_ctl -D {} -m fast stop` as the `{}` user, or \
                 stop the meilab process that started it) and start again: it is then secured on start",
                cluster.root.display(),
                cluster.pgdata().display(),
                cluster.run_as.as_deref().unwrap_or("current")
            );
        }
        let superuser_password = secret_file(&cluster.root.join(SUPERUSER_PASSWORD_FILE))?;
        cluster.app_password = secret_file(&cluster.root.join(APP_PASSWORD_FILE))?;
        if fresh {
            cluster.initdb(&superuser_password)?;
        }
        match running {
            Some(port) => cluster.port = port,
            None => {
                cluster.port = tcp_port()?.unwrap_or(SOCKET_PORT);
                cluster.pg_ctl_start()?;
                cluster.started_here = true;
            }
        }
        if cluster.started_here {
            // Idempotent: roles, passwords, the application database and its owner. A cluster of an
            // earlier version is still trusting its (now socket-only) connections at this point.
            cluster.set_up(&superuser_password)?;
            cluster.secure_authentication()?;
        }
        Ok(cluster)
    }

    /// The URL of `database` for the application role, over the Unix socket, password included
    /// (like every `DATABASE_URL`, never to be printed).
    pub fn url(&self, database: &str) -> String {
        let mut url = reqwest::Url::parse("postgres://localhost").expect("a static URL parses");
        url.set_username(APP_ROLE).expect("a URL with a host");
        url.set_password(Some(&self.app_password))
            .expect("a URL with a host");
        url.set_port(Some(self.port)).expect("a URL with a host");
        url.set_path(&format!("/{database}"));
        url.query_pairs_mut()
            .append_pair("host", &path_str(&self.socket_dir()));
        url.to_string()
    }

    /// Connection options of `database` for the application role, over the Unix socket.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(self.port)
            .username(APP_ROLE)
            .password(&self.app_password)
            .database(database)
    }

    /// The folder holding the server's socket file, `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> PathBuf {
        self.pgdata()
    }

    /// The port the socket file is named after (and the TCP port when TCP was asked for).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The file holding the application role's password.
    pub fn app_password_file(&self) -> PathBuf {
        self.root.join(APP_PASSWORD_FILE)
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

    /// Restarts the server with the same settings (operations and tests of outage handling).
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

    /// Everything in the folder belongs to the server's user, except the password files, which stay
    /// with the user running meilab.
    fn prepare_owner(&self) -> anyhow::Result<()> {
        let Some(user) = &self.run_as else {
            return Ok(());
        };
        let mut paths = vec![];
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            if name != SUPERUSER_PASSWORD_FILE && name != APP_PASSWORD_FILE {
                paths.push(entry.path());
            }
        }
        let chown = |recursive: bool, paths: &[PathBuf]| {
            let mut command = Command::new("chown");
            if recursive {
                command.arg("-R");
            }
            command.arg(format!("{user}:")).args(paths);
            command.status().context("cannot run chown")
        };
        let owned = chown(false, std::slice::from_ref(&self.root))?.success()
            && (paths.is_empty() || chown(true, &paths)?.success());
        if !owned {
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

    /// A cluster made by an earlier meilab: no password files, or a `trust` line in `pg_hba.conf`.
    fn is_from_an_earlier_version(&self) -> anyhow::Result<bool> {
        let hba = fs::read_to_string(self.pgdata().join("pg_hba.conf"))
            .context("cannot read pg_hba.conf of the private database")?;
        let trusts = hba.lines().any(|line| {
            let line = line.split('#').next().unwrap_or("");
            line.split_whitespace().any(|word| word == "trust")
        });
        Ok(trusts
            || !self.root.join(SUPERUSER_PASSWORD_FILE).exists()
            || !self.root.join(APP_PASSWORD_FILE).exists())
    }

    fn initdb(&self, superuser_password: &str) -> anyhow::Result<()> {
        let pgdata = path_str(&self.pgdata());
        // initdb runs as the server's user, which cannot read the kept password file: it gets a copy
        // of its own for the moment.
        let pwfile = self.root.join("initdb.pw");
        let write = || -> anyhow::Result<()> {
            let mut file = create_private(&pwfile)?;
            writeln!(file, "{superuser_password}")?;
            if let Some(user) = &self.run_as {
                let status = Command::new("chown")
                    .arg(format!("{user}:"))
                    .arg(&pwfile)
                    .status()?;
                anyhow::ensure!(status.success(), "cannot hand the password to {user}");
            }
            Ok(())
        };
        let output = write().and_then(|()| {
            self.run(
                &self.bin.join("initdb"),
                &[
                    "-D",
                    &pgdata,
                    "-U",
                    SUPERUSER,
                    "--auth=scram-sha-256",
                    &format!("--pwfile={}", path_str(&pwfile)),
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
            )
        });
        let _ = fs::remove_file(&pwfile);
        check(output?, "initdb")
    }

    fn running_port(&self) -> anyhow::Result<Option<u16>> {
        let pgdata = path_str(&self.pgdata());
        if !self.pgdata().join("PG_VERSION").exists() {
            return Ok(None);
        }
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
        let listen = if tcp_port()?.is_some() {
            "127.0.0.1"
        } else {
            ""
        };
        // pg_ctl hands these to a shell: quote them.
        let options = format!(
            "-p {} -k {} -c listen_addresses={} -c max_connections=200 \
             -c password_encryption=scram-sha-256",
            self.port,
            shell_quote(&path_str(&self.socket_dir())),
            shell_quote(listen),
        );
        let output = self.run(
            &self.bin.join("pg_ctl"),
            &[
                "-D", &pgdata, "-l", &log, "-w", "-t", "60", "-o", &options, "start",
            ],
        )?;
        check(output, "pg_ctl start").with_context(|| format!("see {log}"))
    }

    /// The application role and database, as the superuser over the socket.
    fn set_up(&self, superuser_password: &str) -> anyhow::Result<()> {
        let app = &self.app_password;
        let sql = format!(
            "SELECT 'CREATE ROLE {APP_ROLE}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') \\gexec
ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{app}';
ALTER ROLE {SUPERUSER} WITH PASSWORD '{superuser_password}';
REVOKE pg_execute_server_program, pg_read_server_files, pg_write_server_files FROM {APP_ROLE};
SELECT 'CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{APP_DATABASE}') \\gexec
ALTER DATABASE {APP_DATABASE} OWNER TO {APP_ROLE};
\\connect {APP_DATABASE}
{OWNERSHIP}
"
        );
        self.psql(superuser_password, &sql)
            .context("cannot set up the roles of the private database")
    }

    /// `pg_hba.conf` with password authentication only, loaded if it changed.
    fn secure_authentication(&self) -> anyhow::Result<()> {
        let path = self.pgdata().join("pg_hba.conf");
        if fs::read_to_string(&path).ok().as_deref() == Some(PG_HBA) {
            return Ok(());
        }
        // Written in place, so the file keeps its owner and mode.
        fs::write(&path, PG_HBA).context("cannot write pg_hba.conf")?;
        let output = self.run(
            &self.bin.join("pg_ctl"),
            &["-D", &path_str(&self.pgdata()), "reload"],
        )?;
        check(output, "pg_ctl reload")
    }

    fn psql(&self, superuser_password: &str, sql: &str) -> anyhow::Result<()> {
        let mut child = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
            ])
            // The password goes through the environment and stdin, not the command line.
            .env("PGPASSWORD", superuser_password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run psql")?;
        child
            .stdin
            .take()
            .context("psql stdin")?
            .write_all(sql.as_bytes())?;
        check(child.wait_with_output()?, "psql")
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

/// In the application database: what the superuser owns there (the tables of a database made by an
/// earlier meilab) goes to the application role. Indexes and column sequences follow their tables.
const OWNERSHIP: &str = r#"DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n
           WHERE n.nspowner = 'meilab'::regrole AND n.nspname NOT LIKE 'pg\_%'
             AND n.nspname NOT IN ('information_schema', 'public') LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO meilab_app', r.nspname);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relowner = 'meilab'::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' LOOP
    EXECUTE format('ALTER %s %s OWNER TO meilab_app',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relowner = 'meilab'::regrole AND c.relkind = 'S'
             AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO meilab_app', r.name);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.proowner = 'meilab'::regrole
             AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO meilab_app', r.name);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS name FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.typowner = 'meilab'::regrole AND t.typtype IN ('e', 'd', 'r', 'm')
             AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema' LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO meilab_app', r.name);
  END LOOP;
END
$$;"#;

/// The password kept in `path`, generated (64 hex digits) on first use. The file is readable and
/// writable by the user running meilab only.
fn secret_file(path: &Path) -> anyhow::Result<String> {
    if !path.exists() {
        let password = hex::encode(rand::random::<[u8; 32]>());
        let temporary = path.with_extension("new");
        let mut file = create_private(&temporary)?;
        writeln!(file, "{password}")?;
        file.sync_all()?;
        fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    let password = fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .trim()
        .to_string();
    if password.len() < 32 || !password.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{} does not hold a generated password (64 hex digits)",
            path.display()
        );
    }
    Ok(password)
}

/// A new file with mode 0600 from the start.
fn create_private(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn tcp_port() -> anyhow::Result<Option<u16>> {
    match std::env::var(TCP_PORT_ENV) {
        Ok(port) if !port.trim().is_empty() => port
            .trim()
            .parse()
            .map(Some)
            .with_context(|| format!("{TCP_PORT_ENV} is not a port number: {port}")),
        _ => Ok(None),
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
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
pub fn server_binaries() -> anyhow::Result<PathBuf> {
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

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
