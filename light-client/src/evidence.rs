//! What a host hands its enclave about one request, and the enclave's verdict on it.
//!
//! The ASC keeps a request's record in state from the block that approved it on, so the record
//! proven at any height at or after that block proves the approval: the host may prove it at the
//! height the light client can reach next, never below what the light client already trusts
//! (headers are verified forward only).

use crate::approval::{verify_request_approved, ApprovedRequest};
use crate::{Error, LightBlock, LightClient};
use kms_types::RequestId;
use serde::{Deserialize, Serialize};
use tendermint::merkle::proof::ProofOps;
use tendermint::Time;

/// Untrusted evidence that request `id` sits approved in ASC state after block `height`: the
/// light block at `height + 1` (whose app hash commits that state) and the `abci_query`
/// answer (path `store`, key `asc/req/<id>`, height `height`, `prove = true`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestEvidence {
    /// The request the host says was approved.
    pub id: RequestId,
    /// The state height the query was made at.
    pub height: u64,
    /// The light block at `height + 1`.
    pub header: LightBlock,
    /// The stored request record.
    pub value: Vec<u8>,
    /// Its ICS23 proof.
    pub proof: ProofOps,
}

impl LightClient {
    /// Decides, by itself, that `evidence` proves request `evidence.id` approved: advances the
    /// trusted state to `height + 1` with the supplied light block (or uses the trusted header
    /// if it is already there) and checks the state proof against that header's app hash.
    /// Evidence below the trusted height is refused ([`Error::NotMonotonic`]); the host must
    /// prove the request at a later height instead.
    pub fn verify_evidence(
        &mut self,
        evidence: &RequestEvidence,
        now: Time,
    ) -> Result<ApprovedRequest, Error> {
        let target = evidence
            .height
            .checked_add(1)
            .ok_or_else(|| Error::NotMonotonic("height overflow".into()))?;
        let trusted = self.height().value();
        let header = if target == trusted {
            self.check_not_expired(now)?;
            self.trusted_header()
        } else if target > trusted {
            if evidence.header.signed_header.header.height.value() != target {
                return Err(Error::NotMonotonic(format!(
                    "light block at height {}, the state at {} needs {target}",
                    evidence.header.signed_header.header.height, evidence.height
                )));
            }
            self.update(evidence.header.clone(), now)?
        } else {
            return Err(Error::NotMonotonic(format!(
                "evidence at height {target} is below the trusted height {trusted}"
            )));
        };
        verify_request_approved(&header, &evidence.id, &evidence.value, &evidence.proof)
    }
}
