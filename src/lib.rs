pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod stimuli;
pub mod study;
pub mod telemetry;
pub mod web;
