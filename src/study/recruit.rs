//! Recruitment platforms: which URL parameters name the participant and which are kept with the session.

use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The server secret that turns external ids into per-study pseudonyms (HMAC-SHA256), so raw
/// recruitment-platform ids are never stored. Keyed once: every trial served hashes a dozen image
/// tags, and setting up the key is half of each hash.
#[derive(Clone)]
pub struct ParticipantKey(Arc<Hmac<Sha256>>);

impl ParticipantKey {
    pub fn new(secret: &[u8]) -> Self {
        let mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self(Arc::new(mac))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::clone(&self.0)
    }

    pub fn pseudonym(&self, study_id: i64, external_id: &str) -> String {
        let mut mac = self.mac();
        mac.update(&study_id.to_be_bytes());
        mac.update(external_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A keyed hash of `value` for another purpose than participants (e.g. counting failed logins
    /// per client address without keeping addresses).
    pub fn tag(&self, purpose: &str, value: &str) -> String {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Prolific,
    Mturk,
    Sona,
    Link,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prolific => "prolific",
            Self::Mturk => "mturk",
            Self::Sona => "sona",
            Self::Link => "link",
        }
    }

    /// The participant-id parameter and the other parameters the platform appends to the study URL.
    fn parameters(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::Prolific => ("PROLIFIC_PID", &["STUDY_ID", "SESSION_ID"]),
            Self::Mturk => ("workerId", &["assignmentId", "hitId"]),
            Self::Sona => ("id", &[]),
            Self::Link => ("", &[]),
        }
    }
}

const MAX_PARAM_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recruitment {
    pub external_id: Option<String>,
    pub source: Source,
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl Recruitment {
    /// Recognises the platform by its participant-id parameter; anything else is a plain link.
    pub fn from_query(query: &HashMap<String, String>) -> Self {
        let clean = |key: &str| {
            query
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty() && v.len() <= MAX_PARAM_LEN && !v.contains('\0'))
                .map(str::to_string)
        };
        for source in [Source::Prolific, Source::Mturk, Source::Sona] {
            let (id_key, others) = source.parameters();
            if let Some(external_id) = clean(id_key) {
                let params = others
                    .iter()
                    .filter_map(|key| Some((key.to_string(), clean(key)?.into())))
                    .collect();
                return Self {
                    external_id: Some(external_id),
                    source,
                    params,
                };
            }
        }
        Self {
            external_id: None,
            source: Source::Link,
            params: serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pseudonyms_are_stable_per_study_and_unlinkable_across_studies() {
        let key = ParticipantKey::new(b"server secret");
        let p = key.pseudonym(1, "5f1a");
        assert_eq!(p, key.pseudonym(1, "5f1a"));
        assert_ne!(p, key.pseudonym(2, "5f1a"));
        assert_ne!(p, ParticipantKey::new(b"other").pseudonym(1, "5f1a"));
        assert!(p.len() == 64 && !p.contains("5f1a"));
    }

    #[test]
    fn the_key_once_set_up_hashes_as_hmac_sha256_and_stays_the_same_across_uses() {
        // Python: hmac.new(b"Jefe", (7).to_bytes(8, "big") + b"P-1", hashlib.sha256).hexdigest()
        let key = ParticipantKey::new(b"Jefe");
        let expected = "1cd5f8c5888f11ca1d0c0b79cefceeb7f046cef9bfd1c4229735008fa69706f0";
        assert_eq!(key.pseudonym(7, "P-1"), expected);
        assert_eq!(key.clone().pseudonym(7, "P-1"), expected);
        // hmac.new(b"Jefe", b"login\x00203.0.113.0", hashlib.sha256).hexdigest()
        assert_eq!(
            key.tag("login", "203.0.113.0"),
            "1c1efd8640b09cc7ade6e508f9de89fbe292b95129d3b16fdf3bfdfbe9bc29f5"
        );
    }

    #[test]
    fn prolific_parameters_name_the_participant_and_the_study() {
        let r = Recruitment::from_query(&query(&[
            ("PROLIFIC_PID", "5f1a"),
            ("STUDY_ID", "s1"),
            ("SESSION_ID", "x9"),
            ("other", "dropped"),
        ]));
        assert_eq!(r.source, Source::Prolific);
        assert_eq!(r.external_id.as_deref(), Some("5f1a"));
        assert_eq!(r.params.len(), 2);
        assert_eq!(r.params["STUDY_ID"], "s1");
    }

    #[test]
    fn mturk_and_sona_are_recognised() {
        let mturk = Recruitment::from_query(&query(&[("workerId", "A1"), ("hitId", "H")]));
        assert_eq!(
            (mturk.source, mturk.params["hitId"].as_str()),
            (Source::Mturk, Some("H"))
        );
        let sona = Recruitment::from_query(&query(&[("id", "123")]));
        assert_eq!(
            (sona.source, sona.external_id.as_deref()),
            (Source::Sona, Some("123"))
        );
    }

    #[test]
    fn a_plain_link_or_an_empty_id_is_anonymous() {
        for q in [query(&[]), query(&[("PROLIFIC_PID", " ")])] {
            let r = Recruitment::from_query(&q);
            assert_eq!((r.source, r.external_id), (Source::Link, None));
        }
    }
}
