//! The rows of the long per-response table (`responses.csv`, `lower-quality.csv`), read as a stream.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use sqlx::PgPool;
use uuid::Uuid;

use crate::states::{Stage, TrialKind};

pub struct ResponseRow {
    pub study: String,
    pub session_id: i64,
    pub token: String,
    pub external_id_hash: Option<String>,
    pub source: String,
    pub session_excluded: bool,
    /// Failed exclusion checks, `;`-separated.
    pub exclusion_reasons: String,
    pub session_stage: Stage,
    pub position: i32,
    pub attempt: i32,
    pub max_first: bool,
    pub trial_id: i64,
    pub kind: TrialKind,
    /// The trial's query images (SHA-256 keys of the image store).
    pub max_query: String,
    pub min_query: String,
    pub condition: String,
    pub batch: i32,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
    pub chosen: i16,
    pub correct: bool,
    pub confidence: i16,
    pub rt_ms: i32,
    pub client_at: Option<DateTime<Utc>>,
    pub server_at: DateTime<Utc>,
    pub response_id: Uuid,
    /// Per observer of the export, in its order: the judgment of this row's trial, if any.
    pub scores: Vec<Option<f64>>,
    pub choices: Vec<Option<String>>,
    pub observer_correct: Vec<Option<f64>>,
}

/// Every response of the study by session and position, with the judgments of `observers`. All
/// sessions (excluded ones flagged), or with `only_excluded` only those of excluded sessions.
pub fn rows<'a>(
    pool: &'a PgPool,
    study_id: i64,
    observers: &'a [String],
    only_excluded: bool,
) -> BoxStream<'a, sqlx::Result<ResponseRow>> {
    sqlx::query_as!(
        ResponseRow,
        r#"SELECT st.slug AS study, s.id AS session_id, s.token, s.external_id_hash, s.source,
                  s.excluded AS session_excluded,
                  coalesce((SELECT string_agg(coalesce(c->>'rule', c #>> '{}'), ';')
                            FROM jsonb_array_elements(s.exclusion_reasons) AS c
                            WHERE jsonb_typeof(c) = 'string'
                               OR NOT coalesce((c->>'passed')::boolean, false)), '')
                      AS "exclusion_reasons!",
                  s.stage AS "session_stage: Stage", r.position, a.attempt, a.max_first, t.id AS trial_id,
                  t.kind AS "kind: TrialKind", t.max_query, t.min_query, t.condition, t.batch, u.model, u.tap, u.basis,
                  u.unit_index, r.chosen, r.correct, r.confidence, r.rt_ms, r.client_at, r.server_at, r.response_id,
                  ARRAY(SELECT j.score FROM unnest($2::text[]) WITH ORDINALITY AS o (name, i)
                        LEFT JOIN judgments j ON j.trial_id = t.id AND j.observer = o.name
                        ORDER BY o.i) AS "scores!: Vec<Option<f64>>",
                  ARRAY(SELECT j.choice FROM unnest($2::text[]) WITH ORDINALITY AS o (name, i)
                        LEFT JOIN judgments j ON j.trial_id = t.id AND j.observer = o.name
                        ORDER BY o.i) AS "choices!: Vec<Option<String>>",
                  ARRAY(SELECT j.correct FROM unnest($2::text[]) WITH ORDINALITY AS o (name, i)
                        LEFT JOIN judgments j ON j.trial_id = t.id AND j.observer = o.name
                        ORDER BY o.i) AS "observer_correct!: Vec<Option<f64>>"
           FROM responses r
           JOIN sessions s ON s.id = r.session_id
           JOIN studies st ON st.id = s.study_id
           JOIN assignments a ON a.session_id = r.session_id AND a.position = r.position
           JOIN trials t ON t.id = a.trial_id
           JOIN units u ON u.id = t.unit_id
           WHERE s.study_id = $1 AND (s.excluded OR NOT $3)
           ORDER BY s.id, r.position"#,
        study_id,
        observers,
        only_excluded
    )
    .fetch(pool)
}
