//! The header fields CometBFT derives from block contents, computed exactly as CometBFT 0.38 does
//! (checked against recorded CometBFT blocks in this crate's tests).

use kms_light_client::tx_proof::merkle_root;
use prost::Message;
use sha2::{Digest, Sha256};
use tendermint::block::{parts, Block, Commit};
use tendermint::Hash;
use tendermint_proto::v0_38::abci::ExecTxResult;
use tendermint_proto::v0_38::types::{
    Block as RawBlock, Commit as RawCommit, CommitSig as RawCommitSig, HashedParams,
};

/// Size of one block part (CometBFT's `BlockPartSizeBytes`).
pub const BLOCK_PART_SIZE: usize = 65536;

/// `last_commit_hash`: Merkle root of the protobuf encodings of the commit's signatures.
pub fn commit_hash(commit: Option<&Commit>) -> Hash {
    let sigs: Vec<Vec<u8>> = commit
        .map(|c| {
            c.signatures
                .iter()
                .map(|s| RawCommitSig::from(s.clone()).encode_to_vec())
                .collect()
        })
        .unwrap_or_default();
    Hash::Sha256(merkle_root(&sigs))
}

/// `last_results_hash`: Merkle root of the deterministic part (code, data, gas wanted, gas used)
/// of each transaction result.
pub fn results_hash(results: &[ExecTxResult]) -> Hash {
    let items: Vec<Vec<u8>> = results
        .iter()
        .map(|r| {
            ExecTxResult {
                code: r.code,
                data: r.data.clone(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    Hash::Sha256(merkle_root(&items))
}

/// `consensus_hash`: SHA-256 of `HashedParams{block_max_bytes, block_max_gas}`.
pub fn consensus_hash(block_max_bytes: i64, block_max_gas: i64) -> Hash {
    let bytes = HashedParams {
        block_max_bytes,
        block_max_gas,
    }
    .encode_to_vec();
    Hash::Sha256(Sha256::digest(bytes).into())
}

/// `evidence_hash` of a block without evidence (the Merkle root of nothing).
pub fn empty_evidence_hash() -> Hash {
    Hash::Sha256(merkle_root::<Vec<u8>>(&[]))
}

/// The protobuf encoding of a block as CometBFT gossips it (the first block carries an empty,
/// not a missing, last commit).
pub fn encode_block(block: &Block) -> Vec<u8> {
    let mut raw: RawBlock = block.clone().into();
    if raw.last_commit.is_none() {
        raw.last_commit = Some(RawCommit::default());
    }
    raw.encode_to_vec()
}

/// The part-set header of a block: its encoding cut in 64 KiB parts, Merkle root over the parts.
pub fn part_set_header(block: &Block) -> parts::Header {
    let bytes = encode_block(block);
    let chunks: Vec<&[u8]> = bytes.chunks(BLOCK_PART_SIZE).collect();
    let hash = Hash::Sha256(merkle_root(&chunks));
    // A block is never empty (the header alone is ~200 bytes), so total ≥ 1 and the header is valid.
    parts::Header::new(chunks.len() as u32, hash).unwrap_or_default()
}
