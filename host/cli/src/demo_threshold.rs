//! The multi-party part of the main job: n = 4 parties with threshold t = 1, each running as
//! two OS processes (`kms enclave` and `kms host`, joined by a Unix socket), serve requests
//! that go through the KMS chain.
//!
//! * A 4-validator devnet runs the ABCI app and serves CometBFT's RPC; the config contract
//!   registers the 4 parties (signing addresses and TLS identity keys).
//! * The key set the developer-mode core generated is split by the **insecure dealer** (the
//!   stand-in for the DKG, [`crate::parties::Supervisor`]) into shares; each party's state is
//!   sealed with that party's own key and handed to its host, which cannot open it.
//! * Each host follows the chain over RPC and, for every approved request, hands its enclave
//!   the light block, the ICS23 proof and the inputs (fetched by digest). Each enclave verifies
//!   them with its own light client, runs the threshold protocol with the other enclaves over
//!   attested TLS 1.3 that its host only relays, and signs its fulfillment transaction, which
//!   the host broadcasts. The demo itself only submits the user's transactions and reads the
//!   chain.
//! * Public decryption completes on chain with t + 1 matching signed results; user decryption's
//!   envelopes go through the chain and the client verifies and combines them.

use crate::demo_error::{fail, DemoError};
use crate::parties::{DealInputs, Supervisor};
use kms_attested_tls::IdentityKey;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus, ResponseRecord};
use kms_chain_types::tx::{Fulfillment, KmsRequest, Msg};
use kms_devnet::dev::{DevSetup, Wallet};
use kms_devnet::{Node, PersistentChain};
use kms_eip712::Signature;
use kms_engine::tfhe::ClientKey;
use kms_engine::Plaintext;
use kms_host::Blobs;
use kms_signcryption::{ClientKeyPair, Envelope, Signcrypted};
use kms_threshold::{user_combine, FloodingParams, UserShareResponse};
use kms_types::{
    CanonicalRequest, CrsGenRequest, KeyGenRequest, ParamSetName, PublicDecryptionRequest,
    RequestId, TypedCiphertext, UserDecryptionRequest,
};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient};

const CHAIN: &str = "kms-demo";
const N: usize = 4;
const T: usize = 1;
const BLOCK: Duration = Duration::from_millis(300);
/// `max_num_bits` of the demo's CRS (as the single-core stage's default).
const CRS_BITS: u32 = 64;

/// What the multi-party stage did.
#[derive(Clone, Debug, Serialize)]
pub struct ThresholdReport {
    /// Parties.
    pub n: usize,
    /// Threshold.
    pub t: usize,
    /// Devnet chain ID.
    pub chain: String,
    /// Height at the end.
    pub height: u64,
    /// Process IDs (host, enclave) of each party.
    pub processes: Vec<(u32, u32)>,
    /// Parties whose signed public-decryption results completed the request on chain.
    pub public_completed_by: Vec<u32>,
    /// Parties whose user-decryption envelopes were on chain when the client combined.
    pub user_forwarded_by: Vec<u32>,
    /// Threshold public decryptions, in order.
    pub public: Vec<String>,
    /// Threshold user decryptions, in order.
    pub user: Vec<String>,
    /// Whether a proven encryption under the CRS the parties reported verified.
    pub crs_verified: bool,
    /// Parties whose equal resharing verdicts completed the resharing (all n).
    pub reshared_by: Vec<u32>,
    /// A public decryption of [`AFTER_RESHARE`] served with the new shares.
    pub after_reshare: String,
}

/// The value the demo encrypts and decrypts after the resharing.
pub const AFTER_RESHARE: u8 = 77;

/// Inputs from the single-core stage.
pub struct Inputs<'a> {
    /// Parameter set.
    pub params: ParamSetName,
    /// The keygen request (its ID is the key ID).
    pub keygen: KeyGenRequest,
    /// Public material handles: (data type, SHA3-256).
    pub material: Vec<(String, [u8; 32])>,
    /// The client key, for the insecure dealer only.
    pub client_key: &'a ClientKey,
    /// The serialized (compressed) server key, for the blob store the hosts serve from.
    pub server_key: Vec<u8>,
    /// The ciphertexts to decrypt.
    pub ciphertexts: Vec<TypedCiphertext>,
    /// The `kms` binary (the parties run as `kms host` and `kms enclave`).
    pub kms: &'a Path,
    /// Where the chain, the blob store and the parties' folders go.
    pub dir: &'a Path,
}

async fn commit(c: &HttpClient, step: &'static str, tx: Vec<u8>) -> Result<u64, DemoError> {
    let r = c
        .broadcast_tx_commit(tx)
        .await
        .map_err(|e| fail(step)(&e))?;
    if r.check_tx.code.is_err() || r.tx_result.code.is_err() {
        return Err(fail(step)(&format!(
            "refused: {} {}",
            r.check_tx.log, r.tx_result.log
        )));
    }
    Ok(r.height.value())
}

async fn query<T: serde::de::DeserializeOwned + Serialize>(
    c: &HttpClient,
    key: Vec<u8>,
) -> Option<T> {
    let v = c
        .abci_query(Some("store".into()), key, None, false)
        .await
        .ok()?
        .value;
    codec::decode(&v).ok()
}

