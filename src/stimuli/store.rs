//! Content-addressed image files: `<root>/<sha[0..2]>/<sha>`. Stimuli are re-encoded as PNG on the
//! way in, so no file name, metadata chunk or format quirk can tell a participant which query is which.

use std::fs;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use image::{DynamicImage, ImageFormat, RgbImage};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct StoredImage {
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub byte_size: usize,
    pub mime: &'static str,
}

impl StoredImage {
    /// The row that records this image.
    pub fn row(&self) -> crate::db::images::NewImage<'_> {
        crate::db::images::NewImage {
            sha256: &self.sha256,
            width: self.width as i32,
            height: self.height as i32,
            byte_size: self.byte_size as i64,
            mime: self.mime,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `sha256`, or `None` for anything that is not a lowercase hex SHA-256.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.root.join(&sha256[..2]).join(sha256))
    }

    /// Decodes an image file's bytes and stores it as a clean PNG.
    pub fn put_stimulus(&self, bytes: &[u8], name: &str) -> anyhow::Result<StoredImage> {
        let image = image::load_from_memory(bytes)
            .with_context(|| format!("{name} is not a readable PNG, JPEG or WebP image"))?;
        self.put_rgb(&image.to_rgb8())
    }

    pub fn put_rgb(&self, image: &RgbImage) -> anyhow::Result<StoredImage> {
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(image.clone())
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .context("cannot encode PNG")?;
        let sha256 = hex::encode(Sha256::digest(&png));
        self.write_once(&sha256, &png)?;
        Ok(StoredImage {
            sha256,
            width: image.width(),
            height: image.height(),
            byte_size: png.len(),
            mime: "image/png",
        })
    }

    /// Writes through a temporary file, fsync and rename, so a crash never leaves a partial image.
    fn write_once(&self, sha256: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(sha256).context("invalid image key")?;
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().context("image path has no folder")?;
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile_in(dir)?;
        tmp.1.write_all(bytes)?;
        tmp.1.sync_all()?;
        fs::rename(&tmp.0, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

fn tempfile_in(dir: &Path) -> anyhow::Result<(PathBuf, fs::File)> {
    let path = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let file =
        fs::File::create(&path).with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok((path, file))
}

pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
