//! `netloom watch`: keep the kernel matching the file for as long as it
//! runs. `files` says when the topology file has new content, `schedule`
//! merges what woke the loop and paces retries, `metrics` serves what the
//! loop did.

pub mod files;
pub mod metrics;
pub mod schedule;
