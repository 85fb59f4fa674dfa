//! The per-IP limit on starting sessions: a token bucket (GCRA) per peer address, kept in memory.
//! Each web process keeps its own buckets; no address is stored anywhere.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

/// Generous enough for a class behind one NAT and for `meilab loadtest` from one machine; a flood of
/// session starts (each takes units from the schedule) is cut off.
pub const DEFAULT_PER_MINUTE: u32 = 1000;

/// Buckets idle long enough to be full again are dropped once this many addresses are tracked.
const PRUNE_ABOVE: usize = 10_000;

pub struct SessionLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl SessionLimiter {
    /// `per_minute` new sessions per address, all of them available at once; 0 turns the limit off.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), AppError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_and_other_addresses_are_unaffected() {
        let limiter = SessionLimiter::per_minute(3);
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        match limiter.check(a) {
            Err(AppError::RateLimited { retry_after_secs }) => {
                assert!((1..=21).contains(&retry_after_secs), "{retry_after_secs}")
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = SessionLimiter::per_minute(0);
        let a: IpAddr = [192, 0, 2, 1].into();
        assert!((0..10_000).all(|_| limiter.check(a).is_ok()));
    }
}
