//! Image loading and preprocessing: decode (JPEG / PNG / WebP), convert to RGB, resize / crop by an
//! explicit policy, and normalise into an NHWC batch.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, Limits, RgbImage};

use super::conv::Fmap;
use super::error::{io_err, Result, VisionError};

/// Largest accepted image side; bigger files are rejected before decoding.
pub const MAX_SIDE: u32 = 16_384;

/// Decodes image bytes into RGB. Greyscale is replicated to three channels; alpha is dropped
/// (as PIL's `convert("RGB")` does). `name` identifies the image in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let fail = |reason: String| VisionError::Image {
        name: name.to_string(),
        reason,
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?;
    if reader.format().is_none() {
        return Err(fail(
            "unknown image format (expected JPEG, PNG or WebP)".into(),
        ));
    }
    // The JPEG decoder fills a cut-off scan with grey; a missing end-of-image marker means truncation.
    if reader.format() == Some(ImageFormat::Jpeg)
        && !bytes
            .windows(2)
            .rev()
            .take(1 << 16)
            .any(|w| w == [0xFF, 0xD9])
    {
        return Err(fail("truncated JPEG (no end-of-image marker)".into()));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| fail(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(fail("empty image".into()));
    }
    Ok(img.to_rgb8())
}

/// Reads and decodes an image file.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    decode_image(&bytes, &path.display().to_string())
}

/// How images are brought to the network's input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// Use the image as it is.
    Keep,
    /// Scale to exactly this width and height (aspect ratio not kept).
    Exact { width: u32, height: u32 },
    /// torchvision's `Resize(resize)` then `CenterCrop(crop)`: shorter side to `resize`, centre crop.
    ShorterSideThenCrop { resize: u32, crop: u32 },
}

impl Resize {
    /// The ImageNet evaluation policy: shorter side 256, centre crop 224.
    pub const IMAGENET: Resize = Resize::ShorterSideThenCrop {
        resize: 256,
        crop: 224,
    };

    pub fn apply(&self, img: &RgbImage) -> RgbImage {
        match *self {
            Resize::Keep => img.clone(),
            Resize::Exact { width, height } => {
                if img.dimensions() == (width, height) {
                    img.clone()
                } else {
                    image::imageops::resize(img, width.max(1), height.max(1), FilterType::Triangle)
                }
            }
            Resize::ShorterSideThenCrop { resize, crop } => {
                let (w, h) = img.dimensions();
                let scale = resize as f64 / w.min(h) as f64;
                let (nw, nh) = (
                    ((w as f64 * scale).round() as u32).max(crop),
                    ((h as f64 * scale).round() as u32).max(crop),
                );
                let scaled = if (nw, nh) == (w, h) {
                    img.clone()
                } else {
                    image::imageops::resize(img, nw, nh, FilterType::Triangle)
                };
                let (x, y) = ((nw - crop) / 2, (nh - crop) / 2);
                image::imageops::crop_imm(&scaled, x, y, crop, crop).to_image()
            }
        }
    }
}

/// Value mapping from 8-bit RGB to network input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// `(x / 255 - mean) / std` with ImageNet's mean and std (torchvision backbones).
    ImageNet,
    /// `x / 127.5 - 1`, i.e. [-1, 1] (LPIPS input; its scaling layer follows inside `Lpips`).
    MinusOneToOne,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Stacks same-sized RGB images into a normalised NHWC batch.
pub fn to_batch<I: std::borrow::Borrow<RgbImage>>(
    images: &[I],
    norm: Normalization,
) -> Result<Fmap> {
    let first = images
        .first()
        .ok_or_else(|| VisionError::Input("empty image batch".into()))?
        .borrow();
    let (w, h) = first.dimensions();
    let mut data = Vec::with_capacity(images.len() * (w * h * 3) as usize);
    for (i, img) in images.iter().enumerate() {
        let img = img.borrow();
        if img.dimensions() != (w, h) {
            return Err(VisionError::Input(format!(
                "image {i} is {}x{}, the batch is {w}x{h}; resize first",
                img.width(),
                img.height()
            )));
        }
        match norm {
            Normalization::ImageNet => {
                for px in img.pixels() {
                    for c in 0..3 {
                        data.push((px[c] as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]);
                    }
                }
            }
            Normalization::MinusOneToOne => {
                data.extend(img.as_raw().iter().map(|&v| v as f32 / 127.5 - 1.0))
            }
        }
    }
    Ok(Fmap {
        n: images.len(),
        h: h as usize,
        w: w as usize,
        c: 3,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_bytes_are_an_error_naming_the_image() {
        let e = decode_image(b"not an image at all", "cat.jpg")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("cat.jpg")));
    }

    #[test]
    fn shorter_side_then_crop_gives_a_square_of_the_crop_size() {
        let img = RgbImage::new(300, 200);
        let out = Resize::IMAGENET.apply(&img);
        assert_eq!(out.dimensions(), (224, 224));
    }

    #[test]
    fn minus_one_to_one_maps_the_byte_range() {
        let mut img = RgbImage::new(1, 1);
        img.put_pixel(0, 0, image::Rgb([0, 255, 128]));
        let b = to_batch(&[img], Normalization::MinusOneToOne).expect("batch");
        assert_eq!(b.data[0], -1.0);
        assert_eq!(b.data[1], 1.0);
    }
}