async fn wait_complete(
    c: &HttpClient,
    id: &RequestId,
    parties: &Supervisor,
) -> Result<RequestRecord, DemoError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(r) = query::<RequestRecord>(c, keys::request(id)).await {
            if matches!(r.status, RequestStatus::Completed { .. }) {
                return Ok(r);
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = parties
                .logs()
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(fail("wait")(&format!(
                "request {id} not complete after 10 minutes; see {logs:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a local network is started from: the key set the insecure dealer splits.
pub struct NetworkInputs<'a> {
    /// Parameter set.
    pub params: ParamSetName,
    /// The keygen request (its ID is the key ID).
    pub keygen: KeyGenRequest,
    /// Public material handles: (data type, SHA3-256).
    pub material: Vec<(String, [u8; 32])>,
    /// The client key, for the insecure dealer only.
    pub client_key: &'a ClientKey,
    /// The serialized (compressed) server key, for the blob store the hosts serve from.
    pub server_key: Vec<u8>,
    /// The `kms` binary (the parties run as `kms host` and `kms enclave`).
    pub kms: &'a Path,
    /// Where the chain, the blob store and the parties' folders go.
    pub dir: std::path::PathBuf,
    /// The devnet's RPC address (port 0: any free port).
    pub rpc: std::net::SocketAddr,
    /// The devnet's block interval.
    pub block: Duration,
    /// Enclaves per party (the host hands each request to one of them).
    pub enclaves_per_party: usize,
    /// A CRS to request through the ASC once the network is up (the parties run the
    /// ceremony for it).
    pub crs: Option<CrsGenRequest>,
}

/// A test-parameter key set for the insecure dealer, with what a [`NetworkInputs`] needs:
/// the keygen request, the serialized server key and the public material's handles. The
/// server key is also installed on this thread (client encryption expands compact lists).
pub struct DealtKeySet {
    /// The keygen request (its ID is the key ID).
    pub keygen: KeyGenRequest,
    /// The key set.
    pub keys: kms_engine::KeySet,
    /// The serialized (compressed) server key.
    pub server_key: Vec<u8>,
    /// Public material handles: (data type, SHA3-256).
    pub material: Vec<(String, [u8; 32])>,
}

impl DealtKeySet {
    /// Generates one under `label` with the `test-insecure` parameters.
    pub fn test(label: &str) -> Result<Self, DemoError> {
        let params = ParamSetName::TestInsecure;
        let keygen = KeyGenRequest {
            params,
            label: label.into(),
        };
        let keys = kms_engine::generate_key_set(params, &keygen.request_id(), &mut |_| {});
        kms_engine::tfhe::set_server_key(keys.server_key.decompress());
        let public_key =
            kms_engine::serialize_public(&keys.public_key).map_err(|e| fail("keys")(&e))?;
        let server_key =
            kms_engine::serialize_public(&keys.server_key).map_err(|e| fail("keys")(&e))?;
        let material = vec![
            ("PublicKey".to_string(), kms_types::sha3_256(&public_key)),
            ("ServerKey".to_string(), kms_types::sha3_256(&server_key)),
        ];
        Ok(Self {
            keygen,
            keys,
            server_key,
            material,
        })
    }

    /// An `FheUint8` encryption of `value` under the key set's public key.
    pub fn encrypt_uint8(&self, value: u128) -> Result<TypedCiphertext, DemoError> {
        kms_client::encrypt_value(
            &self.keys.public_key,
            kms_types::FheType::Uint8,
            kms_client::ClearValue::Unsigned(value),
        )
        .map_err(|e| fail("encrypt")(&e))
    }

    /// Encryptions of `values` whose public-decryption requests (one per ciphertext, on this
    /// key set) fall at least `per_slot` in each of `slots` enclave slots: encrypted anew
    /// (fresh randomness, other request IDs) until they do.
    pub fn batch_in_slots(
        &self,
        values: &[u128],
        slots: usize,
        per_slot: usize,
    ) -> Result<Vec<TypedCiphertext>, DemoError> {
        let key_id = self.keygen.request_id();
        if values.len() < slots.saturating_mul(per_slot) {
            return Err(fail("batch")(&"too few values for the slots"));
        }
        loop {
            let cts = values
                .iter()
                .map(|v| self.encrypt_uint8(*v))
                .collect::<Result<Vec<_>, _>>()?;
            let mut count = vec![0usize; slots];
            for ct in &cts {
                let id = PublicDecryptionRequest {
                    key_id,
                    ciphertexts: vec![ct.clone()],
                }
                .request_id();
                if let Some(c) = count.get_mut(kms_host::slot_of(&id, slots)) {
                    *c += 1;
                }
            }
            if count.iter().all(|c| *c >= per_slot) {
                return Ok(cts);
            }
        }
    }

    /// Starts a [`LocalNetwork`] for this key set, without progress output: `kms` the CLI
    /// binary, `dir` its folder, `block` the devnet's block time, `enclaves_per_party`
    /// enclaves per party.
    pub async fn start_network(
        &self,
        kms: &Path,
        dir: std::path::PathBuf,
        block: Duration,
        enclaves_per_party: usize,
    ) -> Result<LocalNetwork, DemoError> {
        let mut inputs = self.inputs(kms, dir, block);
        inputs.enclaves_per_party = enclaves_per_party;
        LocalNetwork::start(inputs, &mut |_: &str| {}).await
    }

    /// The inputs of a [`LocalNetwork`] for this key set.
    pub fn inputs<'a>(
        &'a self,
        kms: &'a Path,
        dir: std::path::PathBuf,
        block: Duration,
    ) -> NetworkInputs<'a> {
        NetworkInputs {
            params: self.keygen.params,
            keygen: self.keygen.clone(),
            material: self.material.clone(),
            client_key: &self.keys.client_key,
            server_key: self.server_key.clone(),
            kms,
            dir,
            rpc: ([127, 0, 0, 1], 0).into(),
            block,
            enclaves_per_party: 1,
            crs: None,
        }
    }
}

/// A batch of public decryptions, timed from the first submission to the first poll (every
/// 20 ms) that finds all of them complete.
#[derive(Clone, Debug)]
pub struct TimedBatch {
    /// The requests, in submission order.
    pub ids: Vec<RequestId>,
    /// First submission to all complete.
    pub elapsed: Duration,
    /// The decrypted values, in submission order.
    pub plaintexts: Vec<String>,
}

/// One public decryption, timed from submission (`broadcast_tx_sync`) to the first poll (every
/// 20 ms) that finds the request complete.
#[derive(Clone, Debug)]
pub struct TimedDecryption {
    /// The request.
    pub id: RequestId,
    /// Submission to completion.
    pub elapsed: Duration,
    /// Wall clock at submission.
    pub submitted_unix_ms: u64,
    /// Wall clock when seen complete.
    pub done_unix_ms: u64,
    /// The decrypted value.
    pub plaintext: String,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A developer-mode KMS: a devnet chain serving RPC and n = 4 parties as processes, with one
/// key set registered on chain and a funded user who administers application
/// [`LocalNetwork::APP`]. Dropping it stops everything.
pub struct LocalNetwork {
    /// The chain's RPC address.
    pub rpc: String,
    /// An RPC client of it.
    pub client: HttpClient,
    /// The chain's keys (admin, parties) and genesis.
    pub setup: DevSetup,
    /// The EIP-712 domain results are signed under.
    pub domain: kms_eip712::DomainConfig,
    /// The party processes.
    pub parties: Supervisor,
    /// The blob store the hosts fetch ciphertexts and client keys from.
    pub blobs: Blobs,
    /// The key set.
    pub key_id: RequestId,
    /// A funded user, administrator of the application.
    pub user: Wallet,
    /// Parties whose material completed the keygen request.
    pub keygen_by: Vec<u32>,
    /// The CRS to request, if any.
    pub crs: Option<CrsGenRequest>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        self.parties.stop();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl LocalNetwork {
    /// One public decryption of `ct` through the chain and the parties: its blob stored and its
    /// handle granted first (not timed), then the request; returns the time from broadcasting
    /// the request to seeing it complete (polled every 20 ms) and the plaintext.
    pub async fn timed_public_decryption(
        &mut self,
        ct: TypedCiphertext,
    ) -> Result<(Duration, String), DemoError> {
        self.timed_public_decryption_at(ct)
            .await
            .map(|t| (t.elapsed, t.plaintext))
    }

    /// [`LocalNetwork::timed_public_decryption`] with the request ID and the wall-clock times
    /// it was submitted and seen complete (for matching the parties' logs).
    pub async fn timed_public_decryption_at(
        &mut self,
        ct: TypedCiphertext,
    ) -> Result<TimedDecryption, DemoError> {
        self.blobs
            .put(&ct.bytes)
            .await
            .map_err(|e| fail("blob store")(&e))?;
        let grant = self.user.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: Self::APP.into(),
                handles: vec![ct.digest()],
                addresses: vec![self.user.address()],
            },
        );
        commit(&self.client, "acl", grant).await?;
        let req = PublicDecryptionRequest {
            key_id: self.key_id,
            ciphertexts: vec![ct.clone()],
        };
        let id = req.request_id();
        let tx = self.user.tx(
            CHAIN,
            Msg::Request {
                app_id: Self::APP.into(),
                request: KmsRequest::PublicDecrypt(req.to_ref()),
            },
        );
        let sent = self
            .submit_and_wait(vec![tx], std::slice::from_ref(&id))
            .await?;
        let rec = sent
            .records
            .first()
            .ok_or_else(|| fail("request")(&"no record"))?;
        let (elapsed, submitted_unix_ms, done_unix_ms) =
            (sent.elapsed, sent.submitted_unix_ms, sent.done_unix_ms);
        let plaintext = public_result(&self.client, rec, std::slice::from_ref(&ct))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| fail("request")(&"no result"))?;
        Ok(TimedDecryption {
            id,
            elapsed,
            submitted_unix_ms,
            done_unix_ms,
            plaintext,
        })
    }
}

impl LocalNetwork {
    /// The record of request `id` as the chain holds it now.
    pub async fn record(&self, id: &RequestId) -> Option<RequestRecord> {
        query::<RequestRecord>(&self.client, keys::request(id)).await
    }

    /// Asks the ASC (as the admin) to reshare the key set, label `label`, and waits until the
    /// chain completes it (every party reported the same verdict); returns its record.
    pub async fn reshare(&mut self, label: &str) -> Result<RequestRecord, DemoError> {
        let req = KmsRequest::Reshare {
            key_id: self.key_id,
            epoch: label.into(),
        };
        let id = req.request_id();
        commit(
            &self.client,
            "resharing request",
            self.setup.admin.tx(
                CHAIN,
                Msg::Request {
                    app_id: Self::APP.into(),
                    request: req,
                },
            ),
        )
        .await?;
        wait_complete(&self.client, &id, &self.parties).await
    }
}

/// Requests submitted back to back and seen complete.
struct Submitted {
    /// Wall clock at the first submission.
    submitted_unix_ms: u64,
    /// First submission to all seen complete.
    elapsed: Duration,
    /// Wall clock when all were seen complete.
    done_unix_ms: u64,
    /// The completed records, in submission order.
    records: Vec<RequestRecord>,
}

impl LocalNetwork {
    /// Broadcasts `txs` back to back (`broadcast_tx_sync`) and polls the chain every 20 ms until
    /// every request of `ids` is complete (at most 5 minutes).
    async fn submit_and_wait(
        &self,
        txs: Vec<Vec<u8>>,
        ids: &[RequestId],
    ) -> Result<Submitted, DemoError> {
        let start = Instant::now();
        let submitted_unix_ms = unix_ms();
        for tx in txs {
            let r = self
                .client
                .broadcast_tx_sync(tx)
                .await
                .map_err(|e| fail("request")(&e))?;
            if r.code.is_err() {
                return Err(fail("request")(&r.log));
            }
        }
        let deadline = start + Duration::from_secs(300);
        let mut done: Vec<Option<RequestRecord>> = ids.iter().map(|_| None).collect();
        while done.iter().any(Option::is_none) {
            for (id, slot) in ids.iter().zip(done.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                if let Some(rec) = query::<RequestRecord>(&self.client, keys::request(id)).await {
                    if matches!(rec.status, RequestStatus::Completed { .. }) {
                        *slot = Some(rec);
                    }
                }
            }
            if done.iter().all(Option::is_some) {
                break;
            }
            if Instant::now() > deadline {
                return Err(fail("request")(&"not complete after 5 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Submitted {
            submitted_unix_ms,
            elapsed: start.elapsed(),
            done_unix_ms: unix_ms(),
            records: done.into_iter().flatten().collect(),
        })
    }

    /// Public decryptions of `cts`, one request each, submitted back to back by accounts of
    /// [`LocalNetwork::REQUESTS_PER_SENDER`] requests each (the mempool holds at most 16 pending
    /// transactions per account): the senders funded, the blobs stored and the handles granted
    /// to the senders first (not timed), then every request (`broadcast_tx_sync`, round robin
    /// over the senders, each in nonce order); returns the time from the first submission until
    /// all are seen complete, and the plaintexts.
    pub async fn timed_public_decryption_batch(
        &mut self,
        cts: Vec<TypedCiphertext>,
    ) -> Result<TimedBatch, DemoError> {
        for ct in &cts {
            self.blobs
                .put(&ct.bytes)
                .await
                .map_err(|e| fail("blob store")(&e))?;
        }
        let mut senders: Vec<Wallet> = (0..cts.len().div_ceil(Self::REQUESTS_PER_SENDER))
            .map(|_| Wallet::random())
            .collect();
        for w in &mut senders {
            commit(
                &self.client,
                "fund",
                w.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
            )
            .await?;
        }
        let grant = self.user.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: Self::APP.into(),
                handles: cts.iter().map(TypedCiphertext::digest).collect(),
                addresses: senders.iter().map(Wallet::address).collect(),
            },
        );
        commit(&self.client, "acl", grant).await?;
        let mut ids = Vec::with_capacity(cts.len());
        let mut txs = Vec::with_capacity(cts.len());
        for (i, ct) in cts.iter().enumerate() {
            let req = PublicDecryptionRequest {
                key_id: self.key_id,
                ciphertexts: vec![ct.clone()],
            };
            ids.push(req.request_id());
            let count = senders.len().max(1);
            let sender = senders
                .get_mut(i % count)
                .ok_or_else(|| fail("batch")(&"no sender"))?;
            txs.push(sender.tx(
                CHAIN,
                Msg::Request {
                    app_id: Self::APP.into(),
                    request: KmsRequest::PublicDecrypt(req.to_ref()),
                },
            ));
        }
        let sent = self.submit_and_wait(txs, &ids).await?;
        let elapsed = sent.elapsed;
        let mut plaintexts = Vec::with_capacity(cts.len());
        for (rec, ct) in sent.records.iter().zip(&cts) {
            plaintexts.push(
                public_result(&self.client, rec, std::slice::from_ref(ct))
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| fail("batch")(&"no result"))?,
            );
        }
        Ok(TimedBatch {
            ids,
            elapsed,
            plaintexts,
        })
    }
}

