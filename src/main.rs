use clap::Parser;

// Many small allocations per request (JSON, URLs): glibc's allocator was a measurable share of server CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    meilab::cli::Cli::parse().run()
}
