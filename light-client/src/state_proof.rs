//! ICS23 proofs of the KMS app's state against a verified header's `app_hash`.
//!
//! `abci_query` with `prove = true` at height H returns one proof op of type
//! [`PROOF_OP_TYPE`] whose data is a protobuf `ics23.CommitmentProof` from the app's Jellyfish
//! Merkle tree. State after block H is committed in the header of block H + 1, so the proof
//! checks against that header's app hash. The proof spec is pinned here rather than taken from the
//! store's crate, so the enclave does not link the store.

use crate::{Error, VerifiedHeader};
use ics23::commitment_proof::Proof as P;
use ics23::{
    CommitmentProof, HashOp, HostFunctionsManager, InnerSpec, LeafOp, LengthOp, ProofSpec,
};
use prost13::Message;
use tendermint::merkle::proof::ProofOps;

/// Proof-op type the KMS app uses.
pub const PROOF_OP_TYPE: &str = "ics23:jmt";

/// The Jellyfish Merkle tree's ICS23 spec (SHA-256, key and value pre-hashed, binary inner nodes
/// with the `JMT::IntrnalNode` prefix, 32-byte placeholder for empty children).
pub fn jmt_spec() -> ProofSpec {
    ProofSpec {
        leaf_spec: Some(LeafOp {
            hash: HashOp::Sha256.into(),
            prehash_key: HashOp::Sha256.into(),
            prehash_value: HashOp::Sha256.into(),
            length: LengthOp::NoPrefix.into(),
            prefix: b"JMT::LeafNode".to_vec(),
        }),
        inner_spec: Some(InnerSpec {
            hash: HashOp::Sha256.into(),
            child_order: vec![0, 1],
            min_prefix_length: 16,
            max_prefix_length: 16,
            child_size: 32,
            empty_child: b"SPARSE_MERKLE_PLACEHOLDER_HASH__".to_vec(),
        }),
        min_depth: 0,
        max_depth: 64,
        prehash_key_before_comparison: true,
    }
}

/// Largest proof accepted (a 256-deep path is ~16 KiB; non-existence proofs carry two).
const MAX_PROOF_BYTES: usize = 64 * 1024;

/// Extracts the commitment proof from `abci_query` proof ops.
pub fn decode_proof_ops(ops: &ProofOps, key: &[u8]) -> Result<CommitmentProof, Error> {
    let [op] = ops.ops.as_slice() else {
        return Err(Error::StateProofMalformed(format!(
            "expected one proof op, got {}",
            ops.ops.len()
        )));
    };
    if op.field_type != PROOF_OP_TYPE {
        return Err(Error::StateProofMalformed(format!(
            "proof op type {:?}, expected {PROOF_OP_TYPE:?}",
            op.field_type
        )));
    }
    if op.key != key {
        return Err(Error::StateProofKeyMismatch);
    }
    if op.data.len() > MAX_PROOF_BYTES {
        return Err(Error::StateProofMalformed("proof too large".into()));
    }
    CommitmentProof::decode(op.data.as_slice())
        .map_err(|e| Error::StateProofMalformed(format!("not an ICS23 commitment proof: {e}")))
}

fn root_mismatch(header: &VerifiedHeader) -> Error {
    Error::StateProofRootMismatch {
        app_hash: hex_upper(header.app_hash()),
    }
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// Checks that `key` holds `value` in the state committed by `header` (the header of the block
/// after the queried height).
pub fn verify_membership(
    header: &VerifiedHeader,
    proof: &CommitmentProof,
    key: &[u8],
    value: &[u8],
) -> Result<(), Error> {
    let Some(P::Exist(exist)) = &proof.proof else {
        return Err(Error::StateProofMalformed("not an existence proof".into()));
    };
    if exist.key != key {
        return Err(Error::StateProofKeyMismatch);
    }
    if exist.value != value {
        return Err(Error::StateProofValueMismatch);
    }
    let root = ics23::calculate_existence_root::<HostFunctionsManager>(exist)
        .map_err(|e| Error::StateProofMalformed(e.to_string()))?;
    if root != header.app_hash() {
        return Err(root_mismatch(header));
    }
    if !ics23::verify_membership::<HostFunctionsManager>(
        proof,
        &jmt_spec(),
        &header.app_hash().to_vec(),
        key,
        value,
    ) {
        return Err(Error::StateProofSpecViolation);
    }
    Ok(())
}

/// Checks that `key` is absent from the state committed by `header`.
pub fn verify_non_membership(
    header: &VerifiedHeader,
    proof: &CommitmentProof,
    key: &[u8],
) -> Result<(), Error> {
    let Some(P::Nonexist(non)) = &proof.proof else {
        return Err(Error::StateProofMalformed(
            "not a non-existence proof".into(),
        ));
    };
    if non.key != key {
        return Err(Error::StateProofKeyMismatch);
    }
    for side in [&non.left, &non.right].into_iter().flatten() {
        let root = ics23::calculate_existence_root::<HostFunctionsManager>(side)
            .map_err(|e| Error::StateProofMalformed(e.to_string()))?;
        if root != header.app_hash() {
            return Err(root_mismatch(header));
        }
    }
    if !ics23::verify_non_membership::<HostFunctionsManager>(
        proof,
        &jmt_spec(),
        &header.app_hash().to_vec(),
        key,
    ) {
        return Err(Error::StateProofSpecViolation);
    }
    Ok(())
}
