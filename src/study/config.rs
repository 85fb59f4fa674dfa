//! A study's configuration: a typed struct stored as JSON and validated whenever it is loaded or saved.

use serde::{Deserialize, Serialize};

use crate::stimuli::directions::KmeansActivation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudyConfig {
    /// Main trials per session, each of a distinct unit (IMI: 40).
    pub trials_per_session: i64,
    /// Catch trials shuffled in among the main trials (IMI: 5).
    pub catch_per_session: i64,
    /// Answer buttons are locked this long after a trial shows (IMI: 1500 ms).
    pub lock_ms: i64,
    /// Green / red feedback after each main trial (practice always has it).
    pub feedback: bool,
    /// The side of the maximally activating references.
    pub max_side: Side,
    pub practice: PracticeConfig,
    pub texts: Texts,
    pub completion: Completion,
    pub exclusion: ExclusionThresholds,
    /// Valid responses wanted per unit, from distinct participants (default 30).
    pub responses_per_unit: i64,
    /// An unfinished session stops holding its units' places this long after it started (default
    /// 2500 s, IMI's longest valid session: past it the session would be excluded anyway).
    pub release_after_secs: f64,
    /// Seeds scheduling and query order.
    pub seed: u64,
    /// How the stimuli were built, where a choice changes what the numbers mean.
    #[serde(default)]
    pub construction: Construction,
}

/// A record of the build's choices, written by `stimuli build`; not a setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Construction {
    /// Conditions built despite their query window overlapping the references or easy queries.
    pub overlap_override: Vec<String>,
    /// How k-means units score an image; `None` when the study has no k-means units.
    pub kmeans_activation: Option<KmeansActivation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Right => "right",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PracticeConfig {
    /// Practice trials per round; 0 skips practice.
    pub trials: i64,
    /// Rounds before the participant moves on regardless.
    pub max_attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Texts {
    pub consent: String,
    pub instructions: String,
    pub debrief: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Completion {
    /// Shown at the end (Prolific's completion code, for instance).
    pub code: String,
    /// Where to send the participant afterwards; `{code}` is replaced by the completion code.
    pub redirect_url: Option<String>,
}

/// DESIGN 1.3, IMI's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExclusionThresholds {
    pub min_catch_accuracy: f64,
    pub min_answers_per_position: i64,
    pub min_instructions_secs: f64,
    pub min_total_secs: f64,
    pub max_total_secs: f64,
    pub max_practice_attempts: i64,
    /// Answers (main and catch) that came sooner than the button lock allows, counted on the server
    /// (since the previous answer) and in the reported reaction time; more than this excludes the
    /// session. The page never sends one, a script does. `None`: not checked (imported studies).
    pub max_fast_answers: Option<i64>,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            trials_per_session: 40,
            catch_per_session: 5,
            lock_ms: 1500,
            feedback: false,
            max_side: Side::Right,
            practice: PracticeConfig::default(),
            texts: Texts::default(),
            completion: Completion::default(),
            exclusion: ExclusionThresholds::default(),
            responses_per_unit: 30,
            release_after_secs: 2500.0,
            seed: 0,
            construction: Construction::default(),
        }
    }
}

impl Default for PracticeConfig {
    fn default() -> Self {
        Self {
            trials: 3,
            max_attempts: 3,
        }
    }
}

impl Default for Texts {
    fn default() -> Self {
        Self {
            consent: "You are invited to take part in a study on how people see images. It takes about \
                      15 minutes. Your answers are recorded anonymously and used for research only. You may \
                      stop at any time. By clicking \"I agree\" you consent to take part."
                .into(),
            instructions: "Each screen shows two groups of example images, one on each side, and two images \
                           in the centre.\n\nChoose the centre image that matches the group marked \"Examples to \
                           match\" better, and say how sure you are. Use the buttons or the keys 1 to 6.\n\nA short \
                           practice with feedback comes first."
                .into(),
            debrief: "Thank you! The images were chosen by how strongly they drive a unit of an artificial \
                      neural network; your answers tell us whether people can see what such a unit responds to."
                .into(),
        }
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self {
            code: "MEILAB-DONE".into(),
            redirect_url: None,
        }
    }
}

impl Default for ExclusionThresholds {
    fn default() -> Self {
        Self {
            min_catch_accuracy: 0.8,
            min_answers_per_position: 5,
            min_instructions_secs: 15.0,
            min_total_secs: 135.0,
            max_total_secs: 2500.0,
            max_practice_attempts: 3,
            max_fast_answers: Some(0),
        }
    }
}

