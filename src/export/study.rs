//! A study's analysis loaded from the database, and every export of it written to a file or folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::TryStreamExt;
use sqlx::PgPool;

use super::responses::ResponsesCsv;
use super::{tables, What};
use crate::analysis::bootstrap::RESAMPLES;
use crate::analysis::plots::{self, AucPoint};
use crate::analysis::report::{
    self, AgreementRow, ResponseFact, StudyAnalysis, TrialJudgment, UnitInfo,
};
use crate::db;
use crate::study::config::Construction;

/// A study's analysis, the observer whose judgments give the units' model accuracy (none when nothing
/// was scored), and what the reader must know about how the study was built.
#[derive(Debug, Clone)]
pub struct Analysed {
    pub observer: Option<String>,
    pub analysis: StudyAnalysis,
    pub resamples: usize,
    /// Main units that also served as practice or catch units (studies built before they were held out).
    pub units_also_practice_or_catch: i64,
    /// How the stimuli were built: overrides and choices the numbers depend on.
    pub construction: Construction,
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

/// Loads the facts and computes the analysis (bootstraps off the async executor). Agreement covers
/// the observer asked for, or every observer that scored the study.
pub async fn analyse_study(
    pool: &PgPool,
    study_id: i64,
    observer: Option<&str>,
    resamples: usize,
) -> anyhow::Result<Analysed> {
    let primary = pick_observer(pool, study_id, observer).await?;
    let mut conn = pool.acquire().await?;
    let observers = match observer {
        Some(name) => vec![name.to_string()],
        None => db::judgments::observers(&mut conn, study_id).await?,
    };
    let units: Vec<UnitInfo> = db::analysis_data::units(&mut conn, study_id)
        .await?
        .into_iter()
        .map(|r| UnitInfo {
            id: r.id,
            model: r.model,
            tap: r.tap,
            basis: r.basis,
            unit_index: r.unit_index,
            ii: r.ii,
        })
        .collect();
    let responses: Vec<ResponseFact> = db::analysis_data::responses(&mut conn, study_id)
        .await?
        .into_iter()
        .map(|r| ResponseFact {
            unit_id: r.unit_id,
            session_id: r.session_id,
            trial_id: r.trial_id,
            condition: r.condition,
            correct: r.correct,
            max_first: r.max_first,
        })
        .collect();
    let judgments: Vec<TrialJudgment> =
        db::analysis_data::judgments(&mut conn, study_id, &observers)
            .await?
            .into_iter()
            .map(|r| TrialJudgment {
                observer: r.observer,
                trial_id: r.trial_id,
                unit_id: r.unit_id,
                score: r.score,
                correct: r.correct,
            })
            .collect();
    let overlap = db::analysis_data::units_also_practice_or_catch(&mut conn, study_id).await?;
    let construction = crate::study::by_id(&mut conn, study_id)
        .await?
        .map(|s| s.config.construction)
        .unwrap_or_default();
    drop(conn);
    let name = primary.clone();
    let analysis = tokio::task::spawn_blocking(move || {
        report::analyse(&units, &responses, &judgments, name.as_deref(), resamples)
    })
    .await?;
    Ok(Analysed {
        observer: primary,
        analysis,
        resamples,
        units_also_practice_or_catch: overlap,
        construction,
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

/// The SVG figures of an analysis: `(file name, title, svg)`.
pub fn figures(analysed: &Analysed) -> anyhow::Result<Vec<(&'static str, &'static str, String)>> {
    let a = &analysed.analysis;
    let primary = analysed.observer.as_deref().unwrap_or_default();
    let strata: Vec<&AgreementRow> = a.agreement_of(primary, false).collect();
    let by_stratum: Vec<AucPoint> = strata
        .iter()
        .flat_map(|r| {
            [
                (
                    "auc_correct",
                    r.agreement.auc_correct,
                    r.agreement.ci_correct,
                ),
                ("auc_choice", r.agreement.auc_choice, r.agreement.ci_choice),
            ]
            .map(|(series, auc, ci)| AucPoint {
                x: r.name(),
                series: series.to_string(),
                auc,
                ci,
            })
        })
        .collect();
    let by_observer: Vec<AucPoint> = a
        .agreement
        .iter()
        .filter(|r| r.summary)
        .map(|r| AucPoint {
            x: r.layer(),
            series: r.observer.clone(),
            auc: r.agreement.auc_correct,
            ci: r.agreement.ci_correct,
        })
        .collect();
    Ok(vec![
        ("roc.svg", "ROC per stratum", plots::roc_svg(&strata)?),
        (
            "auc-by-stratum.svg",
            "Agreement by stratum",
            plots::auc_svg(
                "Agreement AUC by layer x basis x condition (95 % CI)",
                "stratum",
                &by_stratum,
            )?,
        ),
        (
            "auc-by-layer-and-observer.svg",
            "Agreement by studied layer and observer",
            plots::auc_svg(
                "Stratified auc_correct by studied layer and observer (95 % CI)",
                "studied layer",
                &by_observer,
            )?,
        ),
        (
            "human-vs-model-accuracy.svg",
            "Human vs model accuracy",
            plots::accuracy_svg(&a.units)?,
        ),
    ])
}

/// The bytes of a table export of an analysis (`units`, `agreement`, `roc`).
pub fn table(analysed: &Analysed, what: What) -> anyhow::Result<Vec<u8>> {
    Ok(match what {
        What::Units => tables::units_csv(analysed)?,
        What::Agreement => tables::agreement_csv(&analysed.analysis, analysed.resamples)?,
        What::Roc => tables::roc_csv(&analysed.analysis)?,
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
            for (name, _, svg) in figures(&analysed)? {
                let path = out.join(name);
                std::fs::write(&path, svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                written.push(path);
            }
            Ok(written)
        }
    }
}
