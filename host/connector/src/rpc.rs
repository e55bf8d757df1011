//! CometBFT RPC calls, over tendermint-rs's HTTP client.

use crate::ConnectorError;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, Account, Config};
use kms_chain_types::Address;
use kms_light_client::{ConfigEvidence, LightBlock, RequestEvidence};
use kms_types::RequestId;
use tendermint::abci::Event;
use tendermint::block::Height;
use tendermint::merkle::proof::ProofOps;
use tendermint_rpc::{Client, HttpClient, Paging};

/// The ABCI query path of the app's raw state.
const STORE: &str = "store";

/// One CometBFT node's RPC, as the host uses it.
#[derive(Clone, Debug)]
pub struct ChainRpc {
    http: HttpClient,
    url: String,
}

fn height(h: u64) -> Result<Height, ConnectorError> {
    Height::try_from(h).map_err(|_| ConnectorError::Height(h))
}

impl ChainRpc {
    /// A client of the node at `url` (`http://127.0.0.1:26657`).
    pub fn new(url: &str) -> Result<Self, ConnectorError> {
        Ok(Self {
            http: HttpClient::new(url)?,
            url: url.to_string(),
        })
    }

    /// The node's RPC address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The websocket endpoint of the same node (`ws://…/websocket`).
    pub fn websocket_url(&self) -> String {
        let rest = self
            .url
            .trim_end_matches('/')
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let scheme = if self.url.starts_with("https://") {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{rest}/websocket")
    }

    /// The node's latest committed height.
    pub async fn latest_height(&self) -> Result<u64, ConnectorError> {
        Ok(self
            .http
            .status()
            .await?
            .sync_info
            .latest_block_height
            .value())
    }

    /// The light block at `h`: signed header and the validator set (the KMS chain's validator
    /// set changes only by governance; the enclave checks it against the header's hashes).
    pub async fn light_block(&self, h: u64) -> Result<LightBlock, ConnectorError> {
        let at = height(h)?;
        let signed_header = self.http.commit(at).await?.signed_header;
        let validators = self.http.validators(at, Paging::All).await?.validators;
        let next = self
            .http
            .validators(height(h.saturating_add(1))?, Paging::All)
            .await
            .map(|r| r.validators)
            .unwrap_or_else(|_| validators.clone());
        let set = tendermint::validator::Set::without_proposer(validators);
        let next = tendermint::validator::Set::without_proposer(next);
        Ok(LightBlock::new(
            signed_header,
            set,
            next,
            tendermint::node::Id::new([0; 20]),
        ))
    }

    /// A raw state read at height `h` (0: latest) without proof; empty if absent.
    pub async fn query(&self, key: Vec<u8>, h: u64) -> Result<Vec<u8>, ConnectorError> {
        let at = if h == 0 { None } else { Some(height(h)?) };
        Ok(self
            .http
            .abci_query(Some(STORE.into()), key, at, false)
            .await?
            .value)
    }

    /// A state read at height `h` with its ICS23 proof.
    pub async fn proven_query(
        &self,
        key: Vec<u8>,
        h: u64,
    ) -> Result<(Vec<u8>, ProofOps), ConnectorError> {
        let r = self
            .http
            .abci_query(Some(STORE.into()), key, Some(height(h)?), true)
            .await?;
        Ok((r.value, r.proof.ok_or(ConnectorError::Missing("proof"))?))
    }

    /// Evidence that request `id` sits approved in state after block `h` (requires block
    /// `h + 1` to exist).
    pub async fn request_evidence(
        &self,
        id: RequestId,
        h: u64,
    ) -> Result<RequestEvidence, ConnectorError> {
        let (value, proof) = self.proven_query(keys::request(&id), h).await?;
        let header = self.light_block(h.saturating_add(1)).await?;
        Ok(RequestEvidence {
            id,
            height: h,
            header,
            value,
            proof,
        })
    }

    /// The config contract's record as of the state after block `h`, with its proof and the
    /// light block at `h + 1`.
    pub async fn config_evidence(&self, h: u64) -> Result<ConfigEvidence, ConnectorError> {
        let (value, proof) = self.proven_query(keys::CONFIG.to_vec(), h).await?;
        let header = self.light_block(h.saturating_add(1)).await?;
        Ok(ConfigEvidence {
            height: h,
            header,
            value,
            proof,
        })
    }

    /// The config contract's record in the latest state (unproven: for the host's routing only).
    pub async fn config(&self) -> Result<Config, ConnectorError> {
        let v = self.query(keys::CONFIG.to_vec(), 0).await?;
        codec::decode::<Config>(&v).map_err(|e| ConnectorError::Config(e.to_string()))
    }

    /// The events the transactions of block `h` emitted.
    pub async fn block_events(&self, h: u64) -> Result<Vec<Event>, ConnectorError> {
        let r = self.http.block_results(height(h)?).await?;
        Ok(r.txs_results
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.code.is_ok())
            .flat_map(|t| t.events)
            .collect())
    }

    /// The next nonce of account `addr` in the latest state. Not security relevant: a wrong
    /// nonce only makes a transaction fail.
    pub async fn next_nonce(&self, addr: &Address) -> Result<u64, ConnectorError> {
        let v = self.query(keys::account(addr), 0).await?;
        if v.is_empty() {
            return Ok(0);
        }
        codec::decode::<Account>(&v)
            .map(|a| a.nonce)
            .map_err(|e| ConnectorError::Account(e.to_string()))
    }

    /// Broadcasts a signed transaction (`broadcast_tx_sync`): its hash once CheckTx accepted it.
    pub async fn broadcast(&self, tx: Vec<u8>) -> Result<tendermint::Hash, ConnectorError> {
        let r = self.http.broadcast_tx_sync(tx).await?;
        if r.code.is_err() {
            return Err(ConnectorError::Refused {
                code: r.code.value(),
                log: r.log,
            });
        }
        Ok(r.hash)
    }
}
