//! Which trials a new session gets: main trials of distinct units, least-served units first, with catch
//! trials shuffled in; deterministic for a study seed and a session.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::db::sessions::{Slot, TrialLoad};

/// The random stream of one session (and practice round), derived from the study seed.
pub fn rng_for(seed: u64, session_id: i64, round: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((session_id as u64) << 8) ^ round);
    rng
}

pub fn session_schedule(
    main: &[TrialLoad],
    catch: &[TrialLoad],
    n_main: usize,
    n_catch: usize,
    rng: &mut impl Rng,
) -> Vec<Slot> {
    let mut units: BTreeMap<i64, Vec<TrialLoad>> = BTreeMap::new();
    for trial in main {
        units.entry(trial.unit_id).or_default().push(*trial);
    }
    // Random keys break ties without favouring low ids.
    let mut ranked: Vec<(i64, u64, Vec<TrialLoad>)> = units
        .into_values()
        .map(|trials| (trials.iter().map(|t| t.served).sum(), rng.random(), trials))
        .collect();
    ranked.sort_by_key(|(served, key, _)| (*served, *key));
    let mut chosen: Vec<i64> = ranked
        .into_iter()
        .take(n_main)
        .filter_map(|(_, _, trials)| least_served(&trials, rng))
        .collect();

    let mut catch: Vec<(i64, u64, TrialLoad)> =
        catch.iter().map(|t| (t.served, rng.random(), *t)).collect();
    catch.sort_by_key(|(served, key, _)| (*served, *key));
    let mut catch_units = Vec::new();
    let (distinct, repeats): (Vec<_>, Vec<_>) = catch.into_iter().partition(|(_, _, t)| {
        let fresh = !catch_units.contains(&t.unit_id);
        catch_units.push(t.unit_id);
        fresh
    });
    chosen.extend(
        distinct
            .iter()
            .chain(&repeats)
            .take(n_catch)
            .map(|(_, _, t)| t.trial_id),
    );

    chosen.shuffle(rng);
    chosen
        .into_iter()
        .map(|trial_id| Slot {
            trial_id,
            max_first: rng.random_bool(0.5),
        })
        .collect()
}

/// `n` distinct practice trials (all of them if there are fewer), in random order.
pub fn practice_round(practice: &[i64], n: usize, rng: &mut impl Rng) -> Vec<Slot> {
    let mut trials = practice.to_vec();
    trials.shuffle(rng);
    trials.truncate(n);
    trials
        .into_iter()
        .map(|trial_id| Slot {
            trial_id,
            max_first: rng.random_bool(0.5),
        })
        .collect()
}

fn least_served(trials: &[TrialLoad], rng: &mut impl Rng) -> Option<i64> {
    let fewest = trials.iter().map(|t| t.served).min()?;
    let candidates: Vec<i64> = trials
        .iter()
        .filter(|t| t.served == fewest)
        .map(|t| t.trial_id)
        .collect();
    Some(candidates[rng.random_range(0..candidates.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(units: i64, per_unit: i64, served: impl Fn(i64) -> i64) -> Vec<TrialLoad> {
        (0..units * per_unit)
            .map(|i| TrialLoad {
                trial_id: i,
                unit_id: i / per_unit,
                served: served(i / per_unit),
            })
            .collect()
    }

    #[test]
    fn a_session_gets_distinct_units_and_its_catch_trials() {
        let main = loads(10, 3, |_| 0);
        let catch: Vec<TrialLoad> = (100..105)
            .map(|i| TrialLoad {
                trial_id: i,
                unit_id: i,
                served: 0,
            })
            .collect();
        let slots = session_schedule(&main, &catch, 6, 2, &mut rng_for(1, 1, 0));
        assert_eq!(slots.len(), 8);
        let units: std::collections::HashSet<i64> = slots
            .iter()
            .filter(|s| s.trial_id < 100)
            .map(|s| s.trial_id / 3)
            .collect();
        assert_eq!(units.len(), 6);
        assert_eq!(slots.iter().filter(|s| s.trial_id >= 100).count(), 2);
    }

    #[test]
    fn the_least_served_units_come_first() {
        // Units 0..4 were served 5 times each, units 5..9 never.
        let main = loads(10, 1, |unit| if unit < 5 { 5 } else { 0 });
        let slots = session_schedule(&main, &[], 5, 0, &mut rng_for(3, 9, 0));
        let mut chosen: Vec<i64> = slots.iter().map(|s| s.trial_id).collect();
        chosen.sort();
        assert_eq!(chosen, vec![5, 6, 7, 8, 9]);
    }

    #[test]
    fn the_schedule_is_deterministic_for_a_seed_and_varies_across_sessions() {
        let main = loads(40, 2, |_| 0);
        let run = |session| session_schedule(&main, &[], 10, 0, &mut rng_for(42, session, 0));
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn fewer_units_than_trials_gives_every_unit_once() {
        let main = loads(3, 2, |_| 0);
        assert_eq!(
            session_schedule(&main, &[], 40, 0, &mut rng_for(0, 0, 0)).len(),
            3
        );
    }
}
