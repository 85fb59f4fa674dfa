//! Imports of stimuli in the IMI psychophysics dataset's folder layouts:
//! - trial folders: `index.json` + `trials/trial_<k>/{queries/{max,min}.png, references/{max,min}_<i>.png}`.
//!   `catch_trial_idxs` in index.json lists the catch trials by their `k` (1-based, as IMI's
//!   create_task_structure_from_json writes them and its task.js reads them). A trial's unit is the
//!   `<layer>/channel_<u>` its source names: index.json's optional `trials` list (in `k` order; IMI's
//!   task-structure entries, with a `queries` or `references` path, or `{"layer", "channel", "model"}`),
//!   else the folder's own path; a trial nothing names is a unit of its own;
//! - exemplar folders: `<model>/<layer>/channel_<u>/natural_images/[batch_<k>/]{max,min}_{0..9}.png`,
//!   where the `_9` images are the queries and `_0.._8` the references.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use serde::Deserialize;

use super::store::ImageStore;
use super::{StimulusSet, TrialKind, TrialSpec, UnitSpec};

/// Queries are the exemplars of this rank in the exemplar layout; ranks below it are references.
const QUERY_RANK: u32 = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    TrialFolders,
    ExemplarFolders,
}

pub struct Imported {
    pub layout: Layout,
    pub set: StimulusSet,
}

pub fn detect(root: &Path) -> anyhow::Result<Layout> {
    ensure!(root.is_dir(), "{} is not a folder", root.display());
    if root.join("index.json").is_file() {
        return Ok(Layout::TrialFolders);
    }
    if !channel_dirs(root)?.is_empty() {
        return Ok(Layout::ExemplarFolders);
    }
    bail!(
        "{} holds neither IMI layout: expected index.json + trials/trial_<k>/ or \
         <layer>/channel_<u>/natural_images/",
        root.display()
    )
}

/// Reads either layout under `root`, storing every image; `model` names the network for trial folders.
pub fn import(root: &Path, model: &str, store: &ImageStore) -> anyhow::Result<Imported> {
    let layout = detect(root)?;
    let mut importer = Importer {
        store,
        set: StimulusSet::default(),
    };
    match layout {
        Layout::TrialFolders => importer.trial_folders(root, model)?,
        Layout::ExemplarFolders => importer.exemplar_folders(root)?,
    }
    ensure!(
        !importer.set.trials.is_empty(),
        "no trials found under {}",
        root.display()
    );
    Ok(Imported {
        layout,
        set: importer.set,
    })
}

#[derive(Deserialize)]
struct TrialIndex {
    task_name: String,
    n_trials: Option<serde_json::Value>,
    /// 1-based trial numbers `k` of `trial_<k>`.
    #[serde(default)]
    catch_trial_idxs: Vec<serde_json::Value>,
    /// Where each trial came from, in `k` order.
    #[serde(default)]
    trials: Vec<TrialSource>,
}

/// A trial's source: IMI's task-structure entry (`queries`, `references`, `mode`) or its unit named.
#[derive(Deserialize, Default)]
struct TrialSource {
    model: Option<String>,
    layer: Option<String>,
    channel: Option<serde_json::Value>,
    queries: Option<String>,
    references: Option<String>,
    mode: Option<String>,
}

/// A unit as a path names it: `[<model>/]<layer>/channel_<u>[/.../batch_<k>]`.
#[derive(Debug, PartialEq)]
struct NamedUnit {
    model: Option<String>,
    layer: String,
    channel: u32,
    batch: Option<u32>,
}

fn unit_in_path(path: &str) -> Option<NamedUnit> {
    let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
    let at = parts.iter().rposition(|p| {
        p.strip_prefix("channel_")
            .is_some_and(|c| c.parse::<u32>().is_ok())
    })?;
    let channel = parts[at].strip_prefix("channel_")?.parse().ok()?;
    let layer = parts.get(at.checked_sub(1)?)?.to_string();
    let model = at
        .checked_sub(2)
        .and_then(|i| parts.get(i))
        .map(|m| m.to_string());
    let batch = parts[at..]
        .iter()
        .find_map(|p| p.strip_prefix("batch_").and_then(|b| b.parse().ok()));
    Some(NamedUnit {
        model,
        layer,
        channel,
        batch,
    })
}

