//! docker-listener: Docker events and in-container process/socket activity, into Wazuh.
//!
//! One module per pipeline stage (see docs/ARCHITECTURE.md):
//! [`docker`] (source) → [`encode`] (Wazuh frames) → [`sink`] (spool + output), with
//! [`ebpf`] as the second source, [`state`] for the cursor and lock, [`config`]/[`cli`] for
//! settings, [`doctor`] for diagnostics.
pub mod cli;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod doctor;
pub mod ebpf;
pub mod encode;
pub mod logging;
pub mod shrink;
pub mod sink;
pub mod state;
pub mod stats;
pub mod wazuh;
