//! Library side of the `kms` command: starting a developer-mode core, the demo flow and the
//! benchmark, so tests drive exactly what the command runs.

#![forbid(unsafe_code)]

pub mod auditor;
pub mod bench;
pub mod bench_ceremony;
pub mod bench_consensus;
pub mod bench_runtime;
pub mod chain;
pub mod demo;
pub mod demo_error;
pub mod demo_threshold;
pub mod devserver;
pub mod eif;
pub mod network;
pub mod parties;
