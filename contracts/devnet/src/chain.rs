//! The devnet's consensus stand-in: orders transactions into blocks, drives the ABCI app exactly
//! as CometBFT does (InitChain, CheckTx, FinalizeBlock, Commit), builds the CometBFT header and a
//! commit signed by every validator, and keeps what the RPC serves.
//!
//! There is no BFT protocol here (all validator keys are in this process); what is genuine is the
//! data: headers, block IDs, part sets, commits and proofs are those a CometBFT 0.38 network with
//! these validators would produce, so a light client cannot tell the difference.

use crate::hashing;
use ed25519_consensus::SigningKey;
use kms_chain_app::error::{TxError, CODESPACE};
use kms_chain_app::KmsApp;
use kms_chain_types::state::Config;
use kms_chain_types::Address;
use kms_light_client::tx_proof;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use tendermint::block::{self, parts, Block, Commit, CommitSig, Header, Height};
use tendermint::{account, chain, validator, vote, AppHash, Hash, PublicKey, Signature, Time};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    ExecTxResult, RequestCheckTx, RequestFinalizeBlock, RequestInitChain, RequestQuery,
    ResponseCheckTx, ResponseFinalizeBlock, ResponseQuery,
};

/// Block size limit reported in the consensus params (CometBFT's default).
pub const BLOCK_MAX_BYTES: i64 = 22020096;
/// Gas limit (none).
pub const BLOCK_MAX_GAS: i64 = -1;
/// Block protocol version of CometBFT 0.38.
pub const BLOCK_PROTOCOL: u64 = 11;

/// `CheckTxType::Recheck` in ABCI.
const CHECK_TX_TYPE_RECHECK: i32 = 1;

/// Bounds of the devnet mempool and blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Most pending transactions.
    pub max_txs: usize,
    /// Most pending bytes.
    pub max_bytes: usize,
    /// Most pending transactions of one account.
    pub max_per_account: usize,
    /// Most transaction bytes in one block.
    pub block_max_tx_bytes: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 5_000,
            max_bytes: 64 << 20,
            max_per_account: 16,
            block_max_tx_bytes: 4 << 20,
        }
    }
}

/// A transaction waiting for a block.
struct Pending {
    hash: [u8; 32],
    sender: Address,
    tx: Vec<u8>,
}

/// A validator key of the devnet.
#[derive(Clone)]
pub struct ValidatorKey {
    key: SigningKey,
}

impl ValidatorKey {
    /// A fresh random key.
    pub fn random() -> Self {
        Self {
            key: SigningKey::new(rand::thread_rng()),
        }
    }

    /// From 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from(bytes),
        }
    }

    /// The 32 secret bytes (developer mode persists them in the data directory).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The CometBFT public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_ed25519_consensus(self.key.verification_key())
    }

    /// The validator address (first 20 bytes of SHA-256 of the public key).
    pub fn address(&self) -> account::Id {
        account::Id::from(self.public_key())
    }
}

/// What the devnet starts from.
#[derive(Clone)]
pub struct Genesis {
    /// Chain ID.
    pub chain_id: String,
    /// Genesis time (block 1 comes after it).
    pub genesis_time: Time,
    /// Validator keys (each with power 10).
    pub validators: Vec<ValidatorKey>,
    /// The app's genesis config.
    pub app_config: Config,
}

fn refusal(e: &TxError) -> ResponseCheckTx {
    ResponseCheckTx {
        code: e.code(),
        log: e.to_string(),
        codespace: CODESPACE.to_string(),
        ..Default::default()
    }
}

/// Everything kept about one block.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    /// The block.
    pub block: Block,
    /// Its ID.
    pub block_id: block::Id,
    /// Its commit (signed by every validator).
    pub commit: Commit,
    /// The app's results for its transactions.
    pub results: ResponseFinalizeBlock,
}

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

/// The devnet chain state.
pub struct Chain {
    genesis: Genesis,
    chain_id: chain::Id,
    keys: Vec<ValidatorKey>,
    validators: validator::Set,
    app: KmsApp,
    genesis_app_hash: Vec<u8>,
    blocks: Vec<StoredBlock>,
    mempool: VecDeque<Pending>,
    mempool_bytes: usize,
    mempool_hashes: HashSet<[u8; 32]>,
    pending_per_account: HashMap<Address, usize>,
    limits: MempoolLimits,
    tx_index: HashMap<[u8; 32], TxLocation>,
}

/// Why the devnet cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Chain ID not accepted by CometBFT.
    #[error("invalid chain ID: {0}")]
    ChainId(String),
    /// The app refused the genesis.
    #[error("the app refused the genesis config: {0}")]
    Genesis(String),
    /// No validators.
    #[error("at least one validator is required")]
    NoValidators,
}

