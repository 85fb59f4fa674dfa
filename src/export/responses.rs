//! `responses.csv`: one row per response, the long table every analysis starts from.

use chrono::SecondsFormat;
use sha2::{Digest, Sha256};

use super::{cell, push_record};
use crate::db::response_export::ResponseRow;

pub const HEADER: [&str; 22] = [
    "session",
    "source",
    "session_excluded",
    "session_stage",
    "position",
    "attempt",
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
];

pub fn header() -> String {
    let mut out = String::new();
    push_record(&mut out, &HEADER);
    out
}

/// A stable pseudonym for a session: it names no participant and cannot be turned back into the
/// session's secret token.
pub fn pseudonym(token: &str) -> String {
    let digest = Sha256::digest(format!("meilab-session:{token}").as_bytes());
    format!("s-{}", &hex::encode(digest)[..16])
}

/// Appends one response. `query_order` is the order on screen: `max,min` or `min,max` (top first);
/// `chosen` is the index of the chosen query on screen and `chosen_query` which one it was.
pub fn push_row(out: &mut String, row: &ResponseRow) {
    let chosen_max = (row.chosen == 0) == row.max_first;
    let time = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let cells = [
        pseudonym(&row.token),
        cell(&row.source).into_owned(),
        row.session_excluded.to_string(),
        cell(&row.session_stage).into_owned(),
        row.position.to_string(),
        row.attempt.to_string(),
        cell(&row.kind).into_owned(),
        cell(&row.model).into_owned(),
        cell(&row.tap).into_owned(),
        cell(&row.basis).into_owned(),
        row.unit_index.to_string(),
        cell(&row.condition).into_owned(),
        row.batch.to_string(),
        cell(if row.max_first { "max,min" } else { "min,max" }).into_owned(),
        row.chosen.to_string(),
        if chosen_max { "max" } else { "min" }.to_string(),
        row.correct.to_string(),
        row.confidence.to_string(),
        row.rt_ms.to_string(),
        row.client_at.as_ref().map(time).unwrap_or_default(),
        time(&row.server_at),
        row.response_id.to_string(),
    ];
    push_record(out, &cells);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ResponseRow {
        ResponseRow {
            session_id: 1,
            token: "ab".repeat(32),
            source: "prolific".into(),
            session_excluded: false,
            session_stage: "complete".into(),
            position: 3,
            attempt: 0,
            max_first: false,
            kind: "main".into(),
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
        }
    }

    #[test]
    fn a_row_has_every_column_and_a_neutralised_formula() {
        let mut out = String::new();
        push_row(&mut out, &row());
        let line = out.trim_end();
        assert!(line.contains(",'=cmd|' /C calc'!A0,"), "{line}");
        assert!(
            line.contains(",\"min,max\",1,max,true,3,812,,2023-11-14T22:13:20.000Z,"),
            "{line}"
        );
        assert!(!line.contains(&"ab".repeat(32)), "the token never appears");
        assert!(line.starts_with("s-"));
    }

    #[test]
    fn the_header_names_every_column() {
        let mut out = String::new();
        push_row(&mut out, &row());
        let commas_outside_quotes = |s: &str| {
            let mut quoted = false;
            s.chars()
                .filter(|&c| {
                    if c == '"' {
                        quoted = !quoted;
                    }
                    c == ',' && !quoted
                })
                .count()
        };
        assert_eq!(commas_outside_quotes(&out), HEADER.len() - 1);
        assert_eq!(header().matches(',').count(), HEADER.len() - 1);
    }
}
