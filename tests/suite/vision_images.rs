use image::{DynamicImage, GrayImage, ImageFormat, Rgba, RgbaImage};
use meilab::vision::{decode_image, load_image, to_batch, Normalization, Resize};

use crate::vision_common::{noise_image, sample_images};

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).expect("encode");
    buf.into_inner()
}

#[test]
fn jpeg_png_and_webp_decode_to_the_same_rgb_pixels_where_lossless() {
    let img = DynamicImage::ImageRgb8(noise_image(17, 9, 3));
    for format in [ImageFormat::Png, ImageFormat::WebP] {
        let got = decode_image(&encode(&img, format), "x").expect("decode");
        assert_eq!(got, img.to_rgb8(), "{format:?}");
    }
    let jpeg = decode_image(&encode(&img, ImageFormat::Jpeg), "x.jpg").expect("jpeg");
    assert_eq!(jpeg.dimensions(), (17, 9));
}

#[test]
fn greyscale_and_alpha_images_become_rgb() {
    let grey =
        DynamicImage::ImageLuma8(GrayImage::from_fn(4, 4, |x, _| image::Luma([x as u8 * 60])));
    let g = decode_image(&encode(&grey, ImageFormat::Png), "grey.png").expect("grey");
    assert_eq!(g.get_pixel(2, 1).0, [120, 120, 120]);
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(3, 3, Rgba([10, 20, 30, 0])));
    let c = decode_image(&encode(&rgba, ImageFormat::Png), "alpha.png").expect("alpha");
    assert_eq!(c.get_pixel(1, 1).0, [10, 20, 30]);
}

#[test]
fn corrupt_and_truncated_images_are_errors_naming_the_file() {
    let img = DynamicImage::ImageRgb8(noise_image(32, 32, 1));
    let dir = std::env::temp_dir().join(format!("meilab-test-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (format, ext) in [
        (ImageFormat::Png, "png"),
        (ImageFormat::Jpeg, "jpg"),
        (ImageFormat::WebP, "webp"),
    ] {
        let bytes = encode(&img, format);
        for cut in [0, 3, 20, bytes.len() / 2] {
            let path = dir.join(format!("broken-{cut}.{ext}"));
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let m = load_image(&path).err().map(|e| e.to_string());
            assert!(
                m.as_deref()
                    .is_some_and(|m| m.contains(&path.display().to_string())),
                "{ext} cut at {cut}: {m:?}"
            );
        }
    }
    let missing = dir.join("missing.png");
    assert!(load_image(&missing)
        .err()
        .is_some_and(|e| e.to_string().contains("missing.png")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_imagenet_policy_and_normalisation_give_the_expected_batch() {
    let img = sample_images(1)
        .map(|v| v[0].1.clone())
        .unwrap_or_else(|| noise_image(300, 240, 5));
    let x = Resize::IMAGENET.apply(&img);
    assert_eq!(x.dimensions(), (224, 224));
    let b = to_batch(&[&x, &x], Normalization::ImageNet).expect("batch");
    assert_eq!((b.n, b.h, b.w, b.c), (2, 224, 224, 3));
    let p = x.get_pixel(0, 0).0;
    assert!((b.data[0] - (p[0] as f32 / 255.0 - 0.485) / 0.229).abs() < 1e-6);
    assert!(to_batch(
        &[noise_image(4, 4, 1), noise_image(5, 4, 1)],
        Normalization::ImageNet
    )
    .is_err());
}
