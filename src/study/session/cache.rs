//! The participants' current blocks, kept in this process. Each active session's current block (the
//! trials of its practice round or main block, and which are answered) is kept here, so `trials/next`
//! reads nothing from the database, and an answer that does not end its block is checked against the
//! block and handed to a group-commit writer: the answers that arrive together are stored by one
//! autocommitted insert, and each is acknowledged once that insert committed.
//!
//! The database stays the authority. A block changes in memory only after a commit, so it can lag the
//! database (another process answered, a participant was deleted) but never run ahead of it; the keys
//! of `responses` refuse what a lagging block lets through (a position answered elsewhere, one no longer
//! assigned), and every answer the block cannot vouch for takes the locked path of [`super::flow`],
//! after which the block is read again. Blocks older than [`BLOCK_TTL`] are read again too, which bounds
//! how long another process's changes go unseen.
//!
//! Session starts schedule from each study's per-trial loads (assignments of sessions not excluded),
//! read from the database at most every [`LOADS_TTL`] and counted forward here: each start's assignments
//! are added and an excluded session's are taken back as they happen in this process. Starts in this
//! process therefore always see each other; starts in other processes are seen within [`LOADS_TTL`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::flow::shown_kind;
use super::messages::{Answer, Reply, TrialView};
use super::rules;
use crate::db;
use crate::db::responses::Checked;
use crate::db::sessions::{Slot, TrialLoad};
use crate::error::AppError;
use crate::states::{Stage, TrialKind};
use crate::study::appearance::TrialImages;
use crate::study::recruit::ParticipantKey;
use crate::study::StudyConfig;

/// A cached block is read again from the database after this long.
pub const BLOCK_TTL: Duration = Duration::from_secs(30);
/// A study's loads are read again from the database after this long.
pub const LOADS_TTL: Duration = Duration::from_secs(10);
/// Sessions kept in memory (about twice this at most, in two generations).
const CAPACITY: usize = 20_000;
/// Answers stored by one statement at most, and statements in flight at once.
const MAX_BATCH: usize = 256;
const WRITERS: usize = 2;

pub(super) struct Cache {
    blocks: Arc<Mutex<Blocks>>,
    loads: Mutex<HashMap<i64, Loads>>,
    writer: mpsc::Sender<Pending>,
}

impl Cache {
    /// Starts the writer on the current Tokio runtime.
    pub fn start(pool: PgPool) -> Self {
        let (writer, queue) = mpsc::channel(4 * MAX_BATCH);
        let blocks = Arc::new(Mutex::new(Blocks::default()));
        tokio::spawn(write_batches(pool, queue, blocks.clone()));
        Self {
            blocks,
            loads: Mutex::new(HashMap::new()),
            writer,
        }
    }

    /// A new session's main block: `plan` gets the study's main and catch trials with their loads and
    /// returns the slots (`None`: the study has no trials), which count as served from then on.
    /// Unfinished sessions older than `release_after_secs` count no more once the loads are read again.
    pub async fn schedule(
        &self,
        conn: &mut PgConnection,
        study_id: i64,
        release_after_secs: f64,
        plan: impl FnOnce(&[TrialLoad], &[TrialLoad]) -> Option<Vec<Slot>>,
    ) -> Result<Option<Vec<Slot>>, AppError> {
        let fresh = self
            .loads()
            .get(&study_id)
            .and_then(|l| l.read)
            .is_some_and(|read| read.elapsed() < LOADS_TTL);
        let read = if fresh {
            None
        } else {
            Some(db::sessions::schedule_loads(conn, study_id, release_after_secs).await?)
        };
        let mut loads = self.loads();
        if let Some((main, catch)) = read {
            loads.insert(study_id, Loads::new(main, catch));
        }
        let Some(study) = loads.get_mut(&study_id) else {
            return Ok(None);
        };
        let slots = plan(&study.main, &study.catch);
        for slot in slots.iter().flatten() {
            study.add(slot.trial_id, 1);
        }
        Ok(slots)
    }

    /// An excluded session's main trials go back to the pool.
    pub fn unassigned(&self, study_id: i64, trials: &[i64]) {
        if let Some(study) = self.loads().get_mut(&study_id) {
            for &trial in trials {
                study.add(trial, -1);
            }
        }
    }