/// The parties' identities and the chain's keys: TLS identity keys whose digests the config
/// contract registers, and a developer setup (admin, party signing keys, genesis) for chain
/// `kms-demo`.
pub struct Identities {
    /// Each party's TLS identity key.
    pub identity: Vec<IdentityKey>,
    /// Keys and genesis.
    pub setup: DevSetup,
}

impl Identities {
    /// Fresh identities for n = 4, t = 1.
    pub fn new() -> Result<Self, DemoError> {
        let identity = (0..N)
            .map(|_| IdentityKey::generate())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail("identity keys")(&e))?;
        let digests: Vec<[u8; 32]> = identity.iter().map(IdentityKey::digest).collect();
        let setup = DevSetup::new(CHAIN, N, T as u32, 4, Time::now()).with_identity_keys(&digests);
        Ok(Self { identity, setup })
    }

    /// The chain ID of the setup.
    pub const CHAIN: &'static str = CHAIN;
}

impl LocalNetwork {
    /// The application the user administers.
    pub const APP: &'static str = "demo-dapp";

    /// Requests per sender account in a batch (below the mempool's 16 pending per account).
    pub const REQUESTS_PER_SENDER: usize = 12;

    /// Starts the chain and the parties, funds the user, registers the application, and has
    /// the key set registered through a keygen request the parties answer.
    pub async fn start(
        inputs: NetworkInputs<'_>,
        say: &mut dyn FnMut(&str),
    ) -> Result<Self, DemoError> {
        let ids = Identities::new()?;
        // The chain: a 4-validator devnet serving CometBFT's RPC on loopback.
        let genesis = ids.setup.genesis.clone();
        let chain = PersistentChain::open_or_create(&inputs.dir.join("chain"), || genesis)
            .map_err(|e| fail("devnet")(&e))?;
        let genesis_validators = serde_json::to_vec(chain.chain().validators().validators())
            .map_err(|e| fail("devnet")(&e))?;
        let node = Node::new(chain);
        let (addr, server) = node
            .serve_rpc(inputs.rpc)
            .await
            .map_err(|e| fail("devnet")(&e))?;
        let producer = node.spawn_producer(inputs.block);
        let rpc = format!("http://{addr}");
        say(&format!(
            "KMS chain {CHAIN}: devnet with 4 validators, RPC on {rpc}, {N} parties registered, t = {T}"
        ));
        Self::attach(
            &rpc,
            vec![server, producer],
            ids,
            genesis_validators,
            inputs,
            say,
        )
        .await
    }