impl Chain {
    /// Runs InitChain and returns a chain with no blocks.
    pub fn new(genesis: Genesis) -> Result<Self, ChainError> {
        if genesis.validators.is_empty() {
            return Err(ChainError::NoValidators);
        }
        genesis
            .app_config
            .validate()
            .map_err(|e| ChainError::Genesis(e.to_string()))?;
        let chain_id: chain::Id = genesis
            .chain_id
            .parse()
            .map_err(|e: tendermint::Error| ChainError::ChainId(e.to_string()))?;
        let infos: Vec<validator::Info> = genesis
            .validators
            .iter()
            .map(|k| validator::Info::new(k.public_key(), vote::Power::from(10u32)))
            .collect();
        let validators = validator::Set::without_proposer(infos);
        // Sign in the validator set's order (by power, then address).
        let mut keys = genesis.validators.clone();
        keys.sort_by_key(|k| {
            validators
                .validators()
                .iter()
                .position(|v| v.address == k.address())
                .unwrap_or(usize::MAX)
        });
        let app = KmsApp::new();
        let init = app.init_chain(RequestInitChain {
            time: Some(genesis.genesis_time.into()),
            chain_id: genesis.chain_id.clone(),
            consensus_params: None,
            validators: Vec::new(),
            app_state_bytes: KmsApp::genesis_app_state(&genesis.app_config).into(),
            initial_height: 1,
        });
        if init.app_hash.is_empty() {
            return Err(ChainError::Genesis("InitChain returned no app hash".into()));
        }
        Ok(Self {
            chain_id,
            keys,
            validators,
            app,
            genesis_app_hash: init.app_hash.to_vec(),
            blocks: Vec::new(),
            mempool: VecDeque::new(),
            mempool_bytes: 0,
            mempool_hashes: HashSet::new(),
            pending_per_account: HashMap::new(),
            limits: MempoolLimits::default(),
            tx_index: HashMap::new(),
            genesis,
        })
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The chain ID.
    pub fn chain_id(&self) -> &chain::Id {
        &self.chain_id
    }

    /// The validator set (constant on the devnet).
    pub fn validators(&self) -> &validator::Set {
        &self.validators
    }

    /// The app (for ABCI queries).
    pub fn app(&self) -> &KmsApp {
        &self.app
    }

    /// Latest height (0 before the first block).
    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// A block by height.
    pub fn block(&self, height: u64) -> Option<&StoredBlock> {
        height
            .checked_sub(1)
            .and_then(|i| self.blocks.get(i as usize))
    }

    /// The latest block.
    pub fn latest(&self) -> Option<&StoredBlock> {
        self.blocks.last()
    }

    /// Pending transactions.
    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    /// Replaces the mempool and block bounds.
    pub fn set_limits(&mut self, limits: MempoolLimits) {
        self.limits = limits;
    }

    /// The mempool and block bounds.
    pub fn limits(&self) -> MempoolLimits {
        self.limits
    }

    /// Pending bytes.
    pub fn mempool_bytes(&self) -> usize {
        self.mempool_bytes
    }

    /// De-duplication (by hash) and the global bounds, then CheckTx, then the per-account bound,
    /// then into the mempool.
    pub fn submit(&mut self, tx: Vec<u8>) -> ResponseCheckTx {
        let hash: [u8; 32] = Sha256::digest(&tx).into();
        if self.mempool_hashes.contains(&hash) {
            return refusal(&TxError::AlreadyInMempool);
        }
        if self.mempool.len() >= self.limits.max_txs
            || self.mempool_bytes.saturating_add(tx.len()) > self.limits.max_bytes
        {
            return refusal(&TxError::MempoolFull(format!(
                "{} transactions, {} bytes pending (limits {}, {})",
                self.mempool.len(),
                self.mempool_bytes,
                self.limits.max_txs,
                self.limits.max_bytes
            )));
        }
        let res = self.app.check_tx(RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0,
        });
        if res.code != 0 {
            return res;
        }
        let sender = match kms_chain_types::tx::decode_tx(&tx, self.chain_id.as_str()) {
            Ok(v) => v.sender,
            Err(e) => return refusal(&TxError::from(e)),
        };
        let pending = self.pending_per_account.entry(sender).or_default();
        if *pending >= self.limits.max_per_account {
            return refusal(&TxError::MempoolFull(format!(
                "account {} has {} pending transactions",
                hex::encode(sender),
                self.limits.max_per_account
            )));
        }
        *pending += 1;
        self.mempool_bytes += tx.len();
        self.mempool_hashes.insert(hash);
        self.mempool.push_back(Pending { hash, sender, tx });
        res
    }