/// A rule a configuration breaks, named by its field path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl StudyConfig {
    pub fn from_json(value: serde_json::Value) -> Result<Self, String> {
        let config: Self = serde_json::from_value(value).map_err(|e| e.to_string())?;
        match config.validate().first() {
            None => Ok(config),
            Some(error) => Err(format!("{}: {}", error.field, error.message)),
        }
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &'static str, message: &str| {
            if !ok {
                errors.push(FieldError {
                    field,
                    message: message.into(),
                });
            }
        };
        check(
            (1..=500).contains(&self.trials_per_session),
            "trials_per_session",
            "must be between 1 and 500",
        );
        check(
            (0..=100).contains(&self.catch_per_session),
            "catch_per_session",
            "must be between 0 and 100",
        );
        check(
            self.catch_per_session <= self.trials_per_session,
            "catch_per_session",
            "cannot exceed the number of main trials",
        );
        check(
            (0..=60_000).contains(&self.lock_ms),
            "lock_ms",
            "must be between 0 and 60000 ms",
        );
        check(
            (0..=50).contains(&self.practice.trials),
            "practice.trials",
            "must be between 0 and 50",
        );
        check(
            (1..=20).contains(&self.practice.max_attempts),
            "practice.max_attempts",
            "must be between 1 and 20",
        );
        for (field, text) in [
            ("texts.consent", &self.texts.consent),
            ("texts.instructions", &self.texts.instructions),
            ("texts.debrief", &self.texts.debrief),
        ] {
            check(!text.trim().is_empty(), field, "must not be empty");
            check(
                text.len() <= 20_000,
                field,
                "must be at most 20000 characters",
            );
        }
        let code = &self.completion.code;
        check(
            (1..=64).contains(&code.len())
                && code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "completion.code",
            "must be 1 to 64 letters, digits, '-' or '_'",
        );
        if let Some(url) = &self.completion.redirect_url {
            check(
                is_http_url(url),
                "completion.redirect_url",
                "must be an http:// or https:// URL",
            );
        }
        let e = &self.exclusion;
        check(
            (0.0..=1.0).contains(&e.min_catch_accuracy),
            "exclusion.min_catch_accuracy",
            "must be between 0 and 1",
        );
        check(
            e.min_answers_per_position >= 0,
            "exclusion.min_answers_per_position",
            "must not be negative",
        );
        check(
            e.min_instructions_secs >= 0.0,
            "exclusion.min_instructions_secs",
            "must not be negative",
        );
        check(
            e.min_total_secs >= 0.0 && e.min_total_secs < e.max_total_secs,
            "exclusion.max_total_secs",
            "must be greater than min_total_secs, which must not be negative",
        );
        check(
            e.max_practice_attempts >= 1,
            "exclusion.max_practice_attempts",
            "must be at least 1",
        );
        check(
            e.max_fast_answers.is_none_or(|n| n >= 0),
            "exclusion.max_fast_answers",
            "must not be negative",
        );
        check(
            self.release_after_secs.is_finite() && self.release_after_secs >= 60.0,
            "release_after_secs",
            "must be at least 60 s",
        );
        check(
            (1..=100_000).contains(&self.responses_per_unit),
            "responses_per_unit",
            "must be between 1 and 100000",
        );
        errors
    }

    /// The completion URL with the code filled in.
    pub fn redirect_url(&self) -> Option<String> {
        self.completion
            .redirect_url
            .as_ref()
            .map(|url| url.replace("{code}", &self.completion.code))
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty() && !r.starts_with('/') && !url.chars().any(char::is_whitespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(StudyConfig::default().validate(), vec![]);
    }

    #[test]
    fn more_catch_trials_than_trials_is_refused() {
        let config = StudyConfig {
            trials_per_session: 3,
            catch_per_session: 4,
            ..StudyConfig::default()
        };
        assert_eq!(config.validate()[0].field, "catch_per_session");
    }

    #[test]
    fn a_negative_lock_and_a_non_http_completion_url_are_refused() {
        let mut config = StudyConfig {
            lock_ms: -1,
            ..StudyConfig::default()
        };
        config.completion.redirect_url = Some("javascript:alert(1)".into());
        let fields: Vec<_> = config.validate().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["lock_ms", "completion.redirect_url"]);
    }

    #[test]
    fn unknown_fields_are_refused_on_load() {
        let error = StudyConfig::from_json(serde_json::json!({"trials": 3})).unwrap_err();
        assert!(error.contains("unknown field"), "{error}");
    }

    #[test]
    fn a_config_stored_before_the_construction_record_still_loads() {
        let mut old = serde_json::to_value(StudyConfig::default()).unwrap();
        old.as_object_mut().unwrap().remove("construction");
        assert_eq!(StudyConfig::from_json(old).unwrap(), StudyConfig::default());
        let built = serde_json::json!({"construction": {
            "overlap_override": ["hard99"], "kmeans_activation": "distance"}});
        let config = StudyConfig::from_json(built).unwrap();
        assert_eq!(config.construction.overlap_override, ["hard99"]);
        assert_eq!(
            config.construction.kmeans_activation,
            Some(KmeansActivation::Distance)
        );
    }

    #[test]
    fn the_redirect_url_receives_the_code() {
        let mut config = StudyConfig::default();
        config.completion.redirect_url =
            Some("https://app.prolific.com/submissions/complete?cc={code}".into());
        assert_eq!(
            config.redirect_url().as_deref(),
            Some("https://app.prolific.com/submissions/complete?cc=MEILAB-DONE")
        );
    }
}
