//! Exports of a study with real answers and observer judgments: the per-layer agreement recomputed from
//! `responses.csv` alone, every CSV readable with a header and with user text neutralised, the excluded
//! sessions' rows, the plots, and the results page.

use std::collections::BTreeMap;
use std::path::Path;

use meilab::accounts::Role;
use meilab::export::{study as export_study, What};
use meilab::observer::{self, ScoreOptions};
use meilab::progress::Silent;
use serde_json::json;

use crate::common::studies::{lenient, no_practice_study};
use crate::common::{spawn_app, Participant, TestApp};
use crate::vision_common;

/// Tap and condition names as an import could bring them: spreadsheet formulas.
const TAP: &str = "=cmd|' /C calc'!A0";
const CONDITION: &str = "@hard";

/// A scored study answered by eight careful participants (catch trials right, main trials right about
/// three times in four) and one careless one, who is excluded.
async fn answered_study(app: &TestApp) -> i64 {
    let id = app
        .create_synthetic_study("exported", no_practice_study(lenient()))
        .await;
    for sql in [
        "UPDATE units SET tap = $1 WHERE tap = 'colour'",
        "UPDATE trials SET condition = $1 WHERE condition = 'hard'",
    ] {
        let value = if sql.contains("units") {
            TAP
        } else {
            CONDITION
        };
        sqlx::query(sql)
            .bind(value)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let options = ScoreOptions::new(vision_common::weights_dir());
    observer::score_study(&app.pool, &app.store, id, &options, &Silent)
        .await
        .expect("scoring");

    for who in 0..8i64 {
        let p = app
            .participant("exported", json!({"external_id": format!("careful-{who}")}))
            .await;
        p.consent_and_read_instructions().await;
        while let Some(trial) = p.next_trial().await {
            let position = trial["position"].as_i64().unwrap();
            let max = p.max_index(position).await;
            let right = app.kind_at(&p.token, position).await == "catch"
                || (who * 7 + position * 3) % 4 != 0;
            let chosen = if right { max } else { 1 - max };
            let (status, reply) = p.answer(Participant::answer_body(position, chosen)).await;
            assert_eq!(status, 200, "{reply}");
        }
        assert_eq!(p.finish(json!({"feedback": "=1+1"})).await.0, 200);
    }
    let careless = app
        .participant("exported", json!({"external_id": "careless"}))
        .await;
    careless.consent_and_read_instructions().await;
    careless.answer_everything_wrong().await;
    assert_eq!(careless.finish(json!({})).await.0, 200);
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE excluded")
            .await,
        1
    );
    id
}

fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_string)
        .collect();
    assert!(!header.is_empty() && header.iter().all(|h| !h.is_empty()));
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed record");
            assert_eq!(r.len(), header.len());
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_string))
                .collect()
        })
        .collect();
    (header, rows)
}

/// No cell could run as a formula: text never starts with = + @, and a leading - is a number's sign.
fn assert_neutral(name: &str, rows: &[BTreeMap<String, String>]) {
    for row in rows {
        for (column, value) in row {
            let first = value.chars().next();
            assert!(
                !matches!(first, Some('=' | '+' | '@' | '\t' | '\r')),
                "{name}: {column} = {value:?}"
            );
            if first == Some('-') {
                assert!(value.parse::<f64>().is_ok(), "{name}: {column} = {value:?}");
            }
        }
    }
}

async fn export(app: &TestApp, id: i64, what: What, dir: &Path) -> Vec<u8> {
    let path = dir.join(what.file_name());
    export_study::export(&app.pool, id, what, &path, None)
        .await
        .expect("export");
    std::fs::read(path).expect("exported file")
}

/// The Mann-Whitney AUC by counting every (right, wrong) pair: 1 when the right answer's trial carries
/// more evidence, 1/2 on a tie.
fn pair_count_auc(right: &[f64], wrong: &[f64]) -> f64 {
    let mut total = 0.0;
    for r in right {
        for w in wrong {
            total += if r > w {
                1.0
            } else if r == w {
                0.5
            } else {
                0.0
            };
        }
    }
    total / (right.len() * wrong.len()) as f64
}

/// One stratum's responses from responses.csv: (evidence, human right, human chose top, max on top),
/// and the sum of the observer's correctness.
#[derive(Default)]
struct Stratum(Vec<(f64, bool, bool, bool)>, f64);

