//! The execution context of one transaction: reads see committed state, then the block's earlier
//! transactions, then this transaction's own writes; writes are kept apart until the transaction
//! succeeds, so a rejected transaction leaves no trace.

use crate::error::TxError;
use crate::store::{MerkleStore, WriteSet};
use kms_chain_types::codec;
use serde::{de::DeserializeOwned, Serialize};
use tendermint_proto::v0_38::abci::{Event, EventAttribute};

/// One transaction's view of the state.
pub struct Ctx<'a> {
    store: &'a MerkleStore,
    block: &'a WriteSet,
    writes: WriteSet,
    events: Vec<Event>,
    /// Height of the block being executed.
    pub height: u64,
}

impl<'a> Ctx<'a> {
    /// A context over committed state plus the block's writes so far.
    pub fn new(store: &'a MerkleStore, block: &'a WriteSet, height: u64) -> Self {
        Self {
            store,
            block,
            writes: WriteSet::new(),
            events: Vec::new(),
            height,
        }
    }

    /// Raw read.
    pub fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TxError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.block.get(key) {
            return Ok(v.clone());
        }
        match self.store.latest_version() {
            None => Ok(None),
            Some(v) => self
                .store
                .get(key, v)
                .map_err(|e| TxError::Internal(e.to_string())),
        }
    }

    /// Typed read; a stored record that does not decode is state corruption.
    pub fn get<T: Serialize + DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, TxError> {
        match self.raw(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| {
                TxError::Internal(format!(
                    "stored record {} does not decode: {e}",
                    String::from_utf8_lossy(key)
                ))
            }),
        }
    }

    /// Typed write.
    pub fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T) {
        self.writes.insert(key, Some(codec::encode(value)));
    }

    /// Raw write.
    pub fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Deletion.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Emits an ABCI event (attributes indexed, so `tx_search` finds them).
    pub fn emit(&mut self, kind: &str, attrs: &[(&str, String)]) {
        self.events.push(Event {
            r#type: kind.to_string(),
            attributes: attrs
                .iter()
                .map(|(k, v)| EventAttribute {
                    key: (*k).to_string(),
                    value: v.clone(),
                    index: true,
                })
                .collect(),
        });
    }

    /// Bytes this transaction writes so far (key + value of every non-deleting write): what
    /// state fees are charged on.
    pub fn written_bytes(&self) -> u64 {
        self.writes
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.len() + v.len()) as u64))
            .sum()
    }

    /// The writes and events, once the transaction succeeded.
    pub fn finish(self) -> (WriteSet, Vec<Event>) {
        (self.writes, self.events)
    }
}
