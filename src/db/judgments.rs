//! The observer's judgments (one row per trial and observer) and the trials it scores.

use sqlx::PgConnection;

/// A trial as the observer sees it: the identical images shown to humans, as SHA-256 keys.
#[derive(Debug, Clone)]
pub struct TrialImages {
    pub id: i64,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
}

/// Main and catch trials of a study (and practice trials when asked), ordered by unit so that trials
/// sharing references sit together.
pub async fn trials_to_score(
    conn: &mut PgConnection,
    study_id: i64,
    include_practice: bool,
) -> sqlx::Result<Vec<TrialImages>> {
    sqlx::query_as!(
        TrialImages,
        r#"SELECT id, max_query, min_query, max_refs, min_refs
           FROM trials
           WHERE study_id = $1 AND (kind <> 'practice' OR $2)
           ORDER BY unit_id, batch, id"#,
        study_id,
        include_practice
    )
    .fetch_all(conn)
    .await
}

/// One judgment to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgment {
    pub trial_id: i64,
    pub score: f64,
    /// `max`, `min` or `tie`.
    pub choice: &'static str,
    /// 1, 0, or 0.5 on a tie.
    pub correct: f64,
}

/// Inserts or overwrites the judgments of `observer`, in one statement.
pub async fn upsert(
    conn: &mut PgConnection,
    observer: &str,
    judgments: &[Judgment],
) -> sqlx::Result<u64> {
    let trial_ids: Vec<i64> = judgments.iter().map(|j| j.trial_id).collect();
    let scores: Vec<f64> = judgments.iter().map(|j| j.score).collect();
    let choices: Vec<String> = judgments.iter().map(|j| j.choice.to_string()).collect();
    let correct: Vec<f64> = judgments.iter().map(|j| j.correct).collect();
    let done = sqlx::query!(
        r#"INSERT INTO judgments (trial_id, observer, score, choice, correct)
           SELECT t, $1, s, c, k
           FROM unnest($2::bigint[], $3::float8[], $4::text[], $5::float8[]) AS u(t, s, c, k)
           ON CONFLICT (trial_id, observer) DO UPDATE
           SET score = EXCLUDED.score, choice = EXCLUDED.choice, correct = EXCLUDED.correct,
               scored_at = now()"#,
        observer,
        &trial_ids,
        &scores,
        &choices,
        &correct
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A stored judgment, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJudgment {
    pub trial_id: i64,
    pub observer: String,
    pub score: f64,
    pub choice: String,
    pub correct: f64,
}

pub async fn of_study(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<Vec<StoredJudgment>> {
    sqlx::query_as!(
        StoredJudgment,
        r#"SELECT j.trial_id, j.observer, j.score, j.choice, j.correct
           FROM judgments j JOIN trials t ON t.id = j.trial_id
           WHERE t.study_id = $1
           ORDER BY j.observer, j.trial_id"#,
        study_id
    )
    .fetch_all(conn)
    .await
}

/// The observers that judged any trial of the study, by name.
pub async fn observers(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT DISTINCT j.observer
           FROM judgments j JOIN trials t ON t.id = j.trial_id
           WHERE t.study_id = $1
           ORDER BY j.observer"#,
        study_id
    )
    .fetch_all(conn)
    .await
}
