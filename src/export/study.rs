//! A study's analysis loaded from the database, and every export of it written to a file or folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::TryStreamExt;
use sqlx::PgPool;

use super::responses::ResponsesCsv;
use super::{tables, What};
use crate::analysis::bootstrap::RESAMPLES;
use crate::analysis::plots;
use crate::analysis::report::{self, StudyAnalysis};
use crate::db;

/// A study's analysis and the observer whose judgments it used (none when nothing was scored).
#[derive(Debug, Clone)]
pub struct Analysed {
    pub observer: Option<String>,
    pub analysis: StudyAnalysis,
    pub resamples: usize,
}

/// The observer an analysis uses: the one asked for, else the seed paper's if it scored the study,
/// else the first that did.
pub async fn pick_observer(
    pool: &PgPool,
    study_id: i64,
    wanted: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    let judged = db::judgments::observers(&mut conn, study_id).await?;
    match wanted {
        Some(name) if judged.iter().any(|o| o == name) => Ok(Some(name.to_string())),
        Some(name) => anyhow::bail!(
            "observer `{name}` has not scored this study (scored: {})",
            if judged.is_empty() {
                "none; run `meilab observer score`".to_string()
            } else {
                judged.join(", ")
            }
        ),
        None => {
            let seed = crate::observer::default_observer();
            Ok(if judged.contains(&seed) {
                Some(seed)
            } else {
                judged.into_iter().next()
            })
        }
    }
}

/// Loads the facts and computes the analysis (bootstraps off the async executor).
pub async fn analyse_study(
    pool: &PgPool,
    study_id: i64,
    observer: Option<&str>,
    resamples: usize,
) -> anyhow::Result<Analysed> {
    let observer = pick_observer(pool, study_id, observer).await?;
    let mut conn = pool.acquire().await?;
    let units = db::analysis_data::units(&mut conn, study_id).await?;
    // Without an observer no response has a score: the name matches no judgment.
    let name = observer.clone().unwrap_or_default();
    let responses = db::analysis_data::responses(&mut conn, study_id, &name).await?;
    let judgments = db::analysis_data::judgments(&mut conn, study_id, &name).await?;
    drop(conn);
    let analysis = tokio::task::spawn_blocking(move || {
        report::analyse(&units, &responses, &judgments, resamples)
    })
    .await?;
    Ok(Analysed {
        observer,
        analysis,
        resamples,
    })
}

/// Bytes of a table export buffered before they are written out.
const CHUNK_BYTES: usize = 64 * 1024;

/// Streams `responses.csv` (or, with `only_excluded`, `lower-quality.csv`) into `out`; returns the rows.
pub async fn write_responses(
    pool: &PgPool,
    study_id: i64,
    only_excluded: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<usize> {
    let observers = {
        let mut conn = pool.acquire().await?;
        db::judgments::observers(&mut conn, study_id).await?
    };
    let mut table = ResponsesCsv::new(observers.clone())?;
    let mut rows = db::response_export::rows(pool, study_id, &observers, only_excluded);
    let mut n = 0;
    while let Some(row) = rows.try_next().await? {
        table.push(&row)?;
        n += 1;
        if table.buffered() >= CHUNK_BYTES {
            out.write_all(&table.take_chunk()?)?;
        }
    }
    out.write_all(&table.take_chunk()?)?;
    out.flush()?;
    Ok(n)
}

/// The SVG figures of an analysis: `(file name, svg)`.
pub fn figures(analysed: &Analysed) -> anyhow::Result<Vec<(&'static str, String)>> {
    let a = &analysed.analysis;
    Ok(vec![
        ("roc.svg", plots::roc_svg(&a.agreement)?),
        ("auc-by-layer.svg", plots::auc_svg(&a.agreement)?),
        (
            "human-vs-model-accuracy.svg",
            plots::accuracy_svg(&a.units)?,
        ),
    ])
}

/// The bytes of a table export of an analysis (`units`, `agreement`, `roc`).
pub fn table(analysed: &Analysed, what: What) -> anyhow::Result<Vec<u8>> {
    let observer = analysed.observer.as_deref();
    Ok(match what {
        What::Units => tables::units_csv(&analysed.analysis, observer)?,
        What::Agreement => tables::agreement_csv(&analysed.analysis, observer, analysed.resamples)?,
        What::Roc => tables::roc_csv(&analysed.analysis, observer)?,
        other => anyhow::bail!("{} is not a table of the analysis", other.file_name()),
    })
}

/// Writes one export to `out` (a file, or a folder for the plots); returns what was written.
pub async fn export(
    pool: &PgPool,
    study_id: i64,
    what: What,
    out: &Path,
    observer: Option<&str>,
) -> anyhow::Result<Vec<PathBuf>> {
    let create = |path: &Path| {
        std::fs::File::create(path)
            .map(std::io::BufWriter::new)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    match what {
        What::Responses | What::LowerQuality => {
            let mut file = create(out)?;
            write_responses(pool, study_id, what == What::LowerQuality, &mut file).await?;
            Ok(vec![out.to_path_buf()])
        }
        What::Units | What::Agreement | What::Roc => {
            let analysed = analyse_study(pool, study_id, observer, RESAMPLES).await?;
            let bytes = table(&analysed, what)?;
            create(out)?.write_all(&bytes)?;
            Ok(vec![out.to_path_buf()])
        }
        What::Plots => {
            let analysed = analyse_study(pool, study_id, observer, RESAMPLES).await?;
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create the folder {}", out.display()))?;
            let mut written = Vec::new();
            for (name, svg) in figures(&analysed)? {
                let path = out.join(name);
                std::fs::write(&path, svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                written.push(path);
            }
            Ok(written)
        }
    }
}
