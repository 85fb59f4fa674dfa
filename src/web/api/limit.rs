//! Limits on what one client may make this process do, and who the client is.
//!
//! - Starting sessions: a token bucket (GCRA) per client address, kept in memory. Each web process keeps
//!   its own buckets; no address is stored anywhere.
//! - Who the client is: the peer of the connection, unless that peer is a configured trusted proxy, in
//!   which case `X-Forwarded-For` is read from the right, past the trusted hops. A client can therefore
//!   not pick its own address by sending the header. IPv6 clients count per /64 (what one host
//!   usually holds).
//! - What the dashboard may read on the server (import roots) and how large an upload may be; the
//!   admin lab applies them.
//!
//! These are registered once for the whole application (`web::serve_with`), so the participant API
//! and the dashboard share them.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use actix_web::{web, HttpRequest};
use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Settings;
use crate::error::AppError;

pub use crate::config::SESSIONS_PER_IP_PER_MINUTE as DEFAULT_PER_MINUTE;

/// The dashboard's zip uploads are refused beyond this unless configured (`max_upload_mib`).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 2 << 30;

/// Buckets idle long enough to be full again are dropped once this many addresses are tracked.
const PRUNE_ABOVE: usize = 10_000;

/// The per-process limits; the name `SessionLimiter` is kept for the session-start limit it began as.
pub type SessionLimiter = Limits;

pub struct Limits {
    sessions: Option<DefaultKeyedRateLimiter<IpAddr>>,
    proxies: TrustedProxies,
    import_roots: Option<Vec<PathBuf>>,
    max_upload_bytes: u64,
}

impl Limits {
    /// `per_minute` new sessions per address, all of them available at once; 0 turns the limit off.
    /// No proxy is trusted, the dashboard reads only the data directory, uploads up to the default.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            sessions: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            proxies: TrustedProxies::default(),
            import_roots: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }

    /// The limits a server started with `settings` applies.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self::per_minute(settings.sessions_per_ip_per_minute)
            .trusting(TrustedProxies::parse(&settings.trusted_proxies)?)
            .with_import_roots(settings.import_roots())
            .with_max_upload_bytes(settings.max_upload_mib.saturating_mul(1 << 20)))
    }

    pub fn trusting(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    pub fn with_import_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.import_roots = Some(roots);
        self
    }

    pub fn with_max_upload_bytes(mut self, bytes: u64) -> Self {
        self.max_upload_bytes = bytes;
        self
    }

    /// Counts one session start by `ip`; refused with the time to wait once its bucket is empty.
    pub fn check(&self, ip: IpAddr) -> Result<(), AppError> {
        let Some(limiter) = &self.sessions else {
            return Ok(());
        };
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        limiter.check_key(&bucket(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }

    /// The client of `request` (see the module's notes).
    pub fn client_ip(&self, request: &HttpRequest) -> IpAddr {
        let peer = peer_ip(request);
        if !self.proxies.contains(peer) {
            return peer;
        }
        let forwarded: Vec<&str> = request
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.proxies.client(peer, &forwarded.join(","))
    }

    /// The configured import roots; `None`: the data directory only.
    pub fn import_roots(&self) -> Option<&[PathBuf]> {
        self.import_roots.as_deref()
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }
}

/// The limits registered for the application, if any.
pub fn of(request: &HttpRequest) -> Option<&Limits> {
    request.app_data::<web::Data<Limits>>().map(|l| l.get_ref())
}

/// The client of `request`: trusted proxies are looked past when the application has any.
pub fn client_ip(request: &HttpRequest) -> IpAddr {
    match of(request) {
        Some(limits) => limits.client_ip(request),
        None => peer_ip(request),
    }
}

fn peer_ip(request: &HttpRequest) -> IpAddr {
    request
        .peer_addr()
        .map(|a| a.ip().to_canonical())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// IPv4 addresses as they are, IPv6 addresses by their /64 network.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::from(bits.to_be_bytes())
        }
        v4 => v4,
    }
}

/// Addresses and networks of reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Entries like `127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        let mut networks = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let (addr, prefix) = match entry.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (entry, None),
            };
            let addr: IpAddr = addr
                .parse()
                .with_context(|| format!("trusted_proxies: `{entry}` is not an address"))?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .with_context(|| format!("trusted_proxies: `{entry}` has a bad prefix"))?,
                None => max,
            };
            networks.push((addr, prefix));
        }
        Ok(Self(networks))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|&(net, prefix)| match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        })
    }

    /// The client behind trusted `peer`: the rightmost `X-Forwarded-For` entry that is not itself a
    /// trusted proxy. An entry that is not an address stops the walk at the last hop known.
    pub fn client(&self, peer: IpAddr, forwarded_for: &str) -> IpAddr {
        let mut client = peer;
        if !self.contains(peer) {
            return client;
        }
        for hop in forwarded_for.rsplit(',').map(str::trim) {
            let parsed = hop
                .parse::<IpAddr>()
                .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip()));
            let Ok(ip) = parsed else { break };
            client = ip.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
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

    #[test]
    fn addresses_of_one_ipv6_network_share_a_bucket() {
        let limiter = SessionLimiter::per_minute(2);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(b).is_ok());
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(other).is_ok());
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn forwarded_for_is_read_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        let peer: IpAddr = [203, 0, 113, 7].into();
        assert_eq!(none.client(peer, "198.51.100.1"), peer);
        let trusted = proxies(&["10.0.0.0/8", "::1"]);
        let proxy: IpAddr = [10, 1, 2, 3].into();
        assert_eq!(trusted.client(peer, "198.51.100.1"), peer);
        assert_eq!(
            trusted.client(proxy, "198.51.100.1"),
            IpAddr::from([198, 51, 100, 1])
        );
        // The client's own claim (left) is not believed past the first untrusted hop.
        assert_eq!(
            trusted.client(proxy, "1.2.3.4, 198.51.100.1, 10.9.9.9"),
            IpAddr::from([198, 51, 100, 1])
        );
        assert_eq!(trusted.client(proxy, ""), proxy);
        assert_eq!(trusted.client(proxy, "garbage"), proxy);
        assert_eq!(
            trusted.client("::1".parse().unwrap(), "[2001:db8::5]:4711"),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
        assert!(trusted.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!trusted.contains([11, 0, 0, 1].into()));
    }

    #[test]
    fn bad_proxy_entries_are_refused_with_their_text() {
        let bad = TrustedProxies::parse(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(bad.to_string().contains("10.0.0.0/33"));
        assert!(TrustedProxies::parse(&["proxy.example".into()]).is_err());
        assert!(proxies(&["0.0.0.0/0"]).contains([8, 8, 8, 8].into()));
    }
}