    /// Takes the transactions of the next block from the front of the mempool, within the block
    /// size limit.
    fn take_block_txs(&mut self) -> Vec<Vec<u8>> {
        let mut txs = Vec::new();
        let mut bytes = 0usize;
        while let Some(p) = self.mempool.front() {
            if bytes.saturating_add(p.tx.len()) > self.limits.block_max_tx_bytes {
                break;
            }
            let Some(p) = self.mempool.pop_front() else {
                break;
            };
            bytes += p.tx.len();
            self.forget(&p);
            txs.push(p.tx);
        }
        txs
    }

    /// Drops a transaction that left the mempool from the mempool's accounting.
    fn forget(&mut self, p: &Pending) {
        self.mempool_bytes = self.mempool_bytes.saturating_sub(p.tx.len());
        self.mempool_hashes.remove(&p.hash);
        if let Some(n) = self.pending_per_account.get_mut(&p.sender) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending_per_account.remove(&p.sender);
            }
        }
    }

    /// After a commit, as CometBFT does: CheckTx (type recheck) on every transaction still in
    /// the mempool, in order, over the new state; those now refused are dropped.
    fn recheck(&mut self) {
        let pending = std::mem::take(&mut self.mempool);
        for p in pending {
            let res = self.app.check_tx(RequestCheckTx {
                tx: p.tx.clone().into(),
                r#type: CHECK_TX_TYPE_RECHECK,
            });
            if res.code == 0 {
                self.mempool.push_back(p);
            } else {
                tracing::debug!(code = res.code, "recheck dropped a pending transaction");
                self.forget(&p);
            }
        }
    }

    /// Where a transaction (by SHA-256) landed: its successful copy if one succeeded, else the
    /// first copy included.
    pub fn find_tx(&self, hash: &[u8; 32]) -> Option<TxLocation> {
        self.tx_index.get(hash).copied()
    }

    fn tx_code(&self, loc: TxLocation) -> Option<u32> {
        self.block(loc.height)?
            .results
            .tx_results
            .get(loc.index as usize)
            .map(|r| r.code)
    }

    /// An ABCI query.
    pub fn query(&self, path: &str, data: Vec<u8>, height: i64, prove: bool) -> ResponseQuery {
        self.app.query(RequestQuery {
            data: data.into(),
            path: path.to_string(),
            height,
            prove,
        })
    }

    /// A transaction inclusion proof against its block's data hash.
    pub fn tx_proof(&self, loc: TxLocation) -> Option<tendermint::tx::Proof> {
        let b = self.block(loc.height)?;
        let txs = b.block.data();
        let tx = txs.get(loc.index as usize)?;
        let items: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
        Some(tendermint::tx::Proof {
            root_hash: b.block.header.data_hash.unwrap_or_default(),
            data: tx.clone(),
            proof: tendermint::merkle::Proof {
                total: txs.len() as u64,
                index: loc.index as u64,
                leaf_hash: Hash::Sha256(tx_proof::leaf(&items[loc.index as usize])),
                aunts: tx_proof::aunts(&items, loc.index as usize)
                    .into_iter()
                    .map(Hash::Sha256)
                    .collect(),
            },
        })
    }

    /// Produces the next block from the mempool at time `now` (clamped to be after the previous
    /// block), with as many pending transactions as the block size limit allows. Returns its
    /// height.
    pub fn produce_block(&mut self, now: Time) -> u64 {
        let txs = self.take_block_txs();
        self.produce_block_with(now, txs)
    }

    /// Produces the next block with exactly these transactions (used by replay).
    pub fn produce_block_with(&mut self, now: Time, txs: Vec<Vec<u8>>) -> u64 {
        let height = self.height() + 1;
        let prev = self.blocks.last();
        let floor = prev
            .map(|b| b.block.header.time)
            .unwrap_or(self.genesis.genesis_time);
        let time = if now > floor {
            now
        } else {
            (floor + std::time::Duration::from_millis(1)).unwrap_or(floor)
        };
        let (last_block_id, last_commit, app_hash, last_results) = match prev {
            None => (None, None, self.genesis_app_hash.clone(), Vec::new()),
            Some(p) => (
                Some(p.block_id),
                Some(p.commit.clone()),
                p.results.app_hash.to_vec(),
                p.results.tx_results.clone(),
            ),
        };
        let proposer = &self.keys[(height as usize - 1) % self.keys.len()];
        let header = Header {
            version: block::header::Version {
                block: BLOCK_PROTOCOL,
                app: kms_chain_app::abci::APP_VERSION,
            },
            chain_id: self.chain_id.clone(),
            height: Height::try_from(height).unwrap_or_default(),
            time,
            last_block_id,
            last_commit_hash: Some(hashing::commit_hash(last_commit.as_ref())),
            data_hash: Some(Hash::Sha256(tx_proof::data_hash(&txs))),
            validators_hash: self.validators.hash(),
            next_validators_hash: self.validators.hash(),
            consensus_hash: hashing::consensus_hash(BLOCK_MAX_BYTES, BLOCK_MAX_GAS),
            app_hash: AppHash::try_from(app_hash).unwrap_or_default(),
            last_results_hash: Some(hashing::results_hash(&last_results)),
            evidence_hash: Some(hashing::empty_evidence_hash()),
            proposer_address: proposer.address(),
        };
        let block = Block::new(header, txs.clone(), Default::default(), last_commit);
        let block_id = block::Id {
            hash: block.header.hash(),
            part_set_header: hashing::part_set_header(&block),
        };
        let results = self.app.finalize_block(RequestFinalizeBlock {
            txs: txs.iter().map(|t| t.clone().into()).collect(),
            decided_last_commit: None,
            misbehavior: Vec::new(),
            hash: block_id.hash.as_bytes().to_vec().into(),
            height: height as i64,
            time: Some(time.into()),
            next_validators_hash: self.validators.hash().as_bytes().to_vec().into(),
            proposer_address: proposer.address().as_bytes().to_vec().into(),
        });
        self.app.commit();
        self.recheck();
        let commit = self.sign_commit(height, block_id, time);
        self.blocks.push(StoredBlock {
            block,
            block_id,
            commit,
            results,
        });
        for (i, tx) in txs.iter().enumerate() {
            let loc = TxLocation {
                height,
                index: i as u32,
            };
            let hash: [u8; 32] = Sha256::digest(tx).into();
            // A transaction included twice is indexed at its successful copy, so a retrying
            // client is told the outcome that counted.
            let replace = match self.tx_index.get(&hash) {
                None => true,
                Some(prev) => self.tx_code(*prev) != Some(0) && self.tx_code(loc) == Some(0),
            };
            if replace {
                self.tx_index.insert(hash, loc);
            }
        }
        height
    }

    fn sign_commit(&self, height: u64, block_id: block::Id, time: Time) -> Commit {
        let signatures = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                self.sign_vote(i, k, height, block_id, time)
                    .unwrap_or(CommitSig::BlockIdFlagAbsent)
            })
            .collect();
        Commit {
            height: Height::try_from(height).unwrap_or_default(),
            round: block::Round::default(),
            block_id,
            signatures,
        }
    }

    fn sign_vote(
        &self,
        i: usize,
        k: &ValidatorKey,
        height: u64,
        block_id: block::Id,
        time: Time,
    ) -> Option<CommitSig> {
        let timestamp = (time + std::time::Duration::from_millis(1 + i as u64)).unwrap_or(time);
        let vote = tendermint::Vote {
            vote_type: vote::Type::Precommit,
            height: Height::try_from(height).unwrap_or_default(),
            round: block::Round::default(),
            block_id: Some(block_id),
            timestamp: Some(timestamp),
            validator_address: k.address(),
            validator_index: vote::ValidatorIndex::try_from(i as u32).ok()?,
            signature: None,
            extension: Vec::new(),
            extension_signature: None,
        };
        let bytes = vote.into_signable_vec(self.chain_id.clone());
        let sig = k.key.sign(&bytes);
        Some(CommitSig::BlockIdFlagCommit {
            validator_address: k.address(),
            timestamp,
            signature: Signature::new(sig.to_bytes()).ok().flatten(),
        })
    }

    /// The signed header of a height.
    pub fn signed_header(&self, height: u64) -> Option<block::signed_header::SignedHeader> {
        let b = self.block(height)?;
        block::signed_header::SignedHeader::new(b.block.header.clone(), b.commit.clone()).ok()
    }

    /// The light block of a height (what a light client needs).
    pub fn light_block(&self, height: u64) -> Option<kms_light_client::LightBlock> {
        Some(kms_light_client::LightBlock::new(
            self.signed_header(height)?,
            self.validators.clone(),
            self.validators.clone(),
            tendermint::node::Id::new([0; 20]),
        ))
    }

    /// Results of the transactions of a height.
    pub fn tx_results(&self, height: u64) -> Option<&[ExecTxResult]> {
        self.block(height).map(|b| b.results.tx_results.as_slice())
    }

    /// The part-set header type, for callers building block IDs.
    pub fn part_set(&self, height: u64) -> Option<parts::Header> {
        self.block(height).map(|b| b.block_id.part_set_header)
    }
}
