//! The authenticated state: a versioned Jellyfish Merkle tree (one version per block) whose root
//! is the app hash, and which answers reads with ICS23 proofs.
//!
//! Nodes and values are kept in memory; durability comes from replaying the block log (the devnet
//! does this on restart, CometBFT would through its handshake). The store keeps the last
//! `keep_versions` versions (queries and proofs at those heights prove against their app hashes;
//! a light client proves a request against a recent header) and prunes older ones: nodes that
//! became stale at or before the oldest kept version, older roots, and value versions no kept
//! version can read.

use jmt::storage::{HasPreimage, LeafNode, Node, NodeBatch, NodeKey, StaleNodeIndex, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, Version};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Versions kept by default.
pub const DEFAULT_KEEP_VERSIONS: u64 = 10_000;

/// A batch of writes: `None` deletes.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Errors of the store (a missing node means corrupted state, never bad input).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// jmt reported an inconsistency.
    #[error("merkle store: {0}")]
    Tree(String),
    /// Versions must increase by one.
    #[error("version {got} does not follow {latest:?}")]
    Version {
        /// Requested.
        got: Version,
        /// Latest committed.
        latest: Option<Version>,
    },
    /// Asked for a version not committed yet.
    #[error("version {0} is not committed")]
    Unknown(Version),
}

#[derive(Default)]
struct Nodes {
    nodes: HashMap<NodeKey, Node>,
    values: HashMap<KeyHash, BTreeMap<Version, Option<OwnedValue>>>,
    preimages: HashMap<KeyHash, Vec<u8>>,
}

impl TreeReader for Nodes {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self
            .values
            .get(&key_hash)
            .and_then(|m| m.range(..=max_version).next_back())
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used when restoring a tree from chunks (state sync), which this store does not do.
        anyhow::bail!("state restore is not supported")
    }
}

impl HasPreimage for Nodes {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.preimages.get(&key_hash).cloned())
    }
}

impl Nodes {
    fn write_node_batch(&mut self, batch: &NodeBatch) {
        for (k, n) in batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((version, key_hash), v) in batch.values() {
            self.values
                .entry(*key_hash)
                .or_default()
                .insert(*version, v.clone());
        }
    }
}

/// The versioned store.
pub struct MerkleStore {
    inner: Nodes,
    roots: BTreeMap<Version, RootHash>,
    stale: BTreeSet<StaleNodeIndex>,
    written: BTreeMap<Version, Vec<KeyHash>>,
    keep_versions: u64,
}

impl Default for MerkleStore {
    fn default() -> Self {
        Self::with_retention(DEFAULT_KEEP_VERSIONS)
    }
}

fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Sha256>(key)
}

impl MerkleStore {
    /// An empty store with no version, keeping [`DEFAULT_KEEP_VERSIONS`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that keeps the last `keep_versions` versions (at least 1).
    pub fn with_retention(keep_versions: u64) -> Self {
        Self {
            inner: Nodes::default(),
            roots: BTreeMap::new(),
            stale: BTreeSet::new(),
            written: BTreeMap::new(),
            keep_versions: keep_versions.max(1),
        }
    }

    /// The oldest version still readable.
    pub fn oldest_version(&self) -> Option<Version> {
        self.roots.keys().next().copied()
    }

    /// Number of tree nodes held (for tests and metrics).
    pub fn node_count(&self) -> usize {
        self.inner.nodes.len()
    }

    /// Number of stored value versions (for tests and metrics).
    pub fn value_version_count(&self) -> usize {
        self.inner.values.values().map(BTreeMap::len).sum()
    }

    fn prune(&mut self) {
        let Some(latest) = self.latest_version() else {
            return;
        };
        let Some(oldest) = (latest + 1).checked_sub(self.keep_versions) else {
            return;
        };
        while let Some(first) = self.stale.first() {
            if first.stale_since_version > oldest {
                break;
            }
            if let Some(i) = self.stale.pop_first() {
                self.inner.nodes.remove(&i.node_key);
            }
        }
        let old: Vec<Version> = self.roots.range(..oldest).map(|(v, _)| *v).collect();
        for v in old {
            self.roots.remove(&v);
            for kh in self.written.remove(&v).unwrap_or_default() {
                if let Some(m) = self.inner.values.get_mut(&kh) {
                    // Keep the newest entry the oldest kept version reads, and later ones.
                    if let Some(from) = m.range(..=oldest).next_back().map(|(v, _)| *v) {
                        *m = m.split_off(&from);
                    }
                }
            }
        }
    }