    /// The parties and the key set on a chain already running at `rpc` (e.g. real CometBFT
    /// validators whose genesis holds `ids`' config), its genesis validators as CometBFT JSON;
    /// `tasks` are stopped with the network.
    pub async fn attach(
        rpc: &str,
        tasks: Vec<tokio::task::JoinHandle<()>>,
        ids: Identities,
        genesis_validators: Vec<u8>,
        inputs: NetworkInputs<'_>,
        say: &mut dyn FnMut(&str),
    ) -> Result<Self, DemoError> {
        let Identities {
            identity,
            mut setup,
        } = ids;
        let domain = setup.genesis.app_config.eip712_domain.clone();
        let rpc = rpc.to_string();
        let client = HttpClient::new(rpc.as_str()).map_err(|e| fail("chain")(&e))?;

        // The parties: dealt, sealed, started as processes.
        let blobs_dir = inputs.dir.join("blobs");
        let blobs = Blobs::new(&blobs_dir);
        let server_key_digest = blobs
            .put(&inputs.server_key)
            .await
            .map_err(|e| fail("blob store")(&e))?;
        let key_id = inputs.keygen.request_id();
        let mut parties = Supervisor::provision_slots(
            &inputs.dir.join("parties"),
            inputs.kms,
            &rpc,
            &blobs_dir,
            DealInputs {
                chain_id: CHAIN.into(),
                n: N,
                t: T,
                domain: domain.clone(),
                genesis_validators,
                identity,
                signers: setup.parties.iter().map(|p| p.key().to_bytes()).collect(),
                key_id,
                params: inputs.params,
                client_key: inputs.client_key,
                server_key_digest,
                material: inputs.material.clone(),
                endpoints: setup.endpoints(),
            },
            inputs.enclaves_per_party,
        )
        .map_err(|e| fail("provision parties")(&e))?;
        parties.start().map_err(|e| fail("start parties")(&e))?;
        let processes: Vec<(u32, u32)> = parties
            .pids()
            .into_iter()
            .map(|(h, e)| (h.unwrap_or(0), e.unwrap_or(0)))
            .collect();
        say(&format!(
        "  {N} parties up, each an enclave process and a host process (pids {processes:?}): key shares from the insecure dealer (stand-in for the DKG), state sealed per party, attested TLS 1.3 relayed by the hosts"
    ));

        // Keygen through the ASC (same canonical request, hence the same key ID as the core's).
        let mut user = Wallet::random();
        commit(
            &client,
            "fund",
            setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
        )
        .await?;
        commit(
            &client,
            "fund",
            user.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
        )
        .await?;
        commit(
            &client,
            "application",
            setup.admin.tx(
                CHAIN,
                Msg::CreateApplication {
                    app_id: Self::APP.into(),
                    admin: user.address(),
                },
            ),
        )
        .await?;
        commit(
            &client,
            "keygen request",
            setup.admin.tx(
                CHAIN,
                Msg::Request {
                    app_id: Self::APP.into(),
                    request: KmsRequest::KeyGen(inputs.keygen.clone()),
                },
            ),
        )
        .await?;
        let rec = wait_complete(&client, &key_id, &parties).await?;
        say(&format!(
            "  key {key_id} registered on chain: material reported by parties {:?}",
            responder_indices(&rec)
        ));

        Ok(Self {
            rpc,
            client,
            setup,
            domain,
            parties,
            blobs,
            key_id,
            user,
            keygen_by: responder_indices(&rec),
            crs: inputs.crs.clone(),
            tasks,
        })
    }
}

