//! `meilab lpips A B [--net alex|vgg|squeeze]`: prints the LPIPS v0.1 distance.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::vision::{load_image, Lpips, LpipsNet, Resize};

#[derive(clap::Args, Debug)]
pub struct LpipsArgs {
    /// First image.
    pub a: PathBuf,
    /// Second image (same size as the first, unless --size is given).
    pub b: PathBuf,
    /// Backbone: alex, vgg or squeeze.
    #[arg(long, default_value = "alex")]
    pub net: LpipsNet,
    /// Resize both images to SIZE x SIZE first.
    #[arg(long)]
    pub size: Option<u32>,
}

pub fn run(args: LpipsArgs, data_dir: &Path) -> anyhow::Result<()> {
    let lpips = Lpips::from_data_dir(args.net, data_dir)?;
    let (mut a, mut b) = (load_image(&args.a)?, load_image(&args.b)?);
    if let Some(s) = args.size {
        let p = Resize::Exact {
            width: s,
            height: s,
        };
        (a, b) = (p.apply(&a), p.apply(&b));
    }
    if a.dimensions() != b.dimensions() {
        bail!(
            "{} is {:?} and {} is {:?}; LPIPS compares same-sized images (use --size N)",
            args.a.display(),
            a.dimensions(),
            args.b.display(),
            b.dimensions()
        );
    }
    println!("{:.6}", lpips.distance(&a, &b)?);
    Ok(())
}
