//! Nitro Secure Module providers.
//!
//! [`Nsm`] is what the enclave runtime uses to attest, measure and get entropy. Two providers:
//! [`DeviceNsm`] talks to `/dev/nsm` inside a real enclave (through
//! `aws-nitro-enclaves-nsm-api`, which owns the ioctl; this crate has no `unsafe`), and
//! [`MockNsm`] produces documents in exactly the AWS format, signed by a chain under a developer
//! root CA ([`MockRootCa`]). Each provider names the root its documents chain to
//! ([`Nsm::trusted_root`]), so mock and production documents go through the same verifier.

#![forbid(unsafe_code)]

mod device;
#[cfg(feature = "insecure-dev")]
mod mock;

pub use device::DeviceNsm;
/// The mock NSM exists only in `insecure-dev` builds (tests, developer mode): a production
/// enclave build has no way to produce a document under a developer root.
#[cfg(feature = "insecure-dev")]
pub use mock::{MockNsm, MockRootCa};

use kms_attestation::PinnedRoot;

/// What to bind into an attestation document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    /// Application data (at most 512 bytes).
    pub user_data: Option<Vec<u8>>,
    /// The verifier's nonce (at most 512 bytes).
    pub nonce: Option<Vec<u8>>,
    /// A public key to bind, e.g. the TLS key (1..=1024 bytes).
    pub public_key: Option<Vec<u8>>,
}

impl AttestationRequest {
    fn check(&self) -> Result<(), NsmError> {
        use kms_attestation::document::{MAX_KEY_OR_CERT, MAX_USER_DATA};
        let too_long = |f: &Option<Vec<u8>>, max| f.as_ref().is_some_and(|v| v.len() > max);
        if too_long(&self.user_data, MAX_USER_DATA) || too_long(&self.nonce, MAX_USER_DATA) {
            return Err(NsmError::InvalidArgument(
                "user_data and nonce are at most 512 bytes",
            ));
        }
        if too_long(&self.public_key, MAX_KEY_OR_CERT)
            || self.public_key.as_ref().is_some_and(Vec::is_empty)
        {
            return Err(NsmError::InvalidArgument("public_key is 1..=1024 bytes"));
        }
        Ok(())
    }
}

/// A PCR's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrState {
    /// Locked PCRs can no longer be extended.
    pub locked: bool,
    /// Current value (48 bytes, SHA-384).
    pub value: Vec<u8>,
}

/// NSM failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NsmError {
    /// The device is absent (not inside an enclave).
    #[error("NSM device unavailable: {0}")]
    Unavailable(String),
    /// A request argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The PCR is locked.
    #[error("PCR {0} is locked")]
    Locked(u16),
    /// The device returned an error or an unexpected response.
    #[error("NSM error: {0}")]
    Device(String),
    /// Certificate or signing failure in the mock.
    #[error("mock NSM: {0}")]
    Mock(String),
}

/// The Nitro Secure Module interface.
pub trait Nsm: Send + Sync {
    /// A signed attestation document (COSE_Sign1) binding `req`.
    fn attest(&self, req: &AttestationRequest) -> Result<Vec<u8>, NsmError>;
    /// Reads a PCR.
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError>;
    /// Extends a PCR: `value = SHA-384(value ‖ data)`; returns the new value.
    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError>;
    /// Locks a PCR.
    fn lock_pcr(&self, index: u16) -> Result<(), NsmError>;
    /// Entropy from the module.
    fn get_random(&self) -> Result<Vec<u8>, NsmError>;
    /// The root this provider's documents chain to.
    fn trusted_root(&self) -> PinnedRoot;
    /// `device` or `mock`, for the start-up log line.
    fn kind(&self) -> &'static str;
}