/// Runs the multi-party stage.
pub async fn run(
    inputs: Inputs<'_>,
    say: &mut dyn FnMut(&str),
) -> Result<ThresholdReport, DemoError> {
    let mut net = LocalNetwork::start(
        NetworkInputs {
            params: inputs.params,
            keygen: inputs.keygen.clone(),
            material: inputs.material.clone(),
            client_key: inputs.client_key,
            server_key: inputs.server_key,
            kms: inputs.kms,
            dir: inputs.dir.to_path_buf(),
            rpc: ([127, 0, 0, 1], 0).into(),
            block: BLOCK,
            enclaves_per_party: 1,
            crs: Some(CrsGenRequest {
                params: inputs.params,
                max_num_bits: CRS_BITS,
                label: "demo-crs".into(),
            }),
        },
        say,
    )
    .await?;
    let processes: Vec<(u32, u32)> = net
        .parties
        .pids()
        .into_iter()
        .map(|(h, e)| (h.unwrap_or(0), e.unwrap_or(0)))
        .collect();
    let (client, key_id, domain) = (net.client.clone(), net.key_id, net.domain.clone());
    let blobs = net.blobs.clone();
    // The user's requests; the ciphertexts and the client key go to the blob store, the chain
    // carries their digests.
    let cts = inputs.ciphertexts;
    for ct in &cts {
        blobs
            .put(&ct.bytes)
            .await
            .map_err(|e| fail("blob store")(&e))?;
    }
    let client_keys = ClientKeyPair::generate(&mut rand_core::OsRng);
    blobs
        .put(client_keys.public().as_bytes())
        .await
        .map_err(|e| fail("blob store")(&e))?;
    let public_req = PublicDecryptionRequest {
        key_id,
        ciphertexts: cts.clone(),
    };
    let user_req = UserDecryptionRequest {
        key_id,
        ciphertexts: cts.clone(),
        client_encryption_key: client_keys.public().as_bytes().to_vec(),
    };
    let (public_id, user_id) = (public_req.request_id(), user_req.request_id());
    commit(
        &client,
        "acl",
        net.user.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: LocalNetwork::APP.into(),
                handles: cts.iter().map(TypedCiphertext::digest).collect(),
                addresses: vec![net.user.address()],
            },
        ),
    )
    .await?;
    let h = commit(
        &client,
        "public decryption request",
        net.user.tx(
            CHAIN,
            Msg::Request {
                app_id: LocalNetwork::APP.into(),
                request: KmsRequest::PublicDecrypt(public_req.to_ref()),
            },
        ),
    )
    .await?;
    commit(
        &client,
        "user decryption request",
        net.user.tx(
            CHAIN,
            Msg::Request {
                app_id: LocalNetwork::APP.into(),
                request: KmsRequest::UserDecrypt(user_req.to_ref()),
            },
        ),
    )
    .await?;
    say(&format!(
        "  public decryption {public_id} and user decryption {user_id} approved by the ASC from height {h}"
    ));

    // Public decryption: completed by t + 1 matching signed results.
    let rec = wait_complete(&client, &public_id, &net.parties).await?;
    let public = public_result(&client, &rec, &cts).await?;
    say(&format!(
        "  threshold public decryption: the enclaves verified the request with their own light clients, ran the protocol and signed; the ASC completed it on the matching results of parties {:?}",
        responder_indices(&rec)
    ));

    // User decryption: the client reads the envelopes from the chain and combines.
    let urec = wait_complete(&client, &user_id, &net.parties).await?;
    let responses = user_shares(&client, &user_id, &net.setup.genesis.app_config.parties).await;
    let forwarded: Vec<u32> = responses
        .iter()
        .filter(|r| r.response.is_some())
        .map(|r| r.party as u32)
        .collect();
    let meta: Vec<_> = cts.iter().map(|c| (c.fhe_type, c.digest())).collect();
    let (mm, cm) = net.parties.moduli;
    let flooding = FloodingParams::for_param_set(inputs.params, N, T, mm, cm)
        .map_err(|e| fail("flooding")(&e))?;
    let combined = user_combine(
        &client_keys,
        &domain,
        &user_id,
        &key_id,
        &meta,
        &responses,
        &flooding,
    )
    .map_err(|e| fail("user combine")(&e))?;
    if !combined.rejected.is_empty() {
        return Err(fail("user combine")(&format!(
            "envelopes rejected: {:?}",
            combined.rejected
        )));
    }
    say(&format!(
        "  threshold user decryption: envelopes of parties {forwarded:?} on chain (completed by {:?}), verified and combined by the client",
        responder_indices(&urec)
    ));
    // CRS: requested through the ASC, made by the parties' ceremony (each turn decided on
    // chain), reported by them, fetched by its agreed digest, and used for a proven encryption
    // that tfhe-rs verifies.
    let crs_verified = match net.crs.clone() {
        None => false,
        Some(req) => {
            let crs_id = req.request_id();
            commit(
                &client,
                "CRS request",
                net.setup.admin.tx(
                    CHAIN,
                    Msg::Request {
                        app_id: LocalNetwork::APP.into(),
                        request: KmsRequest::CrsGen(req),
                    },
                ),
            )
            .await?;
            let started = Instant::now();
            let crec = wait_complete(&client, &crs_id, &net.parties).await?;
            let took = started.elapsed();
            let contributors: Vec<u32> = crec
                .ceremony
                .as_ref()
                .map(|c| c.accepted().map(|(p, _)| p).collect())
                .unwrap_or_default();
            let verified =
                crs_from_chain(&client, &net.blobs, &crec, &key_id, inputs.client_key).await?;
            say(&format!(
                "  CRS {crs_id}: ceremony of {N} turns decided on chain in {:.0} s, contributions of parties {contributors:?} accepted; reported by parties {:?}, fetched by its agreed digest; a proven encryption under it {}",
                took.as_secs_f64(),
                responder_indices(&crec),
                if verified { "verifies" } else { "DOES NOT verify" }
            ));
            verified
        }
    };
    // Resharing: the parties refresh their shares among themselves; the chain completes it on
    // all n equal verdicts, each party then takes its new share up and erases the old one, and
    // a later decryption (stamped with the new epoch) is served with the new shares.
    let rrec = net.reshare("demo-refresh-1").await?;
    let reshared_by = responder_indices(&rrec);
    let fresh = TypedCiphertext {
        fhe_type: kms_types::FheType::Uint8,
        bytes:
            kms_engine::serialize_public(
                &<kms_engine::tfhe::FheUint8 as kms_engine::tfhe::prelude::FheEncrypt<
                    u8,
                    ClientKey,
                >>::encrypt(AFTER_RESHARE, inputs.client_key),
            )
            .map_err(|e| fail("encrypt")(&e))?,
    };
    let (_, after_reshare) = net.timed_public_decryption(fresh).await?;
    say(&format!(
        "  resharing {}: parties {reshared_by:?} refreshed their shares together (dealers checked, verdict agreed by all n, new sharing checked), sealed the new share and erased the old; a public decryption afterwards, served with the new shares, gives {after_reshare}",
        rrec.id
    ));
    let height = client
        .status()
        .await
        .map(|s| s.sync_info.latest_block_height.value())
        .unwrap_or(0);
    drop(net);
    Ok(ThresholdReport {
        crs_verified,
        reshared_by,
        after_reshare,
        n: N,
        t: T,
        chain: CHAIN.into(),
        height,
        processes,
        public_completed_by: responder_indices(&rec),
        user_forwarded_by: forwarded,
        public,
        user: combined
            .plaintexts
            .iter()
            .map(Plaintext::to_decimal)
            .collect(),
    })
}