impl TrialSource {
    fn unit(&self, k: u32) -> anyhow::Result<Option<NamedUnit>> {
        if let Some(layer) = &self.layer {
            let channel = self
                .channel
                .as_ref()
                .and_then(number)
                .and_then(|c| u32::try_from(c).ok())
                .with_context(|| {
                    format!("index.json: trial {k} names layer {layer} but no channel number")
                })?;
            return Ok(Some(NamedUnit {
                model: self.model.clone(),
                layer: layer.clone(),
                channel,
                batch: None,
            }));
        }
        Ok([&self.queries, &self.references]
            .into_iter()
            .flatten()
            .find_map(|p| unit_in_path(p))
            .map(|u| NamedUnit {
                model: self.model.clone().or(u.model),
                ..u
            }))
    }
}

struct Importer<'a> {
    store: &'a ImageStore,
    set: StimulusSet,
}

impl Importer<'_> {
    fn trial_folders(&mut self, root: &Path, model: &str) -> anyhow::Result<()> {
        let index_path = root.join("index.json");
        let index: TrialIndex = serde_json::from_slice(&fs::read(&index_path)?)
            .with_context(|| format!("{} is not a valid IMI index", index_path.display()))?;
        let trials = numbered_entries(&root.join("trials"), "trial_")?;
        if let Some(expected) = index.n_trials.as_ref().and_then(number) {
            ensure!(
                expected as usize == trials.len(),
                "{} announces {expected} trials but {} trial folders exist",
                index_path.display(),
                trials.len()
            );
        }
        ensure!(
            index.trials.is_empty() || index.trials.len() == trials.len(),
            "{} describes {} trials in `trials` but {} trial folders exist",
            index_path.display(),
            index.trials.len(),
            trials.len()
        );
        let numbers: Vec<u32> = trials.iter().map(|(k, _)| *k).collect();
        let mut catch = Vec::new();
        for value in &index.catch_trial_idxs {
            let k = number(value)
                .and_then(|k| u32::try_from(k).ok())
                .filter(|k| numbers.contains(k))
                .with_context(|| {
                    format!(
                        "{}: catch_trial_idxs names trial {value}, but the trial folders are trial_{} \
                         to trial_{} (the indices count from 1, as the folders do)",
                        index_path.display(),
                        numbers.first().unwrap_or(&0),
                        numbers.last().unwrap_or(&0)
                    )
                })?;
            catch.push(k);
        }
        let folder_unit = unit_in_path(&root.canonicalize()?.to_string_lossy());
        for (position, (k, dir)) in trials.into_iter().enumerate() {
            let source = index.trials.get(position);
            let named = match source {
                Some(source) => source.unit(k)?,
                None => None,
            };
            let is_catch = catch.contains(&k)
                || source.is_some_and(|s| s.mode.as_deref() == Some("catch_trial"));
            let (unit, batch) = match named.as_ref().or(folder_unit.as_ref()) {
                Some(u) => (
                    self.unit(
                        u.model.as_deref().unwrap_or(model),
                        &u.layer,
                        u.channel as i32,
                    ),
                    u.batch.unwrap_or(0),
                ),
                // Nothing names the unit: the trial stands for a unit of its own.
                None => (self.unit(model, &index.task_name, k as i32), 0),
            };
            let references = dir.join("references");
            let trial = TrialSpec {
                unit,
                kind: if is_catch {
                    TrialKind::Catch
                } else {
                    TrialKind::Main
                },
                condition: if is_catch { "catch" } else { "imported" }.into(),
                batch: batch as i32,
                max_query: self.image(&dir.join("queries/max.png"))?,
                min_query: self.image(&dir.join("queries/min.png"))?,
                max_refs: self.ranked(&references, "max_", None)?,
                min_refs: self.ranked(&references, "min_", None)?,
            };
            self.push(trial, &dir)?;
        }
        // IMI's catch units come from their own folder; one shared with main trials would bias it.
        for (u, spec) in self.set.units.iter().enumerate() {
            let kinds: Vec<TrialKind> = self
                .set
                .trials
                .iter()
                .filter(|t| t.unit == u)
                .map(|t| t.kind)
                .collect();
            ensure!(
                !(kinds.contains(&TrialKind::Main) && kinds.contains(&TrialKind::Catch)),
                "{}: unit {} channel {} has both main and catch trials; catch trials must show \
                 units of their own",
                index_path.display(),
                spec.tap,
                spec.index
            );
        }
        Ok(())
    }

    fn exemplar_folders(&mut self, root: &Path) -> anyhow::Result<()> {
        for channel_dir in channel_dirs(root)? {
            let channel = numeric_suffix(&channel_dir, "channel_").context("channel folder")?;
            let layer_dir = channel_dir
                .parent()
                .context("channel folder has no layer")?;
            let model = layer_dir
                .parent()
                .and_then(|p| p.file_name())
                .map_or("imported".into(), |n| n.to_string_lossy().into_owned());
            let unit = self.unit(&model, &file_name(layer_dir), channel as i32);
            let natural = channel_dir.join("natural_images");
            let batches = numbered_entries(&natural, "batch_")?;
            let batches = if batches.is_empty() {
                vec![(0, natural)]
            } else {
                batches
            };
            for (batch, dir) in batches {
                let trial = TrialSpec {
                    unit,
                    kind: TrialKind::Main,
                    condition: "imported".into(),
                    batch: batch as i32,
                    max_query: self.image(&dir.join(format!("max_{QUERY_RANK}.png")))?,
                    min_query: self.image(&dir.join(format!("min_{QUERY_RANK}.png")))?,
                    max_refs: self.ranked(&dir, "max_", Some(QUERY_RANK))?,
                    min_refs: self.ranked(&dir, "min_", Some(QUERY_RANK))?,
                };
                self.push(trial, &dir)?;
            }
        }
        Ok(())
    }

    fn unit(&mut self, model: &str, tap: &str, index: i32) -> usize {
        let spec = UnitSpec {
            model: model.into(),
            tap: tap.into(),
            basis: "neuron".into(),
            index,
            ..Default::default()
        };
        match self.set.units.iter().position(|u| u == &spec) {
            Some(i) => i,
            None => {
                self.set.units.push(spec);
                self.set.units.len() - 1
            }
        }
    }

    fn push(&mut self, trial: TrialSpec, dir: &Path) -> anyhow::Result<()> {
        ensure!(
            !trial.max_refs.is_empty() && trial.max_refs.len() == trial.min_refs.len(),
            "{}: {} max and {} min references (need the same number, at least one)",
            dir.display(),
            trial.max_refs.len(),
            trial.min_refs.len()
        );
        let refs = || trial.max_refs.iter().chain(&trial.min_refs);
        ensure!(
            trial.max_query != trial.min_query
                && !refs().any(|r| r == &trial.max_query || r == &trial.min_query),
            "{}: a query image is also a reference or the two queries are identical",
            dir.display()
        );
        self.set.trials.push(trial);
        Ok(())
    }

    fn image(&mut self, path: &Path) -> anyhow::Result<String> {
        let bytes = fs::read(path).with_context(|| format!("missing image {}", path.display()))?;
        let stored = self
            .store
            .put_stimulus(&bytes, &path.display().to_string())?;
        let sha = stored.sha256.clone();
        if !self.set.images.iter().any(|i| i.sha256 == sha) {
            self.set.images.push(stored);
        }
        Ok(sha)
    }

    /// `<prefix><i>.png` files in rank order, skipping rank `skip`; indices need not start at 0.
    fn ranked(
        &mut self,
        dir: &Path,
        prefix: &str,
        skip: Option<u32>,
    ) -> anyhow::Result<Vec<String>> {
        let mut ranked: Vec<(u32, PathBuf)> = fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let stem = path.file_stem()?.to_str()?;
                let rank = stem.strip_prefix(prefix)?.parse().ok()?;
                (path.extension()? == "png" && Some(rank) != skip).then_some((rank, path))
            })
            .collect();
        ranked.sort();
        ranked.iter().map(|(_, path)| self.image(path)).collect()
    }
}

