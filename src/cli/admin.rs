//! `meilab admin create-user`, and the first-run account of `meilab demo`.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use sqlx::PgPool;

use crate::accounts::{self, Role};
use crate::config::Settings;
use crate::db::Database;

#[derive(Debug, clap::Args)]
pub struct CreateUserArgs {
    /// The user name (letters, digits, '.', '_', '@', '-')
    pub username: String,
    /// `admin` (everything) or `researcher` (read and export)
    #[arg(long, default_value = "admin")]
    pub role: String,
    /// Read the password from the first line of standard input instead of generating one
    #[arg(long)]
    pub password_stdin: bool,
}

/// Creates the account (or sets a new password for an existing one).
pub async fn create_user(settings: Settings, args: CreateUserArgs) -> anyhow::Result<()> {
    let role = Role::parse(&args.role)
        .with_context(|| format!("unknown role {:?}: use admin or researcher", args.role))?;
    accounts::check_username(&args.username)?;
    let (password, generated) = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (accounts::random_password(), true)
    };
    accounts::check_password(&password)?;
    let database = Database::open(&settings).await?;
    let result = async {
        let mut conn = database.pool.acquire().await?;
        let created = accounts::create_or_reset(&mut conn, &args.username, &password, role).await?;
        let what = if created {
            "created"
        } else {
            "password changed for"
        };
        println!("{what} {} ({})", args.username, role.as_str());
        if generated {
            println!("password: {password}");
        }
        println!("log in at {}/admin/login", settings.public_url());
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}

const DEMO_USER: &str = "admin";
const PASSWORD_FILE: &str = "admin-password";

/// The demo's admin: its password is drawn once, kept in the data folder (readable by the owner only)
/// and printed on every run, so the printed line always works.
pub async fn ensure_demo_admin(settings: &Settings, pool: &PgPool) -> anyhow::Result<()> {
    let file = settings.data_dir.join(PASSWORD_FILE);
    let stored = std::fs::read_to_string(&file)
        .ok()
        .map(|p| p.trim().to_string())
        .filter(|p| accounts::check_password(p).is_ok());
    let mut conn = pool.acquire().await?;
    let password = match stored {
        Some(password) => {
            if crate::db::admins::by_username(&mut conn, DEMO_USER)
                .await?
                .is_none()
            {
                accounts::create_or_reset(&mut conn, DEMO_USER, &password, Role::Admin).await?;
            }
            password
        }
        None => {
            let password = accounts::random_password();
            write_private(&file, &password)?;
            accounts::create_or_reset(&mut conn, DEMO_USER, &password, Role::Admin).await?;
            password
        }
    };
    println!(
        "admin login: {}/admin/login user={DEMO_USER} password={password}",
        settings.public_url()
    );
    Ok(())
}

/// Writes a secret readable by the owner only.
fn write_private(path: &Path, secret: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