/// The CRS a completed CRS request `rec` agreed on: the first responder's signed digest (the
/// ASC completed it on t + 1 matching ones), fetched from `blobs` (checked against the digest);
/// whether a proven encryption of two values under it, with the key set's compact public key,
/// verifies.
async fn crs_from_chain(
    c: &HttpClient,
    blobs: &Blobs,
    rec: &RequestRecord,
    key_id: &RequestId,
    client_key: &ClientKey,
) -> Result<bool, DemoError> {
    use kms_engine::tfhe::zk::{CompactPkeCrs, ZkComputeLoad, ZkVerificationOutcome};
    use kms_engine::tfhe::{CompactPublicKey, ProvenCompactCiphertextList};
    let first = rec
        .responded
        .first()
        .ok_or_else(|| fail("crs")(&"no responder"))?;
    let digest = match query::<ResponseRecord>(c, keys::response(&rec.id, first))
        .await
        .map(|r| r.fulfillment)
    {
        Some(Fulfillment::Material { items }) => items
            .iter()
            .find(|i| i.data_type == kms_types::DataType::Crs.as_str())
            .map(|i| i.digest)
            .ok_or_else(|| fail("crs")(&"no CRS in the agreed material"))?,
        _ => return Err(fail("crs")(&"no material on chain")),
    };
    let bytes = blobs
        .get(&digest)
        .await
        .map_err(|e| fail("crs")(&e))?
        .ok_or_else(|| fail("crs")(&"not in the blob store"))?;
    let crs: CompactPkeCrs = kms_engine::deserialize_public(&bytes).map_err(|e| fail("crs")(&e))?;
    let pk = CompactPublicKey::new(client_key);
    let metadata = key_id.as_bytes();
    let proven = ProvenCompactCiphertextList::builder(&pk)
        .push(7u8)
        .push(true)
        .build_with_proof_packed(&crs, metadata, ZkComputeLoad::Proof)
        .map_err(|e| fail("prove")(&e))?;
    Ok(matches!(
        proven.verify(&crs, &pk, metadata),
        ZkVerificationOutcome::Valid
    ))
}