    /// The study's exclusions were re-evaluated: its loads are read again at the next start.
    pub fn loads_changed(&self, study_id: i64) {
        if let Some(study) = self.loads().get_mut(&study_id) {
            study.read = None;
        }
    }

    fn loads(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Loads>> {
        lock(&self.loads)
    }

    /// The kept block's next trial, marked as served now unless it was served before; `None` when no
    /// block is kept for `token` or it has no trial left.
    pub fn serve(&self, key: &ParticipantKey, token: &str) -> Option<TrialView> {
        self.blocks()
            .get_mut(token)
            .and_then(|b| b.serve(key, token))
    }

    /// Whether a block is kept for `token`.
    pub fn holds(&self, token: &str) -> bool {
        self.blocks().get(token).is_some()
    }

    /// The image behind an appearance tag of the trial at `position` (see [`crate::study::appearance`]),
    /// when that trial is in the kept block.
    pub fn image(
        &self,
        key: &ParticipantKey,
        token: &str,
        position: i32,
        tag: &str,
    ) -> Option<Option<String>> {
        self.blocks().get(token).and_then(|block| {
            let place = block.places.iter().find(|p| p.position == position)?;
            Some(place.trial.images().resolve(
                key,
                block.session_id,
                position,
                place.max_first,
                tag,
            ))
        })
    }

    /// The answer and its reply when the kept block can vouch for it (see [`Block::check`]); `None`
    /// sends it to the locked path. An answer sooner than the button lock is refused.
    pub fn check(
        &self,
        token: &str,
        answer: &Answer,
    ) -> Result<Option<(Checked, Reply)>, AppError> {
        match self.blocks().get(token) {
            Some(block) => {
                block.check_lock(answer)?;
                Ok(block.check(answer))
            }
            None => Ok(None),
        }
    }

    /// Hands a checked answer to the writer: `true` once stored, `false` if the locked path must
    /// decide (the writer skipped it, or is gone).
    pub async fn write(&self, token: &str, checked: Checked) -> Result<bool, AppError> {
        let (done, stored) = oneshot::channel();
        let pending = Pending {
            token: token.to_string(),
            checked,
            done,
        };
        if self.writer.send(pending).await.is_err() {
            return Ok(false);
        }
        stored.await.unwrap_or(Ok(false))
    }

    /// Reads the session's current block into memory; nothing is kept for an unknown session or a
    /// stage without trials.
    pub async fn load(&self, conn: &mut PgConnection, token: &str) -> Result<(), AppError> {
        let rows = db::sessions::current_block(conn, token).await?;
        let Some(study_id) = rows.first().map(|row| row.study_id) else {
            return Ok(());
        };
        let study = crate::study::by_id(conn, study_id)
            .await?
            .ok_or_else(|| AppError::NotFound("unknown study".into()))?;
        let mut blocks = self.blocks();
        if let Some(block) = Block::from_rows(rows, &study.config, &mut blocks.trials) {
            blocks.insert(token, block);
        }
        Ok(())
    }

    /// Drops the kept block: the session may have moved on, so it is read again next time.
    pub fn forget(&self, token: &str) {
        self.blocks().remove(token);
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, Blocks> {
        lock(&self.blocks)
    }
}

/// A study's main and catch trials with their loads, and when they were read (`None`: to be read again).
struct Loads {
    main: Vec<TrialLoad>,
    catch: Vec<TrialLoad>,
    /// Where each trial is: in `main` (true) or `catch`, at which index.
    index: HashMap<i64, (bool, usize)>,
    read: Option<Instant>,
}

impl Loads {
    fn new(main: Vec<TrialLoad>, catch: Vec<TrialLoad>) -> Self {
        let index = main
            .iter()
            .enumerate()
            .map(|(i, t)| (t.trial_id, (true, i)))
            .chain(
                catch
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.trial_id, (false, i))),
            )
            .collect();
        Self {
            main,
            catch,
            index,
            read: Some(Instant::now()),
        }
    }

    fn add(&mut self, trial: i64, delta: i64) {
        let load = match self.index.get(&trial) {
            Some(&(true, i)) => &mut self.main[i],
            Some(&(false, i)) => &mut self.catch[i],
            None => return,
        };
        load.served = (load.served + delta).max(0);
    }
}

