//! The ABCI 2.0 application (CometBFT 0.38): the same object runs under a real CometBFT node
//! (through `tendermint_abci::ServerBuilder`) and under the embedded devnet.

use crate::ctx::Ctx;
use crate::error::{TxError, CODESPACE};
use crate::exec;
use crate::persist::PersistError;
use crate::store::{MerkleStore, WriteSet};
use kms_chain_types::codec;
use kms_chain_types::state::{keys, Account, Config};
use kms_chain_types::tx::decode_tx;
use prost13::Message as _;
use std::sync::{Arc, Mutex, MutexGuard};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, ExecTxResult, RequestCheckTx, RequestFinalizeBlock,
    RequestInfo, RequestInitChain, RequestPrepareProposal, RequestProcessProposal, RequestQuery,
    ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock, ResponseInfo, ResponseInitChain,
    ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery,
};
use tendermint_proto::v0_38::crypto::{ProofOp, ProofOps};

/// The ABCI query path for raw state reads (`data` is the key).
pub const QUERY_STORE: &str = "store";
/// The proof-op type of the ICS23 proofs returned by store queries.
pub const PROOF_OP_TYPE: &str = "ics23:jmt";
/// The app protocol version reported to CometBFT.
pub const APP_VERSION: u64 = 1;

struct State {
    chain_id: String,
    store: MerkleStore,
    last_height: i64,
    last_app_hash: Vec<u8>,
    /// Where committed blocks go (`None`: in memory only).
    db: Option<crate::persist::StateDb>,
    /// Write sets applied since the last successful persist (InitChain's and the blocks').
    pending: Vec<(u64, WriteSet)>,
    /// CheckTx's view: the writes of every transaction CheckTx accepted since the last commit,
    /// over committed state (the mempool's pending nonces, balances and responses). Reset at
    /// `Commit`; CometBFT's recheck of the remaining mempool rebuilds it.
    check: WriteSet,
}

/// The KMS chain application. Clones share one state.
#[derive(Clone)]
pub struct KmsApp {
    state: Arc<Mutex<State>>,
}

impl Default for KmsApp {
    fn default() -> Self {
        Self::new()
    }
}

fn error_result(e: &TxError) -> ExecTxResult {
    ExecTxResult {
        code: e.code(),
        log: e.to_string(),
        codespace: CODESPACE.to_string(),
        ..Default::default()
    }
}

impl KmsApp {
    /// An application before `InitChain`, keeping the store's default number of versions.
    pub fn new() -> Self {
        Self::with_retention(crate::store::DEFAULT_KEEP_VERSIONS)
    }