/// The plaintexts of a completed public decryption `rec` of `cts`, as decimals: its first
/// responder's signed result (the ASC completed it on t + 1 matching ones).
pub async fn public_result(
    c: &HttpClient,
    rec: &RequestRecord,
    cts: &[TypedCiphertext],
) -> Result<Vec<String>, DemoError> {
    let first = rec
        .responded
        .first()
        .ok_or_else(|| fail("public decryption")(&"no responder"))?;
    match query::<ResponseRecord>(c, keys::response(&rec.id, first))
        .await
        .map(|r| r.fulfillment)
    {
        Some(Fulfillment::PublicDecryption { plaintexts, .. }) => {
            if plaintexts.len() != 32 * cts.len() {
                return Err(fail("public decryption")(&"result of the wrong length"));
            }
            plaintexts
                .chunks(32)
                .zip(cts)
                .map(|(w, ct)| {
                    let word: [u8; 32] = w
                        .try_into()
                        .map_err(|_| fail("public decryption")(&"short word"))?;
                    Ok(Plaintext {
                        fhe_type: ct.fhe_type,
                        word,
                    }
                    .to_decimal())
                })
                .collect()
        }
        _ => Err(fail("public decryption")(&"no result on chain")),
    }
}

/// The user-decryption envelopes the chain holds for request `id`, one entry per party of
/// `parties`; an absent or unparsable envelope is `None` (`user_combine` treats it as a silent
/// party).
pub async fn user_shares(
    c: &HttpClient,
    id: &RequestId,
    parties: &[kms_chain_types::state::Party],
) -> Vec<UserShareResponse> {
    let mut responses = Vec::with_capacity(parties.len());
    for party in parties {
        let response = query::<ResponseRecord>(c, keys::response(id, &party.signer))
            .await
            .and_then(|r| match r.fulfillment {
                Fulfillment::UserDecryption {
                    envelope,
                    signature,
                } => Some(Signcrypted {
                    envelope: Envelope::from_bytes(envelope).ok()?,
                    response_signature: Signature::from_slice(&signature).ok()?,
                }),
                _ => None,
            });
        responses.push(UserShareResponse {
            party: party.index as usize,
            signer: party.signer,
            response,
        });
    }
    responses
}

