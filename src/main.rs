use clap::Parser;

fn main() -> std::process::ExitCode {
    meilab::cli::Cli::parse().run()
}
