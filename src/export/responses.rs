//! `responses.csv` (and `lower-quality.csv`, the same columns for excluded sessions): one row per
//! response, the long table every analysis starts from, with every design field joined in and, per
//! observer, its score s_t, choice and correctness on the response's trial.

use chrono::SecondsFormat;
use sha2::{Digest, Sha256};

use super::{cell, number, take, writer};
use crate::db::response_export::ResponseRow;
use crate::states::{Stage, TrialKind};

/// The columns before the observers' (three per observer: `score:NAME`, `choice:NAME`, `correct:NAME`).
pub const HEADER: [&str; 29] = [
    "session",
    "participant",
    "study",
    "source",
    "session_excluded",
    "session_stage",
    "exclusion_reasons",
    "position",
    "attempt",
    "trial_id",
    "kind",
    "model",
    "tap",
    "basis",
    "unit_index",
    "condition",
    "batch",
    "query_order",
    "chosen",
    "chosen_query",
    "correct",
    "confidence",
    "rt_ms",
    "client_at",
    "server_at",
    "response_id",
    "valid",
    "max_query",
    "min_query",
];

/// A stable pseudonym for a session: it names no participant and cannot be turned back into the
/// session's secret token.
pub fn pseudonym(token: &str) -> String {
    let digest = Sha256::digest(format!("meilab-session:{token}").as_bytes());
    format!("s-{}", &hex::encode(digest)[..16])
}

/// The participant's pseudonym: a prefix of the keyed hash of their recruiter id (empty for plain links).
fn participant(hash: Option<&str>) -> String {
    hash.map(|h| format!("p-{}", &h[..h.len().min(16)]))
        .unwrap_or_default()
}

/// Writes the table in chunks: `push` rows, `take_chunk` when `buffered` is large enough.
pub struct ResponsesCsv {
    observers: Vec<String>,
    writer: csv::Writer<Vec<u8>>,
}

impl ResponsesCsv {
    /// Starts the table with its header.
    pub fn new(observers: Vec<String>) -> csv::Result<Self> {
        let mut writer = writer();
        let mut header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
        for o in &observers {
            header.extend([
                format!("score:{}", cell(o)),
                format!("choice:{}", cell(o)),
                format!("correct:{}", cell(o)),
            ]);
        }
        writer.write_record(&header)?;
        Ok(Self { observers, writer })
    }

    pub fn observers(&self) -> &[String] {
        &self.observers
    }

    pub fn push(&mut self, row: &ResponseRow) -> csv::Result<()> {
        let chosen_max = (row.chosen == 0) == row.max_first;
        let time =
            |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        // The rows analyses use: main trials of completed sessions that were not excluded.
        let valid = row.kind == TrialKind::Main
            && row.session_stage == Stage::Complete
            && !row.session_excluded;
        let mut cells: Vec<String> = vec![
            pseudonym(&row.token),
            participant(row.external_id_hash.as_deref()),
            cell(&row.study).into_owned(),
            cell(&row.source).into_owned(),
            row.session_excluded.to_string(),
            row.session_stage.to_string(),
            cell(&row.exclusion_reasons).into_owned(),
            row.position.to_string(),
            row.attempt.to_string(),
            row.trial_id.to_string(),
            row.kind.to_string(),
            cell(&row.model).into_owned(),
            cell(&row.tap).into_owned(),
            cell(&row.basis).into_owned(),
            row.unit_index.to_string(),
            cell(&row.condition).into_owned(),
            row.batch.to_string(),
            if row.max_first { "max,min" } else { "min,max" }.to_string(),
            row.chosen.to_string(),
            if chosen_max { "max" } else { "min" }.to_string(),
            row.correct.to_string(),
            row.confidence.to_string(),
            row.rt_ms.to_string(),
            row.client_at.as_ref().map(time).unwrap_or_default(),
            time(&row.server_at),
            row.response_id.to_string(),
            valid.to_string(),
            row.max_query.clone(),
            row.min_query.clone(),
        ];
        for i in 0..self.observers.len() {
            cells.push(number(row.scores.get(i).copied().flatten()));
            cells.push(row.choices.get(i).cloned().flatten().unwrap_or_default());
            cells.push(number(row.observer_correct.get(i).copied().flatten()));
        }
        self.writer.write_record(&cells)
    }

    /// Bytes written and not yet taken.
    pub fn buffered(&self) -> usize {
        self.writer.get_ref().len()
    }

    /// The bytes written since the last call.
    pub fn take_chunk(&mut self) -> std::io::Result<Vec<u8>> {
        take(&mut self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ResponseRow {
        ResponseRow {
            study: "demo".into(),
            session_id: 1,
            token: "ab".repeat(32),
            external_id_hash: Some("cd".repeat(32)),
            source: "prolific".into(),
            session_excluded: false,
            exclusion_reasons: String::new(),
            session_stage: Stage::Complete,
            position: 3,
            attempt: 0,
            max_first: false,
            trial_id: 42,
            kind: TrialKind::Main,
            max_query: "a".repeat(64),
            min_query: "b".repeat(64),
            condition: "=cmd|' /C calc'!A0".into(),
            batch: 1,
            model: "alexnet".into(),
            tap: "conv1".into(),
            basis: "neuron".into(),
            unit_index: 7,
            chosen: 1,
            correct: true,
            confidence: 3,
            rt_ms: 812,
            client_at: None,
            server_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            response_id: uuid::Uuid::nil(),
            scores: vec![Some(-0.125), None],
            choices: vec![Some("min".into()), None],
            observer_correct: vec![Some(0.0), None],
        }
    }

    fn table(observers: &[&str]) -> String {
        let mut csv = ResponsesCsv::new(observers.iter().map(|o| o.to_string()).collect()).unwrap();
        csv.push(&row()).unwrap();
        String::from_utf8(csv.take_chunk().unwrap()).unwrap()
    }

    #[test]
    fn a_row_has_every_column_and_a_neutralised_formula() {
        let out = table(&["lpips-alex/max-set", "lpips-vgg/max-set"]);
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        let header = reader.headers().unwrap().clone();
        assert_eq!(header.len(), HEADER.len() + 6);
        assert_eq!(&header[HEADER.len()], "score:lpips-alex/max-set");
        let record = reader.records().next().unwrap().unwrap();
        let get = |name: &str| record[header.iter().position(|h| h == name).unwrap()].to_string();
        assert_eq!(get("condition"), "'=cmd|' /C calc'!A0");
        assert_eq!(get("query_order"), "min,max");
        assert_eq!(get("chosen_query"), "max");
        assert_eq!(get("server_at"), "2023-11-14T22:13:20.000Z");
        assert_eq!(
            get("score:lpips-alex/max-set"),
            "-0.125",
            "numbers are not neutralised"
        );
        assert_eq!(get("choice:lpips-alex/max-set"), "min");
        assert_eq!(
            get("score:lpips-vgg/max-set"),
            "",
            "an unscored trial has empty cells"
        );
        assert_eq!(get("valid"), "true");
        assert_eq!(get("participant"), format!("p-{}", "cd".repeat(8)));
        assert!(!out.contains(&"ab".repeat(32)), "the token never appears");
        assert!(out.lines().nth(1).unwrap().starts_with("s-"));
    }

    #[test]
    fn without_observers_the_header_is_the_design_columns() {
        let out = table(&[]);
        assert_eq!(out.lines().next().unwrap(), HEADER.join(","));
    }
}
