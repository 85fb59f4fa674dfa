pub mod accounts;
pub mod analysis;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod jobs;
#[cfg(test)]
mod layering;
pub mod loadtest;
pub mod observer;
pub mod progress;
pub mod states;
pub mod stimuli;
pub mod study;
pub mod telemetry;
pub mod vision;
pub mod web;