/// The indices (in the request's frozen party set) of the signers that responded.
fn responder_indices(rec: &RequestRecord) -> Vec<u32> {
    rec.responded
        .iter()
        .filter_map(|a| rec.party_index(a))
        .collect()
}

/// What `kms up` leaves in `<dir>/up.json` for manual use.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct UpInfo {
    /// The chain's RPC address.
    pub rpc: String,
    /// The chain ID.
    pub chain_id: String,
    /// The key set registered on chain.
    pub key_id: String,
    /// The application the user administers.
    pub app_id: String,
    /// The blob store (put ciphertexts and client keys here by SHA3-256).
    pub blobs: String,
    /// The key set's compact public key (tfhe safe serialization).
    pub public_key: String,
    /// Developer keys (secp256k1, hex): the config admin and the funded user.
    pub admin_key: String,
    /// The funded user's key.
    pub user_key: String,
    /// Process IDs (host, enclave) per party.
    pub processes: Vec<(u32, u32)>,
    /// Each process's log.
    pub logs: Vec<String>,
}

/// `kms up`: a developer-mode KMS left running for manual use until `stop` resolves: the
/// devnet on `rpc`, 4 parties as processes, a key set on `params` from the insecure dealer
/// registered on chain, `enclaves_per_party` enclaves per party; writes [`UpInfo`] to
/// `<dir>/up.json`.
pub async fn up(
    dir: &Path,
    rpc: std::net::SocketAddr,
    params: ParamSetName,
    enclaves_per_party: usize,
    kms: &Path,
    stop: impl std::future::Future<Output = ()>,
    say: &mut dyn FnMut(&str),
) -> Result<UpInfo, DemoError> {
    let keygen = KeyGenRequest {
        params,
        label: format!("up-{}", std::process::id()),
    };
    let key_id = keygen.request_id();
    say(&format!(
        "key generation ({} parameters, insecure dealer)…",
        params.as_str()
    ));
    let ks =
        kms_engine::generate_key_set(params, &key_id, &mut |stage| say(&format!("  … {stage:?}")));
    let public_key =
        kms_engine::serialize_public(&ks.public_key).map_err(|e| fail("public key")(&e))?;
    let server_key =
        kms_engine::serialize_public(&ks.server_key).map_err(|e| fail("server key")(&e))?;
    std::fs::create_dir_all(dir).map_err(|e| fail("up")(&e))?;
    let pk_path = dir.join("public-key.bin");
    std::fs::write(&pk_path, &public_key).map_err(|e| fail("up")(&e))?;
    let net = LocalNetwork::start(
        NetworkInputs {
            params,
            keygen,
            material: vec![
                ("PublicKey".into(), kms_types::sha3_256(&public_key)),
                ("ServerKey".into(), kms_types::sha3_256(&server_key)),
            ],
            client_key: &ks.client_key,
            server_key,
            kms,
            dir: dir.to_path_buf(),
            rpc,
            block: BLOCK,
            enclaves_per_party,
            crs: None,
        },
        say,
    )
    .await?;
    let info = UpInfo {
        rpc: net.rpc.clone(),
        chain_id: CHAIN.into(),
        key_id: net.key_id.to_string(),
        app_id: LocalNetwork::APP.into(),
        blobs: dir.join("blobs").display().to_string(),
        public_key: pk_path.display().to_string(),
        admin_key: hex::encode(&net.setup.admin.key().to_bytes()[..]),
        user_key: hex::encode(&net.user.key().to_bytes()[..]),
        processes: net
            .parties
            .pids()
            .into_iter()
            .map(|(h, e)| (h.unwrap_or(0), e.unwrap_or(0)))
            .collect(),
        logs: net
            .parties
            .logs()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    };
    let path = dir.join("up.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&info).map_err(|e| fail("up")(&e))?,
    )
    .map_err(|e| fail("up")(&e))?;
    say(&format!(
        "running: chain {CHAIN} on {}, key {}, 4 parties (enclave + host processes); details and developer keys in {}; Ctrl-C stops everything",
        info.rpc,
        info.key_id,
        path.display()
    ));
    stop.await;
    drop(net);
    say("stopped");
    Ok(info)
}
