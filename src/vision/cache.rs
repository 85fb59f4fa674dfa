//! A feature cache: each image goes through the backbone once (batched); its LPIPS features are
//! kept in memory up to a byte budget (least recently inserted evicted first) and optionally on
//! disk, keyed by the image's SHA-256, its size and the net.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use sha2::{Digest, Sha256};

use super::error::{io_err, Result, VisionError};
use super::lpips::{Lpips, LpipsFeatures, LpipsNet};
use super::weights::hex;

/// SHA-256 of an image's file bytes, hex: the key images are stored and cached under.
pub fn image_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    net: LpipsNet,
    sha256: String,
    size: (u32, u32),
}

const MAGIC: &[u8; 8] = b"MLPIPSF1";

/// Memory-bounded LPIPS feature cache with an optional on-disk layer.
pub struct FeatureCache {
    max_bytes: usize,
    bytes: usize,
    dir: Option<PathBuf>,
    map: HashMap<Key, Arc<LpipsFeatures>>,
    order: VecDeque<Key>,
}

impl FeatureCache {
    /// `max_bytes` bounds the in-memory features; `dir`, when given, persists them.
    pub fn new(max_bytes: usize, dir: Option<PathBuf>) -> FeatureCache {
        FeatureCache {
            max_bytes,
            bytes: 0,
            dir,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Bytes of features held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    fn file(&self, k: &Key) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| {
            d.join(k.net.name())
                .join(format!("{}-{}x{}.f32", k.sha256, k.size.0, k.size.1))
        })
    }

    fn insert(&mut self, k: Key, f: Arc<LpipsFeatures>) {
        let b = f.bytes();
        if b > self.max_bytes {
            return;
        }
        while self.bytes + b > self.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(o) = self.map.remove(&old) {
                self.bytes -= o.bytes();
            }
        }
        self.bytes += b;
        self.order.push_back(k.clone());
        self.map.insert(k, f);
    }

    /// Features for `(sha256, image)` pairs, computing only the misses (in batches).
    pub fn get_or_compute(
        &mut self,
        lpips: &Lpips,
        items: &[(&str, &RgbImage)],
    ) -> Result<Vec<Arc<LpipsFeatures>>> {
        let net = lpips.net();
        let keys: Vec<Key> = items
            .iter()
            .map(|(sha, img)| Key {
                net,
                sha256: sha.to_string(),
                size: img.dimensions(),
            })
            .collect();
        let mut found: Vec<Option<Arc<LpipsFeatures>>> = Vec::with_capacity(items.len());
        for k in &keys {
            let hit = match self.map.get(k) {
                Some(f) => Some(f.clone()),
                None => match self.file(k).filter(|p| p.is_file()) {
                    Some(p) => {
                        let f = Arc::new(read_features(&p, net, k.size)?);
                        self.insert(k.clone(), f.clone());
                        Some(f)
                    }
                    None => None,
                },
            };
            found.push(hit);
        }
        // Misses, grouped by image size so each batch is uniform; duplicates computed once.
        let mut todo: Vec<usize> = Vec::new();
        for i in 0..items.len() {
            if found[i].is_none() && !todo.iter().any(|&j| keys[j] == keys[i]) {
                todo.push(i);
            }
        }
        todo.sort_by_key(|&i| keys[i].size);
        for group in todo.chunk_by(|&x, &y| keys[x].size == keys[y].size) {
            let imgs: Vec<&RgbImage> = group.iter().map(|&i| items[i].1).collect();
            let feats = lpips.features(&imgs)?;
            for (&i, f) in group.iter().zip(feats) {
                let f = Arc::new(f);
                if let Some(p) = self.file(&keys[i]) {
                    write_features(&p, &f)?;
                }
                self.insert(keys[i].clone(), f.clone());
                found[i] = Some(f);
            }
        }
        for i in 0..items.len() {
            if found[i].is_none() {
                found[i] = self.map.get(&keys[i]).cloned();
            }
        }
        found
            .into_iter()
            .zip(items)
            .map(|(f, (sha, _))| {
                f.ok_or_else(|| {
                    VisionError::Input(format!("features of image {sha} were not computed"))
                })
            })
            .collect()
    }
}

fn write_features(path: &Path, f: &LpipsFeatures) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let mut buf = Vec::with_capacity(f.data.len() * 4 + 32);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(f.data.len() as u64).to_le_bytes());
    for v in &f.data {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    let tmp = path.with_extension("partial");
    let mut file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&buf).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_features(path: &Path, net: LpipsNet, size: (u32, u32)) -> Result<LpipsFeatures> {
    let b = std::fs::read(path).map_err(io_err(path))?;
    let bad = || VisionError::Input(format!("{}: corrupt feature cache file", path.display()));
    if b.len() < 16 || &b[..8] != MAGIC {
        return Err(bad());
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&b[8..16]);
    let n = u64::from_le_bytes(n) as usize;
    if b.len() != 16 + n * 4 {
        return Err(bad());
    }
    let data = b[16..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(LpipsFeatures::new(net, size, data))
}
