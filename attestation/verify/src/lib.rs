//! Verification of AWS Nitro Enclaves attestation documents.
//!
//! A document is a COSE_Sign1 (ES384) whose payload is a CBOR map (module_id, digest, timestamp,
//! pcrs, certificate, cabundle, public_key, user_data, nonce), signed by a short-lived leaf
//! certificate that chains to the AWS Nitro Enclaves root. [`verify_document`] checks, in order:
//!
//! 1. strict structure ([`document::parse`]): field types, sizes and no unknown fields;
//! 2. the certificate chain from the **pinned** root ([`chain`]): the bundle starts with the
//!    pinned root, each certificate is signed (ECDSA P-384/SHA-384) by the previous one, CA
//!    constraints and key usages hold, and every certificate is valid at the caller's time;
//! 3. the COSE ES384 signature over the payload with the leaf key;
//! 4. freshness (document age, not from the future) and the [`Policy`]: trusted releases (PCRs),
//!    debug mode, and the required nonce / public key / user data bindings.
//!
//! Nothing here reads a clock, a file or the network: the caller passes the time and the root,
//! so the same code verifies production documents (AWS root) and mock-NSM documents (developer
//! root) alike.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod chain;
mod cose;
pub use cose::sig_structure;
pub mod document;
mod error;
mod policy;

pub use chain::{PinnedRoot, AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256};
pub use document::{AttestationDocument, Pcrs};
pub use error::AttestationError;
pub use policy::{Policy, Release, VerifiedDocument};

use std::time::Duration;

/// Verifies a COSE_Sign1 attestation document at time `now` (since the Unix epoch) against
/// `root` and `policy`.
pub fn verify_document(
    bytes: &[u8],
    root: &PinnedRoot,
    policy: &Policy,
    now: Duration,
) -> Result<VerifiedDocument, AttestationError> {
    let (cose, doc) = document::parse(bytes)?;
    let leaf_key = chain::verify_chain(root, &doc.cabundle, &doc.certificate, now)?;
    cose::verify_es384(&cose, &leaf_key)?;
    policy.check(doc, now)
}