/// Every `channel_<u>` folder below `root` that has a `natural_images` folder, in path order.
fn channel_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            if numeric_suffix(&path, "channel_").is_some() && path.join("natural_images").is_dir() {
                found.push(path);
            } else {
                pending.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Sub-folders named `<prefix><k>`, sorted by k; empty if `dir` does not exist.
fn numbered_entries(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(u32, PathBuf)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut entries: Vec<(u32, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .filter_map(|p| Some((numeric_suffix(&p, prefix)?, p)))
        .collect();
    entries.sort();
    Ok(entries)
}

fn numeric_suffix(path: &Path, prefix: &str) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix(prefix)?
        .parse()
        .ok()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// `n_trials` is a number or a numeric string in the wild.
fn number(value: &serde_json::Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_model_layer_channel_and_batch() {
        assert_eq!(
            unit_in_path("/stimuli/googlenet/mixed4a/channel_12/natural_images/batch_2"),
            Some(NamedUnit {
                model: Some("googlenet".into()),
                layer: "mixed4a".into(),
                channel: 12,
                batch: Some(2),
            })
        );
        assert_eq!(
            unit_in_path("conv2/channel_5").map(|u| (u.model, u.layer, u.channel)),
            Some((None, "conv2".into(), 5))
        );
        assert_eq!(unit_in_path("/data/trials/trial_3"), None);
        assert_eq!(unit_in_path("channel_3"), None);
    }
}