    /// The latest committed version.
    pub fn latest_version(&self) -> Option<Version> {
        self.roots.keys().next_back().copied()
    }

    /// The root hash of a committed version.
    pub fn root(&self, version: Version) -> Result<[u8; 32], StoreError> {
        self.roots
            .get(&version)
            .map(|r| r.0)
            .ok_or(StoreError::Unknown(version))
    }

    /// Applies `writes` as version `version` (the next one) and returns the new root.
    pub fn commit(&mut self, version: Version, writes: &WriteSet) -> Result<[u8; 32], StoreError> {
        let latest = self.latest_version();
        let expected_ok = match latest {
            None => true,
            Some(l) => version == l + 1,
        };
        if !expected_ok {
            return Err(StoreError::Version {
                got: version,
                latest,
            });
        }
        let set: Vec<(KeyHash, Option<OwnedValue>)> = writes
            .iter()
            .map(|(k, v)| (key_hash(k), v.clone()))
            .collect();
        let (root, batch) = JellyfishMerkleTree::<_, Sha256>::new(&self.inner)
            .put_value_set(set, version)
            .map_err(|e| StoreError::Tree(e.to_string()))?;
        self.inner.write_node_batch(&batch.node_batch);
        self.stale.extend(batch.stale_node_index_batch);
        if let (true, Some(previous)) = (writes.is_empty(), latest) {
            // With nothing to write, jmt copies the root to the new version without marking the
            // old root stale: mark it here, or every empty block would leak one node.
            let root_path: jmt::storage::NibblePath = std::iter::empty().collect();
            self.stale.insert(StaleNodeIndex {
                stale_since_version: version,
                node_key: NodeKey::new(previous, root_path),
            });
        }
        for k in writes.keys() {
            self.inner.preimages.insert(key_hash(k), k.clone());
        }
        self.written
            .insert(version, writes.keys().map(|k| key_hash(k)).collect());
        self.roots.insert(version, root);
        self.prune();
        Ok(root.0)
    }

    /// Reads a key at a version.
    pub fn get(&self, key: &[u8], version: Version) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.roots.contains_key(&version) {
            return Err(StoreError::Unknown(version));
        }
        self.inner
            .get_value_option(version, key_hash(key))
            .map_err(|e| StoreError::Tree(e.to_string()))
    }

    /// Reads a key at a version with an ICS23 proof of membership or non-membership against that
    /// version's root.
    pub fn get_with_proof(
        &self,
        key: &[u8],
        version: Version,
    ) -> Result<(Option<Vec<u8>>, ics23::CommitmentProof), StoreError> {
        if !self.roots.contains_key(&version) {
            return Err(StoreError::Unknown(version));
        }
        JellyfishMerkleTree::<_, Sha256>::new(&self.inner)
            .get_with_ics23_proof(key.to_vec(), version)
            .map_err(|e| StoreError::Tree(e.to_string()))
    }
}

