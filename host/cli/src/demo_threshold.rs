//! The multi-party part of the main job: n = 4 parties with threshold t = 1 serve requests that
//! go through the KMS chain.
//!
//! * A 4-validator devnet runs the ABCI app; the config contract registers the 4 parties.
//! * The key set the developer-mode core generated is split by the **insecure dealer** (the
//!   stand-in for the DKG) into shares of the noise-squashing key; PRSS keys likewise.
//! * The parties talk over mutually attested TLS 1.3 (mock NSM, production verification policy)
//!   on loopback gRPC.
//! * The keygen, a public decryption and a user decryption are requests to the ASC. Each party
//!   acts only after its own light client (started from the genesis validator set) verified the
//!   header and the ICS23 proof of the approved request, and after checking that the ciphertexts
//!   the host handed it are the ones approved.
//! * Public decryption: every party signs the threshold result with its registered key; the ASC
//!   completes the request on t + 1 matching signed results. User decryption: every party
//!   signcrypts its flooded shares to the client's ML-KEM key, the envelopes are forwarded through
//!   the chain, and the client verifies and combines them. No party sees the plaintext of a user
//!   decryption.

use crate::demo::{fail, DemoError};
use kms_algebra::prss::{deal_keys, Prss};
use kms_attestation::{Policy, Release};
use kms_attested_tls::IdentityKey;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, Config, RequestRecord, RequestStatus, ResponseRecord};
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::{DomainConfig, Signature, SigningKey};
use kms_engine::tfhe::ClientKey;
use kms_engine::Plaintext;
use kms_light_client::{verify_request_approved, LightClient, Options};
use kms_nsm::{MockNsm, MockRootCa};
use kms_signcryption::{ClientKeyPair, Envelope, Signcrypted};
use kms_threshold::{
    deal_insecure, user_combine, FloodingParams, PartyDecryption, ThresholdParty, UserShareResponse,
};
use kms_transport::grpc::GrpcParty;
use kms_transport::tls::PartyTls;
use kms_types::{
    CanonicalRequest, KeyGenRequest, ParamSetName, PublicDecryptionRequest, RequestId,
    TypedCiphertext, UserDecryptionRequest,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tendermint::Time;

const CHAIN: &str = "kms-demo";
const N: usize = 4;
const T: usize = 1;
const ROUND_DEADLINE: Duration = Duration::from_secs(60);

/// What the multi-party stage did.
#[derive(Clone, Debug, Serialize)]
pub struct ThresholdReport {
    /// Parties and threshold.
    pub n: usize,
    /// Threshold.
    pub t: usize,
    /// Devnet chain ID and height at the end.
    pub chain: String,
    /// Height at the end.
    pub height: u64,
    /// Parties whose signed public-decryption results completed the request on chain.
    pub public_completed_by: Vec<u32>,
    /// Parties whose user-decryption envelopes were forwarded (all n complete the request).
    pub user_forwarded_by: Vec<u32>,
    /// Threshold public decryptions, in order.
    pub public: Vec<String>,
    /// Threshold user decryptions, in order.
    pub user: Vec<String>,
}

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
    /// The ciphertexts to decrypt.
    pub ciphertexts: Vec<TypedCiphertext>,
}

fn now_unix() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

fn expect_ok(step: &'static str, codes: &[u32]) -> Result<(), DemoError> {
    if codes.iter().all(|c| *c == 0) {
        Ok(())
    } else {
        Err(fail(step)(&format!("transaction codes {codes:?}")))
    }
}

/// The config contract's current state.
fn chain_config(m: &ManualChain) -> Result<Config, DemoError> {
    codec::decode(
        &m.chain
            .query("store", keys::CONFIG.to_vec(), 0, false)
            .value,
    )
    .map_err(|e| fail("config")(&e))
}

fn record(m: &ManualChain, id: &RequestId) -> Result<RequestRecord, DemoError> {
    codec::decode(&m.chain.query("store", keys::request(id), 0, false).value)
        .map_err(|e| fail("read request")(&e))
}

