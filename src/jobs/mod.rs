//! Long work (activation extraction, trial building, observer scoring) as jobs in a PostgreSQL queue,
//! claimed with `FOR UPDATE SKIP LOCKED` by any number of workers.

pub mod worker;

pub use worker::Worker;