/// The ICS23 proof spec of this store (jmt's, SHA-256).
pub fn proof_spec() -> ics23::ProofSpec {
    jmt::ics23_spec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ics23::HostFunctionsManager;

    fn ws(items: &[(&str, Option<&str>)]) -> WriteSet {
        items
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn empty_blocks_do_not_grow_the_store() {
        let mut s = MerkleStore::with_retention(5);
        s.commit(0, &ws(&[("a", Some("1")), ("b", Some("2"))]))
            .unwrap();
        for v in 1..=20 {
            s.commit(v, &WriteSet::new()).unwrap();
        }
        let after_20 = s.node_count();
        for v in 21..=220 {
            s.commit(v, &WriteSet::new()).unwrap();
        }
        // Before: one more node per empty block (200 here).
        assert_eq!(s.node_count(), after_20);
        // The kept versions still prove.
        let (v, _) = s.get_with_proof(b"a", 216).unwrap();
        assert_eq!(v, Some(b"1".to_vec()));
        assert!(s.get(b"a", 215).is_err(), "pruned version");
    }

    #[test]
    fn versions_roots_and_proofs() {
        let mut s = MerkleStore::new();
        let r0 = s
            .commit(0, &ws(&[("a", Some("1")), ("b", Some("2"))]))
            .unwrap();
        // An empty block still makes a version, with the same root.
        let r1 = s.commit(1, &WriteSet::new()).unwrap();
        assert_eq!(r0, r1);
        let r2 = s.commit(2, &ws(&[("a", Some("3")), ("b", None)])).unwrap();
        assert_ne!(r1, r2);
        assert!(matches!(
            s.commit(4, &WriteSet::new()),
            Err(StoreError::Version { .. })
        ));
        assert_eq!(s.get(b"a", 1).unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get(b"a", 2).unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.get(b"b", 2).unwrap(), None);

        let spec = proof_spec();
        let (v, p) = s.get_with_proof(b"a", 2).unwrap();
        assert_eq!(v, Some(b"3".to_vec()));
        assert!(ics23::verify_membership::<HostFunctionsManager>(
            &p,
            &spec,
            &r2.to_vec(),
            b"a",
            b"3"
        ));
        // Same proof: wrong value, wrong key, wrong root.
        assert!(!ics23::verify_membership::<HostFunctionsManager>(
            &p,
            &spec,
            &r2.to_vec(),
            b"a",
            b"1"
        ));
        assert!(!ics23::verify_membership::<HostFunctionsManager>(
            &p,
            &spec,
            &r2.to_vec(),
            b"b",
            b"3"
        ));
        assert!(!ics23::verify_membership::<HostFunctionsManager>(
            &p,
            &spec,
            &r1.to_vec(),
            b"a",
            b"3"
        ));
        let (v, p) = s.get_with_proof(b"b", 2).unwrap();
        assert_eq!(v, None);
        assert!(ics23::verify_non_membership::<HostFunctionsManager>(
            &p,
            &spec,
            &r2.to_vec(),
            b"b"
        ));
        // An old version still proves against its own root.
        let (_, p) = s.get_with_proof(b"b", 1).unwrap();
        assert!(ics23::verify_membership::<HostFunctionsManager>(
            &p,
            &spec,
            &r1.to_vec(),
            b"b",
            b"2"
        ));
    }

    /// Hole 13: old versions are pruned (nodes, roots, value versions), the kept ones still
    /// prove against their roots, and memory stops growing with the number of blocks.
    #[test]
    fn old_versions_are_pruned_and_kept_ones_still_prove() {
        let keep = 3;
        let mut pruned = MerkleStore::with_retention(keep);
        let mut full = MerkleStore::with_retention(u64::MAX);
        let mut roots = Vec::new();
        for v in 0..50u64 {
            let w = ws(&[
                ("hot", Some(&v.to_string())),
                (&format!("cold-{}", v % 5), Some("x")),
            ]);
            roots.push(pruned.commit(v, &w).unwrap());
            assert_eq!(full.commit(v, &w).unwrap(), roots[v as usize]);
        }
        assert_eq!(pruned.oldest_version(), Some(50 - keep));
        assert!(matches!(
            pruned.get(b"hot", 46),
            Err(StoreError::Unknown(46))
        ));
        assert!(matches!(
            pruned.get_with_proof(b"hot", 0),
            Err(StoreError::Unknown(0))
        ));
        let spec = proof_spec();
        for v in 50 - keep..50 {
            let (val, p) = pruned.get_with_proof(b"hot", v).unwrap();
            assert_eq!(val, Some(v.to_string().into_bytes()));
            assert!(ics23::verify_membership::<HostFunctionsManager>(
                &p,
                &spec,
                &roots[v as usize].to_vec(),
                b"hot",
                v.to_string().as_bytes()
            ));
            // A key last written long ago is still readable and provable.
            let (val, p) = pruned.get_with_proof(b"cold-0", v).unwrap();
            assert_eq!(val, Some(b"x".to_vec()));
            assert!(ics23::verify_membership::<HostFunctionsManager>(
                &p,
                &spec,
                &roots[v as usize].to_vec(),
                b"cold-0",
                b"x"
            ));
        }
        assert!(pruned.node_count() * 4 < full.node_count());
        assert!(pruned.value_version_count() * 4 < full.value_version_count());
        // Pruning keeps memory flat: 50 more versions add nothing beyond the window.
        let nodes_at_50 = pruned.node_count();
        for v in 50..100u64 {
            let w = ws(&[
                ("hot", Some(&v.to_string())),
                (&format!("cold-{}", v % 5), Some("x")),
            ]);
            pruned.commit(v, &w).unwrap();
        }
        assert!(pruned.node_count() <= nodes_at_50 + 2);
    }
}