/// The attested-TLS mesh of party `me` under the demo's mock NSM root: `key` is its identity
/// key, `registered` the identity-key digests the config contract holds for the parties.
fn party_tls(
    root: &MockRootCa,
    me: usize,
    key: IdentityKey,
    registered: &[[u8; 32]],
) -> Result<PartyTls, DemoError> {
    let f = fail("attested TLS");
    let pcrs = [[0x4bu8; 48], [0x4d; 48], [0x53; 48]];
    let root = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).map_err(|e| f(&e))?;
    let nsm =
        Arc::new(MockNsm::new(root, &format!("i-party-{me}"), pcrs, now_unix).map_err(|e| f(&e))?);
    let policy = Policy::production(vec![Release::from_image("kms demo", pcrs)], 300);
    PartyTls::for_party(nsm, me, registered, key, policy).map_err(|e| f(&e))
}

/// One party's own light client, anchored at genesis when the party starts. Its (untrusted)
/// host hands it headers, proofs and ciphertexts; the party acts only on what this gate
/// verified, and keeps its trusted state from one request to the next.
struct Gate {
    lc: LightClient,
}

impl Gate {
    fn new(
        m: &ManualChain,
        genesis_validators: &tendermint::validator::Set,
    ) -> Result<Self, DemoError> {
        let f = fail("light client");
        let first = m.chain.light_block(1).ok_or_else(|| f(&"no block 1"))?;
        let (lc, _) = LightClient::from_genesis(
            CHAIN,
            1,
            genesis_validators,
            first,
            Self::options(),
            Self::now(m)?,
        )
        .map_err(|e| f(&e))?;
        Ok(Self { lc })
    }

    fn options() -> Options {
        Options {
            trust_threshold: Default::default(),
            trusting_period: Duration::from_secs(3600),
            clock_drift: Duration::from_secs(5),
        }
    }

    /// The enclave's clock (here: the devnet's, one second on).
    fn now(m: &ManualChain) -> Result<Time, DemoError> {
        (m.clock + Duration::from_secs(1)).map_err(|e| fail("light client")(&e))
    }

    /// Verifies, by itself, that request `id` was approved by the ASC as of height `h_req` and
    /// that `handed` are the approved ciphertexts; returns the approved request, which is what
    /// the party then acts on.
    fn approve(
        &mut self,
        m: &ManualChain,
        id: &RequestId,
        h_req: u64,
        handed: &[TypedCiphertext],
    ) -> Result<KmsRequest, DemoError> {
        let f = fail("light client");
        // State after height H is committed by header H + 1.
        let target = h_req + 1;
        let header = if self.lc.height().value() == target {
            self.lc.trusted_header()
        } else {
            let block = m.chain.light_block(target).ok_or_else(|| f(&"no header"))?;
            self.lc.update(block, Self::now(m)?).map_err(|e| f(&e))?
        };
        let q = m
            .chain
            .query("store", keys::request(id), h_req as i64, true);
        let ops = tendermint::merkle::proof::ProofOps::try_from(
            q.proof_ops.ok_or_else(|| f(&"no proof"))?,
        )
        .map_err(|e| f(&e))?;
        let approved = verify_request_approved(&header, id, &q.value, &ops).map_err(|e| f(&e))?;
        let refs: Vec<_> = handed.iter().map(TypedCiphertext::to_ref).collect();
        let ok = match &approved.record.request {
            KmsRequest::PublicDecrypt(r) => r.ciphertexts == refs,
            KmsRequest::UserDecrypt(r) => r.ciphertexts == refs,
            _ => false,
        };
        if !ok {
            return Err(f(&"the ciphertexts handed over are not the approved ones"));
        }
        Ok(approved.record.request)
    }
}