    /// An application before `InitChain` whose store keeps the last `keep_versions` versions
    /// (queries and proofs at older heights are refused).
    pub fn with_retention(keep_versions: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                chain_id: String::new(),
                store: MerkleStore::with_retention(keep_versions),
                last_height: 0,
                last_app_hash: Vec::new(),
                db: None,
                pending: Vec::new(),
                check: WriteSet::new(),
            })),
        }
    }

    /// An application whose committed state lives in the redb file at `path` (created if
    /// missing): every committed block is replayed into the Merkle store and checked against the
    /// recorded app hash, so `Info` reports the last committed height and app hash and CometBFT's
    /// handshake replays only the blocks the app lacks.
    pub fn open(path: &std::path::Path, keep_versions: u64) -> Result<Self, PersistError> {
        let db = crate::persist::StateDb::open(path)?;
        let stored = db.load()?;
        let mut store = MerkleStore::with_retention(keep_versions);
        let mut last = None;
        for (version, writes) in &stored.blocks {
            store
                .commit(*version, writes)
                .map_err(|_| PersistError::Corrupt("block versions"))?;
            last = Some(*version);
        }
        let (last_height, last_app_hash) = match last {
            Some(v) => {
                let root = store.root(v).map_err(|_| PersistError::AppHash(v))?;
                if root.as_slice() != stored.app_hash.as_slice() {
                    return Err(PersistError::AppHash(v));
                }
                (
                    i64::try_from(v).map_err(|_| PersistError::Corrupt("height"))?,
                    root.to_vec(),
                )
            }
            None => (0, Vec::new()),
        };
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                chain_id: stored.chain_id,
                store,
                last_height,
                last_app_hash,
                db: Some(db),
                pending: Vec::new(),
                check: WriteSet::new(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving the last consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Height and app hash of the last committed block.
    pub fn last_committed(&self) -> (i64, Vec<u8>) {
        let s = self.lock();
        (s.last_height, s.last_app_hash.clone())
    }

    /// Height and app hash of the state the last block produced (after `FinalizeBlock`).
    pub fn last_committed_pair(&self) -> (i64, Vec<u8>) {
        let s = self.lock();
        (
            s.store.latest_version().map_or(0, |v| v as i64),
            s.last_app_hash.clone(),
        )
    }

    /// The genesis `app_state` for a config (what goes into CometBFT's genesis file).
    pub fn genesis_app_state(config: &Config) -> Vec<u8> {
        serde_json::to_vec(config).unwrap_or_default()
    }
}

/// The bytes one transaction of `len` bytes takes in a block's protobuf `Data` (field tag,
/// length varint, payload): what CometBFT counts against `max_tx_bytes`.
pub fn proto_tx_size(len: usize) -> u64 {
    let mut varint = 1u64;
    let mut rest = len as u64 >> 7;
    while rest > 0 {
        varint += 1;
        rest >>= 7;
    }
    1 + varint + len as u64
}

impl Application for KmsApp {
    fn info(&self, _request: RequestInfo) -> ResponseInfo {
        let s = self.lock();
        ResponseInfo {
            data: "kms-chain-app".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: APP_VERSION,
            last_block_height: s.last_height,
            last_block_app_hash: s.last_app_hash.clone().into(),
        }
    }

    fn init_chain(&self, request: RequestInitChain) -> ResponseInitChain {
        let mut s = self.lock();
        s.chain_id = request.chain_id.clone();
        // A bad genesis must stop the node: CometBFT treats an empty app hash mismatch as fatal,
        // and the error is logged. Nothing here comes from untrusted parties.
        let config: Config = match serde_json::from_slice(&request.app_state_bytes) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("genesis app_state is not a KMS config: {e}");
                return ResponseInitChain::default();
            }
        };
        if let Err(e) = config.validate() {
            tracing::error!("genesis config invalid: {e}");
            return ResponseInitChain::default();
        }
        let mut writes = WriteSet::new();
        writes.insert(keys::CONFIG.to_vec(), Some(codec::encode(&config)));
        for admin in &config.admins {
            writes.insert(
                keys::account(admin),
                Some(codec::encode(&Account::default())),
            );
        }
        let version = (request.initial_height.max(1) - 1) as u64;
        s.pending.push((version, writes.clone()));
        match s.store.commit(version, &writes) {
            Ok(root) => {
                s.last_height = version as i64;
                s.last_app_hash = root.to_vec();
                ResponseInitChain {
                    app_hash: root.to_vec().into(),
                    ..Default::default()
                }
            }
            Err(e) => {
                tracing::error!("genesis commit failed: {e}");
                ResponseInitChain::default()
            }
        }
    }

    fn check_tx(&self, request: RequestCheckTx) -> ResponseCheckTx {
        // CheckTx (new and recheck alike) executes the transaction exactly as FinalizeBlock
        // would, over committed state plus every transaction it accepted since the last commit:
        // the nonce must be the account's next one counting pending transactions, the fee is
        // debited from what pending transactions left, and a message that would fail (a party's
        // answer to a request that is complete, unknown, or already answered by it) is refused
        // here instead of taking block space. Only an accepted transaction's writes are kept.
        let mut s = self.lock();
        let s = &mut *s;
        // The state CheckTx builds on is the latest the store holds (a block finalized but not
        // yet committed included): the overlay is cleared whenever a block is finalized.
        let height = s.store.latest_version().map_or(1, |v| v + 1);
        let result = decode_tx(&request.tx, &s.chain_id)
            .map_err(TxError::from)
            .and_then(|tx| {
                let mut ctx = Ctx::new(&s.store, &s.check, height);
                exec::execute(&mut ctx, tx)?;
                Ok(ctx.finish().0)
            });
        match result {
            Ok(writes) => {
                s.check.extend(writes);
                ResponseCheckTx::default()
            }
            Err(e) => ResponseCheckTx {
                code: e.code(),
                log: e.to_string(),
                codespace: CODESPACE.to_string(),
                ..Default::default()
            },
        }
    }

    fn prepare_proposal(&self, request: RequestPrepareProposal) -> ResponsePrepareProposal {
        // The mempool's transactions in order, without any that is not a transaction of this
        // chain, within `max_tx_bytes` as CometBFT counts it (each transaction's size in the
        // block's protobuf `Data`). A transaction that does not fit is skipped, not truncated.
        let s = self.lock();
        let max = request.max_tx_bytes.max(0) as u64;
        let mut used = 0u64;
        let mut txs = Vec::with_capacity(request.txs.len());
        // Once a sender's transaction is left out, its later ones are too: they would fail on
        // the nonce gap without paying.
        let mut left_out = std::collections::BTreeSet::new();
        for raw in request.txs {
            let Ok(tx) = decode_tx(&raw, &s.chain_id) else {
                continue;
            };
            let size = proto_tx_size(raw.len());
            if left_out.contains(&tx.sender) || used.saturating_add(size) > max {
                left_out.insert(tx.sender);
                continue;
            }
            used += size;
            txs.push(raw);
        }
        ResponsePrepareProposal { txs }
    }

    fn process_proposal(&self, request: RequestProcessProposal) -> ResponseProcessProposal {
        // A proposal may carry transactions that fail on execution (state changed since CheckTx:
        // they are recorded as failed and pay for it), but never one that is not a transaction
        // of this chain at all: undecodable, oversized, for another chain, or badly signed. That
        // check needs no state, so every honest validator decides alike. An honest proposer
        // only takes transactions its CheckTx accepted, which implies all of this.
        let s = self.lock();
        let valid = request
            .txs
            .iter()
            .all(|raw| decode_tx(raw, &s.chain_id).is_ok());
        if !valid {
            tracing::warn!(
                height = request.height,
                "rejecting a proposal with an invalid transaction"
            );
        }
        ResponseProcessProposal {
            status: if valid {
                ProposalStatus::Accept
            } else {
                ProposalStatus::Reject
            } as i32,
        }
    }

    fn finalize_block(&self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        let mut s = self.lock();
        // CometBFT may run CheckTx between FinalizeBlock and Commit: an overlay built on the
        // previous block must not shadow this one's writes.
        s.check.clear();
        let height = request.height.max(0) as u64;
        let mut block = WriteSet::new();
        let mut tx_results = Vec::with_capacity(request.txs.len());
        for raw in &request.txs {
            let outcome = decode_tx(raw, &s.chain_id)
                .map_err(|e| (TxError::from(e), None))
                .and_then(|tx| {
                    let mut ctx = Ctx::new(&s.store, &block, height);
                    match exec::execute(&mut ctx, tx.clone()) {
                        Ok(()) => Ok(ctx.finish()),
                        Err(e) => {
                            // The failed message leaves no trace, but an included transaction
                            // with the right nonce consumes it and pays the base fee.
                            let mut fail = Ctx::new(&s.store, &block, height);
                            let trace = exec::charge_failure(&mut fail, &tx)
                                .ok()
                                .map(|()| fail.finish().0);
                            Err((e, trace))
                        }
                    }
                });
            match outcome {
                Ok((writes, events)) => {
                    block.extend(writes);
                    tx_results.push(ExecTxResult {
                        events,
                        ..Default::default()
                    });
                }
                Err((e, trace)) => {
                    tracing::info!(height, code = e.code(), "transaction failed: {e}");
                    if let Some(writes) = trace {
                        block.extend(writes);
                    }
                    tx_results.push(error_result(&e));
                }
            }
        }
        match s.store.commit(height, &block) {
            Ok(root) => {
                s.pending.push((height, block));
                s.last_app_hash = root.to_vec();
                ResponseFinalizeBlock {
                    tx_results,
                    app_hash: root.to_vec().into(),
                    ..Default::default()
                }
            }
            Err(e) => {
                // Out-of-order heights: a consensus bug; report the previous hash so the node halts.
                tracing::error!("cannot commit block {height}: {e}");
                ResponseFinalizeBlock {
                    tx_results,
                    app_hash: s.last_app_hash.clone().into(),
                    ..Default::default()
                }
            }
        }
    }

    fn commit(&self) -> ResponseCommit {
        let mut s = self.lock();
        if let Some(v) = s.store.latest_version() {
            s.last_height = v as i64;
        }
        // On failure the blocks stay pending and go with the next commit; until then a restart
        // reports the last persisted height and CometBFT replays the rest.
        let s = &mut *s;
        s.check.clear();
        let persisted = match &s.db {
            Some(db) => db.append(&s.chain_id, &s.pending, &s.last_app_hash),
            None => Ok(()),
        };
        match persisted {
            Ok(()) => s.pending.clear(),
            Err(e) => tracing::error!("cannot persist block {}: {e}", s.last_height),
        }
        ResponseCommit { retain_height: 0 }
    }

    fn query(&self, request: RequestQuery) -> ResponseQuery {
        let s = self.lock();
        let path = request.path.trim_start_matches('/');
        if path != QUERY_STORE {
            return ResponseQuery {
                code: 1,
                log: format!("unknown query path {:?}; use {QUERY_STORE:?}", request.path),
                codespace: CODESPACE.into(),
                ..Default::default()
            };
        }
        let version = if request.height <= 0 {
            s.last_height as u64
        } else {
            request.height as u64
        };
        let key = request.data.to_vec();
        let read = if request.prove {
            s.store
                .get_with_proof(&key, version)
                .map(|(v, p)| (v, Some(p)))
        } else {
            s.store.get(&key, version).map(|v| (v, None))
        };
        match read {
            Ok((value, proof)) => ResponseQuery {
                code: 0,
                log: if value.is_some() {
                    "exists"
                } else {
                    "does not exist"
                }
                .into(),
                key: key.clone().into(),
                value: value.unwrap_or_default().into(),
                proof_ops: proof.map(|p| ProofOps {
                    ops: vec![ProofOp {
                        r#type: PROOF_OP_TYPE.into(),
                        key,
                        data: p.encode_to_vec(),
                    }],
                }),
                height: version as i64,
                codespace: CODESPACE.into(),
                ..Default::default()
            },
            Err(e) => ResponseQuery {
                code: 2,
                log: e.to_string(),
                height: version as i64,
                codespace: CODESPACE.into(),
                ..Default::default()
            },
        }
    }
}
