//! The question the enclave asks before acting: was this request finalized and approved by the
//! ASC as of a verified header?

use crate::state_proof::{decode_proof_ops, verify_membership};
use crate::{Error, VerifiedHeader};
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord};
use kms_types::RequestId;
use tendermint::merkle::proof::ProofOps;

/// A request the ASC approved, proven against a verified header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovedRequest {
    /// The ASC's record (request, requester, application, status, responses so far).
    pub record: RequestRecord,
    /// Height of the header whose app hash proves it.
    pub proven_at: u64,
}

/// Checks that the ASC state committed by `header` holds an approved request with ID `id`:
/// `value` and `proof` are what `abci_query` (path `store`, key `asc/req/<id>`, `prove = true`,
/// height `header.height() - 1`) returned. The ASC stores only requests it validated, charged
/// and its ISC allowed, so presence is approval; the record's request must hash to `id`.
pub fn verify_request_approved(
    header: &VerifiedHeader,
    id: &RequestId,
    value: &[u8],
    proof: &ProofOps,
) -> Result<ApprovedRequest, Error> {
    let key = keys::request(id);
    let commitment = decode_proof_ops(proof, &key)?;
    verify_membership(header, &commitment, &key, value)?;
    let record: RequestRecord =
        codec::decode(value).map_err(|e| Error::RecordMalformed(e.to_string()))?;
    let derived = record.request.request_id();
    if record.id != *id || derived != *id {
        return Err(Error::RequestMismatch {
            got: derived.to_string(),
            expected: id.to_string(),
        });
    }
    Ok(ApprovedRequest {
        record,
        proven_at: header.height(),
    })
}