/// Runs the multi-party stage.
pub async fn run(
    inputs: Inputs<'_>,
    say: &mut dyn FnMut(&str),
) -> Result<ThresholdReport, DemoError> {
    let rng = &mut rand_core::OsRng;
    // Each party's long-term TLS identity key (sealed enclave state in production); the config
    // contract registers its digest, and that registration is the party's identity.
    let identity_keys = (0..N)
        .map(|_| IdentityKey::generate())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("identity keys")(&e))?;
    let digests: Vec<[u8; 32]> = identity_keys.iter().map(IdentityKey::digest).collect();
    let mut setup = DevSetup::new(CHAIN, N, T as u32, 4, Time::now()).with_identity_keys(&digests);
    let domain: DomainConfig = setup.genesis.app_config.eip712_domain.clone();
    let mut m = ManualChain::new(setup.genesis.clone()).map_err(|e| fail("devnet")(&e))?;
    let genesis_validators = m.chain.validators().clone();
    m.block(vec![]).map_err(|e| fail("devnet")(&e))?;
    say(&format!(
        "KMS chain {CHAIN}: devnet with {} validators, {N} parties registered, t = {T}",
        genesis_validators.validators().len()
    ));

    // Keygen on chain (same canonical request, hence the same key ID as the core's).
    let key_id = inputs.keygen.request_id();
    let mut user = Wallet::random();
    let txs = vec![
        setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
        user.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
        // Applications are registered by governance; the user administers this one's ACL.
        setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "demo-dapp".into(),
                admin: user.address(),
            },
        ),
    ];
    expect_ok("fund", &m.block(txs).map_err(|e| fail("fund")(&e))?.1)?;
    let tx = setup.admin.tx(
        CHAIN,
        Msg::Request {
            app_id: "demo-dapp".into(),
            request: KmsRequest::KeyGen(inputs.keygen.clone()),
        },
    );
    expect_ok(
        "keygen request",
        &m.block(vec![tx]).map_err(|e| fail("keygen")(&e))?.1,
    )?;
    let mut txs = Vec::new();
    for p in setup.parties.iter_mut().take(T + 1) {
        let items = inputs
            .material
            .iter()
            .map(|(dt, digest)| MaterialItem::signed(p.key(), &domain, &key_id, dt, *digest))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail("sign")(&e))?;
        txs.push(p.tx(
            CHAIN,
            Msg::Fulfill {
                request_id: key_id,
                fulfillment: Fulfillment::Material { items },
            },
        ));
    }
    expect_ok(
        "keygen material",
        &m.block(txs).map_err(|e| fail("keygen")(&e))?.1,
    )?;
    say(&format!(
        "  key {key_id} registered on chain (material reported by t + 1 parties)"
    ));

    // The parties: insecure dealer (DKG stand-in), PRSS, attested TLS mesh.
    let shares =
        deal_insecure(inputs.client_key, key_id, N, T, rng).map_err(|e| fail("deal")(&e))?;
    let prss_keys = deal_keys(N, T, rng);
    let root = MockRootCa::generate(now_unix()).map_err(|e| fail("mock NSM")(&e))?;
    let (listeners, endpoints) = GrpcParty::bind_local(N)
        .await
        .map_err(|e| fail("bind")(&e))?;
    // Who the parties are: the identity-key digests the config contract holds, read from chain.
    let registered: Vec<[u8; 32]> = chain_config(&m)?
        .parties
        .iter()
        .map(|p| p.identity_key_digest)
        .collect();
    let mut identity_keys = identity_keys.into_iter();
    let mut parties = Vec::new();
    let mut transports = Vec::new();
    let mut gates = (0..N)
        .map(|_| Gate::new(&m, &genesis_validators))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, (share, listener)) in shares.into_iter().zip(listeners).enumerate() {
        let party = i + 1;
        let flooding = FloodingParams::for_param_set(
            inputs.params,
            N,
            T,
            share.message_modulus,
            share.carry_modulus,
        )
        .map_err(|e| fail("flooding")(&e))?;
        let signer = SigningKey::from_bytes(&setup.parties[i].key().to_bytes())
            .map_err(|e| fail("keys")(&e))?;
        parties.push(Arc::new(ThresholdParty {
            prss: Prss::new(party, N, T, &prss_keys).map_err(|e| fail("prss")(&e))?,
            key: share,
            flooding,
            params: inputs.params,
            signer,
            domain: domain.clone(),
            served: kms_threshold::ServedLog::in_memory(),
        }));
        transports.push(Arc::new(GrpcParty::start_tls(
            party,
            listener,
            endpoints.clone(),
            party_tls(
                &root,
                party,
                identity_keys
                    .next()
                    .ok_or_else(|| fail("identity keys")(&"missing"))?,
                &registered,
            )?,
        )));
    }
    say("  4 parties up: key shares from the insecure dealer (stand-in for the DKG), attested TLS 1.3 between them");

    // Requests from the user.
    let cts = inputs.ciphertexts;
    let public_req = PublicDecryptionRequest {
        key_id,
        ciphertexts: cts.clone(),
    };
    let client_keys = ClientKeyPair::generate(rng);
    let user_req = UserDecryptionRequest {
        key_id,
        ciphertexts: cts.clone(),
        client_encryption_key: client_keys.public().as_bytes().to_vec(),
    };
    let (public_id, user_id) = (public_req.request_id(), user_req.request_id());
    let handles: Vec<[u8; 32]> = cts.iter().map(TypedCiphertext::digest).collect();
    let txs = vec![user.tx(
        CHAIN,
        Msg::AclGrant {
            app_id: "demo-dapp".into(),
            handles,
            addresses: vec![user.address()],
        },
    )];
    expect_ok("acl", &m.block(txs).map_err(|e| fail("acl")(&e))?.1)?;
    let txs = vec![
        user.tx(
            CHAIN,
            Msg::Request {
                app_id: "demo-dapp".into(),
                request: KmsRequest::PublicDecrypt(public_req.to_ref()),
            },
        ),
        user.tx(
            CHAIN,
            Msg::Request {
                app_id: "demo-dapp".into(),
                request: KmsRequest::UserDecrypt(user_req.to_ref()),
            },
        ),
    ];
    let (h_req, codes) = m.block(txs).map_err(|e| fail("requests")(&e))?;
    expect_ok("requests", &codes)?;
    m.block(vec![]).map_err(|e| fail("devnet")(&e))?;
    say(&format!("  public decryption {public_id} and user decryption {user_id} approved by the ASC at height {h_req}"));

    // Each party: its own light-client gate, then it acts on what its gate returned (request
    // IDs derived from the approved records, key IDs and client key digests from them), then
    // squash (its own, deterministic) and the threshold rounds.
    let mut squashed = Vec::new();
    let mut approved_public = Vec::new();
    let mut approved_user = Vec::new();
    for (p, gate) in parties.iter().zip(gates.iter_mut()) {
        let KmsRequest::PublicDecrypt(public) = gate.approve(&m, &public_id, h_req, &cts)? else {
            return Err(fail("light client")(
                &"approved request is not a public decryption",
            ));
        };
        let KmsRequest::UserDecrypt(user) = gate.approve(&m, &user_id, h_req, &cts)? else {
            return Err(fail("light client")(
                &"approved request is not a user decryption",
            ));
        };
        // The client's key reaches the party through the host; the chain holds its digest.
        if user.client_key_digest != client_keys.public().digest() {
            return Err(fail("light client")(&"client key is not the approved one"));
        }
        squashed.push(Arc::new(
            p.squash_all(&cts).map_err(|e| fail("squash")(&e))?,
        ));
        approved_public.push(public);
        approved_user.push(user);
    }
    say("  each party verified both requests with its own light client (genesis → header, ICS23 proof)");
    let mut tasks = Vec::new();
    for (i, approved) in approved_public.iter().enumerate() {
        let (p, net, sq) = (
            parties[i].clone(),
            transports[i].clone(),
            squashed[i].clone(),
        );
        let (request_id, approved_key) = (approved.request_id(), approved.key_id);
        tasks.push(tokio::spawn(async move {
            p.decrypt_squashed(net.as_ref(), request_id, approved_key, &sq, ROUND_DEADLINE)
                .await
        }));
    }
    let mut results: Vec<PartyDecryption> = Vec::new();
    for t in tasks {
        results.push(
            t.await
                .map_err(|e| fail("threshold decrypt")(&e))?
                .map_err(|e| fail("threshold decrypt")(&e))?,
        );
    }
    // Fulfillments: the first t + 1 complete the request.
    let mut txs = Vec::new();
    for (i, r) in results.iter().enumerate().take(T + 1) {
        let plaintexts: Vec<u8> = r.signed.plaintexts.iter().flat_map(|p| p.word).collect();
        txs.push(setup.parties[i].tx(
            CHAIN,
            Msg::Fulfill {
                request_id: public_id,
                fulfillment: Fulfillment::PublicDecryption {
                    plaintexts,
                    signature: r.signed.signature.0.to_vec(),
                },
            },
        ));
    }
    expect_ok(
        "public fulfill",
        &m.block(txs).map_err(|e| fail("fulfill")(&e))?.1,
    )?;
    let rec = record(&m, &public_id)?;
    if !matches!(rec.status, RequestStatus::Completed { .. }) {
        return Err(fail("public fulfill")(&"request not completed"));
    }
    say(&format!(
        "  threshold public decryption: every party signed; the ASC completed it on the matching results of parties {:?}",
        responder_indices(&rec)
    ));

    // User decryption: each party signcrypts its shares; envelopes travel through the chain.
    let mut txs = Vec::new();
    for (i, approved) in approved_user.iter().enumerate() {
        let s = parties[i]
            .user_decrypt_share(
                approved.request_id(),
                approved.key_id,
                &squashed[i],
                client_keys.public(),
                rng,
            )
            .map_err(|e| fail("user share")(&e))?;
        txs.push(setup.parties[i].tx(
            CHAIN,
            Msg::Fulfill {
                request_id: user_id,
                fulfillment: Fulfillment::UserDecryption {
                    envelope: s.envelope.as_bytes().to_vec(),
                    signature: s.response_signature.0.to_vec(),
                },
            },
        ));
    }
    expect_ok(
        "user fulfill",
        &m.block(txs).map_err(|e| fail("fulfill")(&e))?.1,
    )?;
    let urec = record(&m, &user_id)?;
    if !matches!(urec.status, RequestStatus::Completed { .. }) {
        return Err(fail("user fulfill")(&"request not completed"));
    }
    // The client reads the parties (config) and their envelopes from the chain and combines.
    let cfg = chain_config(&m)?;
    let mut responses = Vec::new();
    for party in &cfg.parties {
        let resp: Option<ResponseRecord> = codec::decode(
            &m.chain
                .query("store", keys::response(&user_id, &party.signer), 0, false)
                .value,
        )
        .ok();
        // An envelope that does not parse counts as a silent party (it never aborts the
        // combine): user_combine decodes from the others.
        let response = match resp.map(|r| r.fulfillment) {
            Some(Fulfillment::UserDecryption {
                envelope,
                signature,
            }) => match (
                Envelope::from_bytes(envelope),
                Signature::from_slice(&signature),
            ) {
                (Ok(envelope), Ok(response_signature)) => Some(Signcrypted {
                    envelope,
                    response_signature,
                }),
                _ => {
                    say(&format!(
                        "  party {}'s envelope does not parse: counted as silent",
                        party.index
                    ));
                    None
                }
            },
            _ => None,
        };
        responses.push(UserShareResponse {
            party: party.index as usize,
            signer: party.signer,
            response,
        });
    }
    let meta: Vec<_> = cts.iter().map(|c| (c.fhe_type, c.digest())).collect();
    let flooding = parties[0].flooding;
    let kms_threshold::UserDecryption {
        plaintexts: user_pts,
        rejected,
        ..
    } = user_combine(
        &client_keys,
        &domain,
        &user_id,
        &key_id,
        &meta,
        &responses,
        &flooding,
    )
    .map_err(|e| fail("user combine")(&e))?;
    if !rejected.is_empty() {
        return Err(fail("user combine")(&format!(
            "envelopes rejected: {rejected:?}"
        )));
    }
    say(&format!(
        "  threshold user decryption: {N} envelopes forwarded through the chain, verified and combined by the client"
    ));
    let render = |v: &[Plaintext]| v.iter().map(Plaintext::to_decimal).collect::<Vec<_>>();
    Ok(ThresholdReport {
        n: N,
        t: T,
        chain: CHAIN.into(),
        height: m.chain.height(),
        public_completed_by: responder_indices(&rec),
        user_forwarded_by: responder_indices(&urec),
        public: render(&results[0].signed.plaintexts),
        user: render(&user_pts),
    })
}

/// The indices (in the request's frozen party set) of the signers that responded.
fn responder_indices(rec: &RequestRecord) -> Vec<u32> {
    rec.responded
        .iter()
        .filter_map(|a| rec.party_index(a))
        .collect()
}
