//! The integration tests, one module per area, in one test binary (so the crate, candle and actix are
//! linked once). Each test starts what it needs: the real server on port 0 against a fresh database
//! (`common::spawn_app`), a headless browser, or the `meilab` binary.

mod common;
mod vision_common;

mod admin_auth;
mod admin_browser;
mod admin_lab;
mod admin_studies;
mod analysis;
mod api_sessions;
mod bad_input;
mod durability;
mod exclusion;
mod exports;
mod hardening;
mod imi_import;
mod no_label_leak;
mod observer;
mod openapi;
mod participant_browser;
mod privacy;
mod stimuli_build;
mod vision_backbones;
mod vision_images;
mod vision_lpips;
mod vision_weights;
