//! bounce-worker: receives bounces (listmonk's generic webhook), records them in a
//! listmonk-compatible Postgres database with listmonk's rules, and serves them back
//! (listmonk's bounce API, streaming export, Prometheus metrics).
//!
//! Data flow: input -> `BounceEvent` -> `ingest` (group commit) -> `store::record`
//! (rules, one transaction per batch) -> Postgres -> `http::bounces` and `metrics`.

pub mod allocator;
pub mod auth;
pub mod budget;
pub mod classified;
pub mod config;
pub mod connections;
pub mod event;
pub mod evidence;
pub mod http;
pub mod ingest;
pub mod mailbox;
pub mod metrics;
pub mod plan;
pub mod providers;
pub mod relay;
pub mod rules;
pub mod secrets;
pub mod server;
pub mod smtp;
pub mod storable;
pub mod store;
pub mod telemetry;
pub mod tuning;
