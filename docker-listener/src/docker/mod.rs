//! The Docker source: Docker's `/events` stream in, frames out to the spool, with reconnection,
//! resume from the cursor and duplicate suppression at the resume boundary.
mod client;
mod event;
mod source;
pub mod split;
mod stream;

pub use client::{DockerClient, DockerError, EventStream, is_not_found};
pub use event::{DockerEvent, EventError};
pub use source::{DOCKER_EVENTS_LIMIT, DockerSource, MAX_RAW_EVENT};
pub use stream::StreamError;
