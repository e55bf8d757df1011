//! The app's state on disk: the ordered write sets of every committed block, in redb.
//!
//! The Merkle store is a deterministic function of the write sets applied to it in order, so the
//! durable state is that sequence: at ABCI `Commit` the block's write set (and, with the first
//! block, `InitChain`'s) is appended in one redb transaction, with the chain ID. Opening the app
//! replays them into the store (no transaction is executed again) and checks the result against
//! the app hash recorded with the last block. A crash before `Commit` loses the uncommitted block
//! only: `Info` then reports the previous height and CometBFT's handshake replays that block,
//! which produces the same writes; a crash inside `Commit` leaves redb's previous transaction.
//!
//! redb is a pure-Rust, ACID, single-file embedded store (copy-on-write B-trees, crash-safe
//! commits) with no C dependency to build for the enclave's host or an operator's node.

use crate::store::WriteSet;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CHAIN_ID: &str = "chain_id";
const APP_HASH: &str = "app_hash";

/// Why the state on disk could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// redb failed.
    #[error("state database: {0}")]
    Db(String),
    /// A record does not decode: the file was not written by this app or was damaged.
    #[error("state database is corrupt: {0}")]
    Corrupt(&'static str),
    /// Replaying the stored blocks does not give the stored app hash.
    #[error("replayed state does not match the recorded app hash at version {0}")]
    AppHash(u64),
}

fn db_err(e: impl std::fmt::Display) -> PersistError {
    PersistError::Db(e.to_string())
}

/// What was committed so far.
pub struct Stored {
    /// The chain ID from `InitChain` (empty before the first commit).
    pub chain_id: String,
    /// `(version, writes)` in order.
    pub blocks: Vec<(u64, WriteSet)>,
    /// The app hash after the last block.
    pub app_hash: Vec<u8>,
}

/// The state database of one app.
pub struct StateDb {
    db: Database,
}

impl StateDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, PersistError> {
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(BLOCKS).map_err(db_err)?;
        tx.open_table(META).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Everything committed, in order.
    pub fn load(&self) -> Result<Stored, PersistError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        let read_meta = |k: &str| -> Result<Vec<u8>, PersistError> {
            Ok(meta
                .get(k)
                .map_err(db_err)?
                .map(|v| v.value().to_vec())
                .unwrap_or_default())
        };
        let chain_id = String::from_utf8(read_meta(CHAIN_ID)?)
            .map_err(|_| PersistError::Corrupt("chain ID"))?;
        let app_hash = read_meta(APP_HASH)?;
        let blocks = tx.open_table(BLOCKS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in blocks.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push((k.value(), decode(v.value())?));
        }
        Ok(Stored {
            chain_id,
            blocks: out,
            app_hash,
        })
    }

    /// Appends `blocks` and records the chain ID and the app hash after them, atomically.
    pub fn append(
        &self,
        chain_id: &str,
        blocks: &[(u64, WriteSet)],
        app_hash: &[u8],
    ) -> Result<(), PersistError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(BLOCKS).map_err(db_err)?;
            for (version, writes) in blocks {
                t.insert(*version, encode(writes).as_slice())
                    .map_err(db_err)?;
            }
            let mut m = tx.open_table(META).map_err(db_err)?;
            m.insert(CHAIN_ID, chain_id.as_bytes()).map_err(db_err)?;
            m.insert(APP_HASH, app_hash).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }
}

/// `u32 count ‖ (u32 len ‖ key ‖ u8 present ‖ [u32 len ‖ value])*`, big-endian.
fn encode(writes: &WriteSet) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len(writes.len()));
    for (k, v) in writes {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&len(v.len()));
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode(mut b: &[u8]) -> Result<WriteSet, PersistError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], PersistError> {
        let (head, rest) = b
            .split_at_checked(n)
            .ok_or(PersistError::Corrupt("truncated block"))?;
        *b = rest;
        Ok(head)
    }
    fn u32_of(b: &mut &[u8]) -> Result<usize, PersistError> {
        let raw: [u8; 4] = take(b, 4)?
            .try_into()
            .map_err(|_| PersistError::Corrupt("length"))?;
        Ok(u32::from_be_bytes(raw) as usize)
    }
    let count = u32_of(&mut b)?;
    let mut out = WriteSet::new();
    for _ in 0..count {
        let klen = u32_of(&mut b)?;
        let key = take(&mut b, klen)?.to_vec();
        let value = match take(&mut b, 1)? {
            [1] => {
                let vlen = u32_of(&mut b)?;
                Some(take(&mut b, vlen)?.to_vec())
            }
            [0] => None,
            _ => return Err(PersistError::Corrupt("presence flag")),
        };
        out.insert(key, value);
    }
    if !b.is_empty() {
        return Err(PersistError::Corrupt("trailing bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_sets_round_trip_and_damage_is_typed() {
        let mut w = WriteSet::new();
        w.insert(b"a".to_vec(), Some(b"1".to_vec()));
        w.insert(b"gone".to_vec(), None);
        w.insert(Vec::new(), Some(Vec::new()));
        let e = encode(&w);
        assert_eq!(decode(&e).unwrap(), w);
        for cut in 0..e.len() {
            assert!(decode(&e[..cut]).is_err(), "truncated at {cut}");
        }
        let mut trailing = e.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
    }

    #[test]
    fn appended_blocks_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let mut w = WriteSet::new();
        w.insert(b"k".to_vec(), Some(b"v".to_vec()));
        {
            let db = StateDb::open(&path).unwrap();
            db.append("c", &[(0, WriteSet::new()), (1, w.clone())], b"h1")
                .unwrap();
        }
        let s = StateDb::open(&path).unwrap().load().unwrap();
        assert_eq!(s.chain_id, "c");
        assert_eq!(s.app_hash, b"h1");
        assert_eq!(s.blocks, vec![(0, WriteSet::new()), (1, w)]);
    }
}
