//! Key epochs: which sharing of a key set's secret key a request is served with.

use crate::RequestId;
use serde::{Deserialize, Serialize};

/// The resharing that started an epoch, as the chain completed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reshared {
    /// The resharing request.
    pub request: RequestId,
    /// The verdict digest all parties reported (the dealer set the new shares combine).
    pub verdict_digest: [u8; 32],
}

/// The epoch of a key set's sharing: 0 for the sharing key generation produced, then one more
/// for each resharing the chain completed. The ASC stamps the current epoch on every decryption
/// and resharing request it approves; a party serves a request only with the share of that
/// epoch (shares of two epochs lie on unrelated polynomials and never combine).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyEpoch {
    /// How many resharings completed before this epoch.
    pub number: u64,
    /// The resharing that started it (`None` for epoch 0).
    pub by: Option<Reshared>,
}

impl KeyEpoch {
    /// The epoch that the completion of resharing `by` starts after this one.
    pub fn next(&self, by: Reshared) -> Option<Self> {
        Some(Self {
            number: self.number.checked_add(1)?,
            by: Some(by),
        })
    }
}

impl std::fmt::Display for KeyEpoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.by {
            None => write!(f, "epoch {}", self.number),
            Some(r) => write!(f, "epoch {} (resharing {})", self.number, r.request),
        }
    }
}