/// auc_correct (s predicts right) or auc_choice (signed s predicts chose top) by pair counting, as
/// (AUC x pairs, pairs) so that strata pool by summing both.
fn stratum_auc(s: &Stratum, choice: bool) -> (f64, f64) {
    let points: Vec<(f64, bool)> =
        s.0.iter()
            .map(|&(score, right, top, max_top)| {
                if choice {
                    (if max_top { score } else { -score }, top)
                } else {
                    (score, right)
                }
            })
            .collect();
    let pos: Vec<f64> = points.iter().filter(|p| p.1).map(|p| p.0).collect();
    let neg: Vec<f64> = points.iter().filter(|p| !p.1).map(|p| p.0).collect();
    if pos.is_empty() || neg.is_empty() {
        return (0.0, 0.0);
    }
    let pairs = (pos.len() * neg.len()) as f64;
    (pair_count_auc(&pos, &neg) * pairs, pairs)
}

#[tokio::test]
async fn agreement_recomputed_from_responses_csv_alone_matches_agreement_csv() {
    let app = spawn_app().await;
    let id = answered_study(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, responses) = read_csv(&export(&app, id, What::Responses, dir.path()).await);
    let (_, agreement) = read_csv(&export(&app, id, What::Agreement, dir.path()).await);

    // Valid: main trials of completed sessions that were not excluded; strata are layer x basis x
    // condition.
    let mut strata: BTreeMap<(String, String, String, String), Stratum> = BTreeMap::new();
    for r in &responses {
        if r["kind"] != "main"
            || r["session_excluded"] != "false"
            || r["session_stage"] != "complete"
        {
            continue;
        }
        let score: f64 = r["score:lpips-alex/max-set"].parse().expect("scored");
        let model_correct: f64 = r["correct:lpips-alex/max-set"].parse().unwrap();
        let max_top = r["query_order"] == "max,min";
        let top = r["chosen"] == "0";
        let stratum = strata
            .entry((
                r["model"].clone(),
                r["tap"].clone(),
                r["basis"].clone(),
                r["condition"].clone(),
            ))
            .or_default();
        stratum
            .0
            .push((score, r["correct"] == "true", top, max_top));
        stratum.1 += model_correct;
    }
    let layers: std::collections::BTreeSet<(String, String)> = strata
        .keys()
        .map(|(m, t, _, _)| (m.clone(), t.clone()))
        .collect();
    assert!(layers.len() >= 3, "{layers:?}");
    assert!(
        strata.len() > layers.len(),
        "the synthetic study has two conditions per layer"
    );
    assert_eq!(agreement.len(), strata.len() + layers.len());
    for row in &agreement {
        assert_eq!(row["observer"], "lpips-alex/max-set");
        assert!(row["resampled"].contains("units and participants"));
        let key = (row["model"].clone(), row["tap"].clone());
        // The stratum itself, or for a summary every stratum of the layer.
        let mine: Vec<&Stratum> = if row["row"] == "stratified summary" {
            assert_eq!(
                (row["basis"].as_str(), row["condition"].as_str()),
                ("all", "all")
            );
            strata
                .iter()
                .filter(|(k, _)| (k.0.clone(), k.1.clone()) == key)
                .map(|(_, s)| s)
                .collect()
        } else {
            assert_eq!(row["row"], "stratum");
            vec![&strata[&(key.0, key.1, row["basis"].clone(), row["condition"].clone())]]
        };
        let n: usize = mine.iter().map(|s| s.0.len()).sum();
        let right = mine.iter().flat_map(|s| &s.0).filter(|p| p.1).count();
        let model_correct: f64 = mine.iter().map(|s| s.1).sum();
        assert_eq!(row["n_responses"].parse::<usize>().unwrap(), n);
        for (column, choice) in [("auc_correct", false), ("auc_choice", true)] {
            let (u, pairs) = mine
                .iter()
                .map(|s| stratum_auc(s, choice))
                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            if pairs == 0.0 {
                assert_eq!(row[column], "", "{row:?}");
                continue;
            }
            let auc: f64 = row[column].parse().unwrap();
            assert!(
                (auc - u / pairs).abs() < 1e-9,
                "{column} {row:?}: {}",
                u / pairs
            );
            let (low, high): (f64, f64) = (
                row[&format!("{column}_ci_low")].parse().unwrap(),
                row[&format!("{column}_ci_high")].parse().unwrap(),
            );
            assert!(low <= high && (0.0..=1.0).contains(&low), "{row:?}");
        }
        let human: f64 = row["human_accuracy"].parse().unwrap();
        assert!((human - right as f64 / n as f64).abs() < 1e-9);
        let model: f64 = row["model_accuracy"].parse().unwrap();
        assert!((model - model_correct / n as f64).abs() < 1e-9);
    }
    // The crafted tap name is a layer of its own, neutralised.
    assert!(agreement.iter().any(|r| r["tap"] == format!("'{TAP}")));
}

