//! docker-listener: Docker events and in-container process/socket activity, into Wazuh.
//!
//! One module per pipeline stage (see docs/ARCHITECTURE.md):
//! [`docker`] (source) → [`encode`] (Wazuh frames) → [`sink`] (spool + output); the eBPF side
//! is [`ebpf`] (kernel records) → [`monitor`] → [`correlate`] (with [`registry`], [`labels`] and
//! [`procs`]) → [`ecs`] events → [`health`] and [`repeats`] (healthcheck summaries, repeat
//! folding) → the same spool; Docker's events pass through [`health`] too. [`state`] keeps the
//! cursor and lock, [`config`]/[`cli`] the settings, [`doctor`] the diagnostics.
pub mod allocator;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod daemon;
pub mod docker;
pub mod doctor;
pub mod ebpf;
pub mod ecs;
pub mod encode;
pub mod family;
pub mod health;
pub mod inventory;
pub mod json;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod privilege;
pub mod procs;
pub mod redact;
pub mod registry;
pub mod repeats;
pub mod seconds;
pub mod sensitive;
pub mod shrink;
pub mod sink;
pub mod state;
pub mod stats;
pub mod wazuh;
pub mod wodle;
