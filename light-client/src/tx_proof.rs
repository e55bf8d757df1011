//! Transaction inclusion against a header's `data_hash`.
//!
//! CometBFT's `data_hash` is the RFC 6962-style simple Merkle root over SHA-256(tx) of each
//! transaction: leaf = SHA-256(0x00 ‖ SHA-256(tx)), inner = SHA-256(0x01 ‖ left ‖ right), split
//! at the largest power of two below the count. A proof gives the leaf's index, the count and the
//! sibling hashes ("aunts") from the leaf up.

use crate::{Error, VerifiedHeader};
use sha2::{Digest, Sha256};
use tendermint::merkle::Proof as MerkleProof;
use tendermint::tx::Proof;

/// Largest number of aunts a proof may carry (a tree of 2^64 leaves).
const MAX_AUNTS: usize = 64;

fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn inner_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

fn split_point(n: u64) -> u64 {
    // Largest power of two strictly below n (n ≥ 2).
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The Merkle root of a list of items, as CometBFT's `merkle.HashFromByteSlices` computes it.
pub fn merkle_root<T: AsRef<[u8]>>(items: &[T]) -> [u8; 32] {
    match items {
        [] => Sha256::digest([]).into(),
        [one] => leaf_hash(one.as_ref()),
        _ => {
            let k = split_point(items.len() as u64) as usize;
            let (left, right) = items.split_at(k.min(items.len()));
            inner_hash(&merkle_root(left), &merkle_root(right))
        }
    }
}

/// The `data_hash` of a block with these transactions.
pub fn data_hash(txs: &[impl AsRef<[u8]>]) -> [u8; 32] {
    let hashed: Vec<[u8; 32]> = txs
        .iter()
        .map(|t| Sha256::digest(t.as_ref()).into())
        .collect();
    merkle_root(&hashed)
}

/// The aunts proving item `index` of `items` (leaf-to-root order).
pub fn aunts<T: AsRef<[u8]>>(items: &[T], index: usize) -> Vec<[u8; 32]> {
    if items.len() <= 1 {
        return Vec::new();
    }
    let k = split_point(items.len() as u64) as usize;
    let (left, right) = items.split_at(k.min(items.len()));
    if index < k {
        let mut a = aunts(left, index);
        a.push(merkle_root(right));
        a
    } else {
        let mut a = aunts(right, index - k);
        a.push(merkle_root(left));
        a
    }
}

fn root_from_aunts(index: u64, total: u64, leaf: [u8; 32], aunts: &[[u8; 32]]) -> Option<[u8; 32]> {
    if total == 0 || index >= total {
        return None;
    }
    if total == 1 {
        return aunts.is_empty().then_some(leaf);
    }
    let (last, rest) = aunts.split_last()?;
    let k = split_point(total);
    if index < k {
        Some(inner_hash(&root_from_aunts(index, k, leaf, rest)?, last))
    } else {
        Some(inner_hash(
            last,
            &root_from_aunts(index - k, total - k, leaf, rest)?,
        ))
    }
}

/// The leaf hash of an item: SHA-256(0x00 ‖ item).
pub fn leaf(item: &[u8]) -> [u8; 32] {
    leaf_hash(item)
}

/// Computes the root a Merkle proof leads to for `item` (the leaf before leaf-hashing).
pub fn proof_root(proof: &MerkleProof, item: &[u8]) -> Result<[u8; 32], Error> {
    if proof.aunts.len() > MAX_AUNTS {
        return Err(Error::TxProofMalformed("too many aunts".into()));
    }
    let leaf = leaf_hash(item);
    if proof.leaf_hash.as_bytes() != leaf {
        return Err(Error::TxProofDataMismatch);
    }
    let aunts: Vec<[u8; 32]> = proof
        .aunts
        .iter()
        .map(|h| {
            h.as_bytes()
                .try_into()
                .map_err(|_| Error::TxProofMalformed("aunt is not 32 bytes".into()))
        })
        .collect::<Result<_, _>>()?;
    root_from_aunts(proof.index, proof.total, leaf, &aunts).ok_or_else(|| {
        Error::TxProofMalformed(format!(
            "index {} / total {} / {} aunts are inconsistent",
            proof.index,
            proof.total,
            aunts.len()
        ))
    })
}

/// Checks that `tx` is included in the block whose header was verified.
pub fn verify_tx_inclusion(header: &VerifiedHeader, tx: &[u8], proof: &Proof) -> Result<(), Error> {
    if proof.data != tx {
        return Err(Error::TxProofDataMismatch);
    }
    let data_hash = header
        .data_hash()
        .ok_or_else(|| Error::TxProofMalformed("header has no data hash".into()))?;
    let item: [u8; 32] = Sha256::digest(tx).into();
    let root = proof_root(&proof.proof, &item)?;
    if root != data_hash.as_bytes() || proof.root_hash.as_bytes() != data_hash.as_bytes() {
        return Err(Error::TxNotIncluded {
            data_hash: data_hash.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tendermint::Hash;

    fn proof_for(txs: &[Vec<u8>], i: usize) -> MerkleProof {
        let items: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
        MerkleProof {
            total: txs.len() as u64,
            index: i as u64,
            leaf_hash: Hash::Sha256(leaf_hash(&items[i])),
            aunts: aunts(&items, i).into_iter().map(Hash::Sha256).collect(),
        }
    }

    #[test]
    fn every_leaf_of_every_size_proves() {
        for n in 1..=17usize {
            let txs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; i + 1]).collect();
            let root = data_hash(&txs);
            for i in 0..n {
                let p = proof_for(&txs, i);
                let item: [u8; 32] = Sha256::digest(&txs[i]).into();
                assert_eq!(proof_root(&p, &item).unwrap(), root, "n={n} i={i}");
                // Another index with the same aunts does not lead to the root.
                let mut q = p.clone();
                q.index = ((i + 1) % n) as u64;
                if n > 1 {
                    assert_ne!(proof_root(&q, &item).ok(), Some(root));
                }
            }
        }
    }

    #[test]
    fn malformed_proofs_are_errors() {
        let txs = vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let item: [u8; 32] = Sha256::digest(b"a").into();
        let mut p = proof_for(&txs, 0);
        p.total = 0;
        assert!(matches!(
            proof_root(&p, &item),
            Err(Error::TxProofMalformed(_))
        ));
        let mut p = proof_for(&txs, 0);
        p.index = 7;
        assert!(matches!(
            proof_root(&p, &item),
            Err(Error::TxProofMalformed(_))
        ));
        let mut p = proof_for(&txs, 0);
        p.aunts.clear();
        assert!(matches!(
            proof_root(&p, &item),
            Err(Error::TxProofMalformed(_))
        ));
        let p = proof_for(&txs, 0);
        let other: [u8; 32] = Sha256::digest(b"b").into();
        assert!(matches!(
            proof_root(&p, &other),
            Err(Error::TxProofDataMismatch)
        ));
    }
}
