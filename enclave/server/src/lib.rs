//! The KMS core service.
//!
//! [`Core`] runs requests against a [`kms_engine::Backend`]: it deduplicates them by request ID
//! (same request → same result, same ID with another request → conflict), runs the CPU-heavy
//! work off the async runtime, stores public material and sealed private material through the
//! injected [`kms_types::Storage`] and [`kms_types::Sealer`], and restores finished key sets and
//! CRSs at start-up. [`service::CoreServiceImpl`] exposes it over gRPC.
//!
//! In the enclave the same core runs behind the light client (requests come from verified chain
//! state instead of gRPC) with AWS KMS sealing and host-proxied storage; in developer mode the
//! providers in [`dev`] are used.

#![forbid(unsafe_code)]

mod core;
pub mod dev;
mod registry;
pub mod service;

pub use crate::core::{Core, CoreError};
pub use registry::{Output, RequestKind, MAX_FINISHED_DECRYPTIONS, MAX_PENDING};