/// The cached blocks in two generations: when the current one is full it becomes the previous one,
/// and what was not used since is dropped. Trials are shared between sessions.
#[derive(Default)]
struct Blocks {
    current: HashMap<String, Block>,
    previous: HashMap<String, Block>,
    trials: HashMap<i64, Arc<Trial>>,
}

impl Blocks {
    fn get(&mut self, token: &str) -> Option<&Block> {
        self.get_mut(token).map(|b| &*b)
    }

    fn get_mut(&mut self, token: &str) -> Option<&mut Block> {
        if let Some(block) = self.previous.remove(token) {
            self.insert(token, block);
        }
        let block = self.current.get_mut(token)?;
        (block.loaded.elapsed() < BLOCK_TTL).then_some(block)
    }

    fn insert(&mut self, token: &str, block: Block) {
        if self.current.len() >= CAPACITY {
            self.previous = std::mem::take(&mut self.current);
            if self.trials.len() >= 4 * CAPACITY {
                self.trials.clear();
            }
        }
        self.current.insert(token.to_string(), block);
    }

    fn remove(&mut self, token: &str) {
        self.current.remove(token);
        self.previous.remove(token);
    }
}

/// A trial's images (content hashes) and its kind.
struct Trial {
    kind: TrialKind,
    max_query: String,
    min_query: String,
    max_refs: Vec<String>,
    min_refs: Vec<String>,
}

impl Trial {
    fn images(&self) -> TrialImages<'_> {
        TrialImages {
            max_query: &self.max_query,
            min_query: &self.min_query,
            max_refs: &self.max_refs,
            min_refs: &self.min_refs,
        }
    }
}

/// A position of a block.
struct Place {
    position: i32,
    attempt: i32,
    max_first: bool,
    answered: bool,
    /// When this process first served it (`None`: not yet, or before the block was read).
    served: Option<Instant>,
    trial: Arc<Trial>,
}

/// A session's current block as the database had it when read, plus this process's answers since.
struct Block {
    session_id: i64,
    stage: Stage,
    main_total: i32,
    main_answered: i64,
    feedback: bool,
    lock_ms: i64,
    max_side: &'static str,
    places: Vec<Place>,
    loaded: Instant,
}

impl Block {
    fn from_rows(
        rows: Vec<db::sessions::BlockRow>,
        config: &StudyConfig,
        trials: &mut HashMap<i64, Arc<Trial>>,
    ) -> Option<Self> {
        let first = rows.first()?;
        let mut block = Self {
            session_id: first.session_id,
            stage: first.stage,
            main_total: first.main_total,
            main_answered: first.main_answered,
            feedback: config.feedback,
            lock_ms: config.lock_ms,
            max_side: config.max_side.as_str(),
            places: Vec::with_capacity(rows.len()),
            loaded: Instant::now(),
        };
        for row in rows {
            let trial = trials
                .entry(row.trial_id)
                .or_insert_with(|| {
                    Arc::new(Trial {
                        kind: row.kind,
                        max_query: row.max_query,
                        min_query: row.min_query,
                        max_refs: row.max_refs,
                        min_refs: row.min_refs,
                    })
                })
                .clone();
            block.places.push(Place {
                position: row.position,
                attempt: row.attempt,
                max_first: row.max_first,
                answered: row.answered,
                served: None,
                trial,
            });
        }
        Some(block)
    }

    /// The first unanswered trial, marked as served now unless it was served before.
    fn serve(&mut self, key: &ParticipantKey, token: &str) -> Option<TrialView> {
        let session_id = self.session_id;
        let slot = self.places.iter_mut().find(|s| !s.answered)?;
        slot.served.get_or_insert_with(Instant::now);
        let trial = &slot.trial;
        let urls = trial.images().urls(key, token, session_id, slot.position);
        Some(TrialView {
            position: slot.position,
            kind: shown_kind(trial.kind),
            min_refs: urls.min_refs,
            max_refs: urls.max_refs,
            queries: urls.queries,
            lock_ms: self.lock_ms,
            max_side: self.max_side,
            answered: self.main_answered,
            total: self.main_total,
            attempt: slot.attempt,
        })
    }

