//! What a host hands its enclave about one request, and the enclave's verdict on it.
//!
//! The ASC keeps a request's record in state from the block that approved it on, so the record
//! proven at any height at or after that block proves the approval: the host may prove it at the
//! height the light client can reach next, never below what the light client already trusts
//! (headers are verified forward only).

use crate::approval::{verify_request_approved, ApprovedRequest};
use crate::state_proof::{decode_proof_ops, verify_membership};
use crate::{Error, LightBlock, LightClient};
use kms_chain_types::codec;
use kms_chain_types::state::{keys, Config};
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
        let header = self.state_header(evidence.height, &evidence.header, now)?;
        verify_request_approved(&header, &evidence.id, &evidence.value, &evidence.proof)
    }

    /// Decides, by itself, what the config contract holds after block `evidence.height`
    /// (parties, their signers and registered identity keys, attestation policies): advances to
    /// `height + 1` as [`LightClient::verify_evidence`] does and checks the proof of the
    /// config record against that header's app hash. The header must be at most `max_age` old
    /// at `now`: whoever supplies the evidence picks the height, and must not pick a party set
    /// from long ago.
    pub fn verify_config(
        &mut self,
        evidence: &ConfigEvidence,
        now: Time,
        max_age: std::time::Duration,
    ) -> Result<Config, Error> {
        let header = self.state_header(evidence.height, &evidence.header, now)?;
        let age = now.duration_since(header.time()).unwrap_or_default();
        if age > max_age {
            return Err(Error::StaleState {
                age_s: age.as_secs(),
                max_s: max_age.as_secs(),
            });
        }
        let commitment = decode_proof_ops(&evidence.proof, keys::CONFIG)?;
        verify_membership(&header, &commitment, keys::CONFIG, &evidence.value)?;
        codec::decode(&evidence.value).map_err(|e| Error::RecordMalformed(e.to_string()))
    }

    /// The verified header committing the state after block `height`: the trusted one, or
    /// `block` (which must be at `height + 1`) verified forward.
    fn state_header(
        &mut self,
        height: u64,
        block: &LightBlock,
        now: Time,
    ) -> Result<crate::VerifiedHeader, Error> {
        let target = height
            .checked_add(1)
            .ok_or_else(|| Error::NotMonotonic("height overflow".into()))?;
        let trusted = self.height().value();
        if target == trusted {
            self.check_not_expired(now)?;
            Ok(self.trusted_header())
        } else if target > trusted {
            if block.signed_header.header.height.value() != target {
                return Err(Error::NotMonotonic(format!(
                    "light block at height {}, the state at {height} needs {target}",
                    block.signed_header.header.height
                )));
            }
            self.update(block.clone(), now)
        } else {
            Err(Error::NotMonotonic(format!(
                "evidence at height {target} is below the trusted height {trusted}"
            )))
        }
    }
}

/// Untrusted evidence of the config contract's record after block `height`: the light block at
/// `height + 1` and the `abci_query` answer (path `store`, key `config`, `prove = true`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigEvidence {
    /// The state height the query was made at.
    pub height: u64,
    /// The light block at `height + 1`.
    pub header: LightBlock,
    /// The stored config record.
    pub value: Vec<u8>,
    /// Its ICS23 proof.
    pub proof: ProofOps,
}
