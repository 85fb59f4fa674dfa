//! `meilab bench`: benchmarks that print figures (throughput, latency, ratios), never pass/fail timings.

pub mod load;
pub mod pgbench;
pub mod vision;

pub use vision::peak_rss_mib;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The vision engine: backbone and LPIPS throughput, distance matrices, memory.
    Vision(vision::VisionArgs),
    /// The participant API under load: a fresh database and study, `meilab serve` as its own process,
    /// simulated participants; responses/s, latencies, CPU shares, and a check of what was stored.
    Load(load::LoadArgs),
}