#[tokio::test]
async fn every_export_parses_with_a_header_and_neutralised_user_text() {
    let app = spawn_app().await;
    let id = answered_study(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    for what in [
        What::Responses,
        What::Units,
        What::Agreement,
        What::Roc,
        What::LowerQuality,
    ] {
        let (header, rows) = read_csv(&export(&app, id, what, dir.path()).await);
        assert!(!rows.is_empty(), "{} has rows", what.file_name());
        assert_neutral(what.file_name(), &rows);
        files.insert(what.file_name(), (header, rows));
    }
    let (header, responses) = &files["responses.csv"];
    assert_eq!(header[0], "session");
    assert!(header.contains(&"choice:lpips-alex/max-set".to_string()));
    assert!(responses.iter().any(|r| r["tap"] == format!("'{TAP}")));
    assert!(responses
        .iter()
        .any(|r| r["condition"] == format!("'{CONDITION}")));
    assert_eq!(
        responses.len() as i64,
        app.count("SELECT count(*) FROM responses").await
    );
    let units = &files["units.csv"].1;
    assert_eq!(
        units.len() as i64,
        app.count("SELECT count(DISTINCT unit_id) FROM trials WHERE kind = 'main'")
            .await
    );
    assert!(units.iter().any(|r| r["tap"] == format!("'{TAP}")));
    assert!(files["roc.csv"].1.iter().any(|r| r["threshold"] == "inf"));

    // Lower quality: the excluded session's responses only, with its reasons.
    let lower = &files["lower-quality.csv"].1;
    let excluded = app
        .count("SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id WHERE s.excluded")
        .await;
    assert_eq!(lower.len() as i64, excluded);
    assert!(lower
        .iter()
        .all(|r| r["session_excluded"] == "true"
            && r["exclusion_reasons"].contains("catch_accuracy")));

    // The dashboard serves the same tables to a researcher.
    app.create_account("rita", Role::Researcher).await;
    let rita = app.login("rita").await;
    for name in [
        "responses.csv",
        "units.csv",
        "agreement.csv",
        "roc.csv",
        "lower-quality.csv",
    ] {
        let response = rita.get(&format!("/admin/studies/{id}/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let body = response.bytes().await.unwrap();
        let (header, rows) = read_csv(&body);
        assert_eq!(header, files[name].0, "{name}");
        assert_eq!(rows.len(), files[name].1.len(), "{name}");
        assert_neutral(name, &rows);
    }
    let anonymous = app.get(&format!("/admin/studies/{id}/units.csv")).await;
    assert_ne!(anonymous.status(), 200, "downloads need a login");
}

#[tokio::test]
async fn plots_are_written_and_the_results_page_shows_the_analysis() {
    let app = spawn_app().await;
    let id = answered_study(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plots");
    let written = export_study::export(&app.pool, id, What::Plots, &out, None)
        .await
        .unwrap();
    assert_eq!(written.len(), 4);
    for path in &written {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("</svg>"),
            "{}",
            path.display()
        );
    }
    let roc = std::fs::read_to_string(out.join("roc.svg")).unwrap();
    assert!(
        roc.contains("synthetic/orientation · synthetic · easy (AUC"),
        "legend names the strata"
    );

    app.create_account("rita", Role::Researcher).await;
    let rita = app.login("rita").await;
    let (status, html) = rita.text(&format!("/admin/studies/{id}/results")).await;
    assert_eq!(status, 200);
    assert!(html.contains("data-testid=\"agreement-table\""));
    assert!(html.contains("data-testid=\"stratified-summary\""));
    assert!(html.contains("data-testid=\"layer-by-observer\""));
    assert!(html.contains("data-testid=\"accuracy-by-layer-and-basis\""));
    // The synthetic set makes catch trials from main units: the page says its numbers are biased.
    assert!(html.contains("data-testid=\"practice-overlap\""));
    assert!(html.contains("observer lpips-alex/max-set"));
    assert!(html.contains("synthetic/orientation"));
    assert!(html.contains("<svg"), "figures inline");
    assert!(
        html.contains("(Spearman-Brown; half-vs-half r ="),
        "split-half is shown"
    );
    assert!(
        !html.contains(TAP),
        "the tap name is escaped in HTML and SVG"
    );
    for name in [
        "responses.csv",
        "units.csv",
        "agreement.csv",
        "roc.csv",
        "lower-quality.csv",
    ] {
        assert!(
            html.contains(&format!("href=\"/admin/studies/{id}/{name}\"")),
            "{name}"
        );
    }
}
