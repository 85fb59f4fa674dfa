//! The `meilab` command line.

mod admin;
pub mod bench;
mod demo;
mod export;
mod import;
mod loadtest;
pub mod lpips;
mod observer;
mod participant;
mod serve;
mod stimuli;
pub mod weights;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "meilab",
    version,
    about = "Crowdsourced psychophysics for neural-network interpretability"
)]
pub struct Cli {
    /// Address the server listens on [default: 127.0.0.1:8080; env MEILAB_BIND]
    #[arg(long, global = true, value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Images, weights, caches and the private database [default: ./meilab-data; env MEILAB_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file [default: ./meilab.toml if present]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A working study on localhost with no configuration: database, stimuli, server, participant link.
    Demo(demo::DemoArgs),
    /// Run the server.
    Serve,
    /// Apply the database migrations.
    Migrate,
    /// Manage studies.
    #[command(subcommand)]
    Study(StudyCommand),
    /// Manage dashboard accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// A participant's data (withdrawal).
    #[command(subcommand)]
    Participant(ParticipantCommand),
    /// Drive a running server with simulated participants; print responses/s and latencies.
    Loadtest(loadtest::LoadtestArgs),
    /// Import, fetch and list network weights (kept in the data directory).
    Weights(weights::WeightsArgs),
    /// Print the LPIPS distance between two images.
    Lpips(lpips::LpipsArgs),
    /// Score a study's trials with the in-silico LPIPS observer.
    #[command(subcommand)]
    Observer(ObserverCommand),
    /// Write a study's responses, per-unit and per-layer tables, ROC points or plots.
    Export(export::ExportArgs),
    /// Build stimuli (units, exemplars, trials) from a network and an image set.
    #[command(subcommand)]
    Stimuli(StimuliCommand),
    /// Run queued jobs (trial builds, observer scoring) until stopped.
    Worker,
    /// Benchmarks that print figures: the vision engine, or the participant API under load.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ParticipantCommand {
    /// Delete a participant's session, assignments and responses (found by their external id).
    Delete(participant::DeleteArgs),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a dashboard account (or set a new password for an existing one); prints a generated password.
    CreateUser(admin::CreateUserArgs),
}

#[derive(Debug, Subcommand)]
enum ObserverCommand {
    /// Score every main and catch trial of a study and store the judgments (re-scoring overwrites).
    Score(observer::ScoreArgs),
}

#[derive(Debug, Subcommand)]
enum StimuliCommand {
    /// A draft study of IMI-protocol trials from a network's units over an image set.
    Build(Box<stimuli::BuildArgs>),
}

#[derive(Debug, Subcommand)]
enum StudyCommand {
    /// Create a study from stimuli in an IMI dataset folder layout (trial folders or exemplar folders).
    Import(import::ImportArgs),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        match self.execute() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn execute(self) -> anyhow::Result<()> {
        let mut settings = Settings::load(self.config.as_deref())?;
        if let Some(bind) = self.bind {
            settings.bind = bind;
        }
        if let Some(dir) = self.data_dir {
            settings.data_dir = dir;
        }
        crate::telemetry::init(settings.log_format == "json");
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            match self.command {
                Command::Demo(args) => demo::run(settings, args).await,
                Command::Serve => serve::run(settings).await,
                Command::Migrate => serve::migrate_only(settings).await,
                Command::Study(StudyCommand::Import(args)) => import::run(settings, args).await,
                Command::Stimuli(StimuliCommand::Build(args)) => {
                    stimuli::build(settings, *args).await
                }
                Command::Worker => stimuli::worker(settings).await,
                Command::Participant(ParticipantCommand::Delete(args)) => {
                    participant::delete(settings, args).await
                }
                Command::Loadtest(args) => loadtest::run(args).await,
                Command::Observer(ObserverCommand::Score(args)) => {
                    observer::score(settings, args).await
                }
                Command::Export(args) => export::run(settings, args).await,
                Command::Weights(args) => {
                    blocking(move || weights::run(args, &settings.data_dir)).await
                }
                Command::Lpips(args) => {
                    blocking(move || lpips::run(args, &settings.data_dir)).await
                }
                Command::Bench(bench::BenchCommand::Vision(args)) => {
                    blocking(move || bench::vision::run(args, &settings.data_dir)).await
                }
                Command::Bench(bench::BenchCommand::Load(args)) => {
                    bench::load::run(settings, args).await
                }
                Command::Admin(AdminCommand::CreateUser(args)) => {
                    admin::create_user(settings, args).await
                }
            }
        })
    }
}

/// Compute-bound commands run off the async executor.
async fn blocking(
    work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(work).await?
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