    /// Refuses an answer that came sooner than the button lock after its trial was served here; the
    /// page, which unlocks the buttons only `lock_ms` after the images show, never sends one.
    fn check_lock(&self, answer: &Answer) -> Result<(), AppError> {
        let place = self
            .places
            .iter()
            .find(|p| p.position == answer.position && !p.answered);
        let Some(served) = place.and_then(|p| p.served) else {
            return Ok(());
        };
        let lock = Duration::from_millis(self.lock_ms.max(0) as u64);
        if served.elapsed() < lock {
            return Err(rules::answered_too_soon(self.lock_ms));
        }
        Ok(())
    }

    /// The answer and its reply when it is for the block's current trial and does not end the block.
    fn check(&self, answer: &Answer) -> Option<(Checked, Reply)> {
        let mut open = self.places.iter().filter(|s| !s.answered);
        let current = open.next()?;
        let following = open.next()?.position;
        if current.position != answer.position {
            return None;
        }
        let correct = rules::is_correct(answer.chosen, current.max_first);
        let reply = rules::reply_within_block(self.stage, self.feedback, correct, Some(following));
        let checked = Checked {
            response: answer.response(self.session_id, correct),
            reply: serde_json::to_value(&reply).ok()?,
        };
        Some((checked, reply))
    }

    fn mark_answered(&mut self, position: i32) {
        if let Some(slot) = self.places.iter_mut().find(|s| s.position == position) {
            if !slot.answered && self.stage == Stage::Trials {
                self.main_answered += 1;
            }
            slot.answered = true;
        }
    }
}

/// An answer waiting for the writer, and where to say whether it was stored.
struct Pending {
    token: String,
    checked: Checked,
    done: oneshot::Sender<Result<bool, AppError>>,
}

/// Takes what is queued (up to [`MAX_BATCH`]) as one statement, with up to [`WRITERS`] in flight: under
/// load the queue grows while statements run, so batches grow with the load.
async fn write_batches(
    pool: PgPool,
    mut queue: mpsc::Receiver<Pending>,
    blocks: Arc<Mutex<Blocks>>,
) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let (pool, blocks) = (pool.clone(), blocks.clone());
        tokio::spawn(async move {
            write_batch(&pool, &blocks, batch).await;
            drop(permit);
        });
    }
}

/// Stores a batch and tells each sender whether its answer was stored. A second answer under the same
/// response id in one batch is left to the locked path, which replays or refuses it; so is everything
/// when the statement fails for any reason but an unreachable database (that is a 503 for all).
async fn write_batch(pool: &PgPool, blocks: &Mutex<Blocks>, batch: Vec<Pending>) {
    let mut seen = HashSet::new();
    let (first, repeated): (Vec<Pending>, Vec<Pending>) = batch
        .into_iter()
        .partition(|p| seen.insert(p.checked.response.response_id));
    for pending in repeated {
        let _ = pending.done.send(Ok(false));
    }
    let rows: Vec<&Checked> = first.iter().map(|p| &p.checked).collect();
    let stored = match pool.acquire().await {
        Ok(mut conn) => db::responses::insert_many(&mut conn, &rows).await,
        Err(e) => Err(e),
    };
    match stored {
        Ok(ids) => {
            let ids: HashSet<uuid::Uuid> = ids.into_iter().collect();
            // The blocks learn of the stored answers here, not in the requests, which a client that
            // goes away would cancel.
            let mut blocks = lock(blocks);
            for pending in &first {
                if ids.contains(&pending.checked.response.response_id) {
                    if let Some(block) = blocks.get_mut(&pending.token) {
                        block.mark_answered(pending.checked.response.position);
                    }
                }
            }
            drop(blocks);
            for pending in first {
                let stored = ids.contains(&pending.checked.response.response_id);
                let _ = pending.done.send(Ok(stored));
            }
        }
        Err(e) => {
            let unavailable = matches!(AppError::from(e), AppError::Unavailable);
            for pending in first {
                let _ = pending.done.send(if unavailable {
                    Err(AppError::Unavailable)
                } else {
                    Ok(false)
                });
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
