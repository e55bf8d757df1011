//! The full request flow through real CometBFT (issue 11) with the party runtime's shape
//! (issue 10): four `cometbft` validators with their `kms chain-app` processes; four parties,
//! each an enclave runtime (`kms_runtime::PartyRuntime`: its own light client anchored at the
//! genesis file, its key share, its signing key) behind an untrusted host (`kms_host::PartyHost`)
//! that follows *its own* validator (websocket subscription), fetches the evidence and the
//! ciphertexts by digest, and broadcasts what its enclave signed. The parties talk over mutually
//! attested TLS (mock NSM). Keygen (insecure dealer), a public decryption and a user decryption
//! are requested on chain and completed by the parties alone; results are checked against
//! tfhe-rs's own decryption with the client key. Then, with requests in flight: one validator
//! down (its party blind), the other three parties complete a request; two down, the chain halts
//! and a request waits unapproved; both back, it is approved and completed correctly.

mod support;

use kms_algebra::prss::{deal_keys, Prss};
use kms_attestation::{Policy, Release};
use kms_attested_tls::IdentityKey;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, Config, RequestRecord, RequestStatus};
use kms_chain_types::tx::{KmsRequest, Msg};
use kms_cli::demo_threshold::{public_result, user_shares};
use kms_cli::network::write_network;
use kms_client::{encrypt_value, ClearValue};
use kms_connector::{ChainRpc, Follower, Wakeup};
use kms_devnet::dev::{DevSetup, Wallet};
use kms_eip712::SigningKey;
use kms_engine::{decrypt_ciphertext, generate_key_set, serialize_public, Plaintext};
use kms_host::{Blobs, Nonces, PartyHost, Served, Slot};
use kms_light_client::{LightClient, Options};
use kms_nsm::{MockNsm, MockRootCa};
use kms_runtime::{PartyRuntime, RuntimeParts, SystemClock};
use kms_signcryption::ClientKeyPair;
use kms_threshold::{deal_insecure, user_combine, FloodingParams, ThresholdParty};
use kms_transport::grpc::GrpcParty;
use kms_transport::tls::PartyTls;
use kms_types::{
    CanonicalRequest, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRequest, RequestId,
    TypedCiphertext, UserDecryptionRequest,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{
    cometbft, light_block, rpc_url, spawn_app, spawn_validator, wait_for_height, Processes,
    ONE_NETWORK_AT_A_TIME,
};
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient};

const CHAIN: &str = "kms-real-parties";
const N: usize = 4;
const T: usize = 1;
const PARAMS: ParamSetName = ParamSetName::TestInsecure;

fn now_unix() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn party_tls(root: &MockRootCa, me: usize, key: IdentityKey, registered: &[[u8; 32]]) -> PartyTls {
    let pcrs = [[0x4bu8; 48], [0x4d; 48], [0x53; 48]];
    let root = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
    let nsm = Arc::new(MockNsm::new(root, &format!("i-party-{me}"), pcrs, now_unix).unwrap());
    let policy = Policy::production(vec![Release::from_image("test", pcrs)], 300);
    PartyTls::for_party(nsm, me, registered, key, policy).unwrap()
}

async fn record(c: &HttpClient, id: &RequestId) -> Option<RequestRecord> {
    let q = c
        .abci_query(Some("store".into()), keys::request(id), None, false)
        .await
        .ok()?;
    codec::decode(&q.value).ok()
}

async fn wait_complete(c: &HttpClient, id: &RequestId, within: Duration) -> RequestRecord {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(r) = record(c, id).await {
            if matches!(r.status, RequestStatus::Completed { .. }) {
                return r;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "request {id} not complete after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn commit(c: &HttpClient, tx: Vec<u8>) {
    let r = c.broadcast_tx_commit(tx).await.unwrap();
    assert!(r.check_tx.code.is_ok(), "CheckTx: {}", r.check_tx.log);
    assert!(
        r.tx_result.code.is_ok(),
        "FinalizeBlock: {}",
        r.tx_result.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_parties_serve_keygen_and_decryptions_through_real_cometbft() {
    let bin = cometbft();
    let dir = tempfile::tempdir().unwrap();
    let identity_keys: Vec<IdentityKey> =
        (0..N).map(|_| IdentityKey::generate().unwrap()).collect();
    let digests: Vec<[u8; 32]> = identity_keys.iter().map(IdentityKey::digest).collect();
    let mut setup = DevSetup::new(CHAIN, N, T as u32, 0, Time::now()).with_identity_keys(&digests);
    let domain = setup.genesis.app_config.eip712_domain.clone();
    let nodes = write_network(&bin, dir.path(), CHAIN, N, &setup.genesis.app_config, 300).unwrap();

    let _alone = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut apps = Processes(nodes.iter().map(|n| Some(spawn_app(n))).collect());
    let mut validators = Processes(
        nodes
            .iter()
            .map(|n| Some(spawn_validator(&bin, n)))
            .collect(),
    );
    let clients: Vec<HttpClient> = nodes
        .iter()
        .map(|n| HttpClient::new(rpc_url(n).as_str()).unwrap())
        .collect();
    for c in &clients {
        wait_for_height(c, 2, Duration::from_secs(90)).await;
    }

    // The key set (insecure dealer: the stand-in for the DKG) for the keygen request's ID.
    let keygen = KeyGenRequest {
        params: PARAMS,
        label: "real-cometbft".into(),
    };
    let key_id = keygen.request_id();
    let ks = generate_key_set(PARAMS, &key_id, &mut |_| {});
    let material = vec![
        (
            "PublicKey".to_string(),
            kms_types::sha3_256(&serialize_public(&ks.public_key).unwrap()),
        ),
        (
            "ServerKey".to_string(),
            kms_types::sha3_256(&serialize_public(&ks.server_key).unwrap()),
        ),
    ];
    let server_key = ks.server_key.decompress();
    let shares = deal_insecure(&ks.client_key, key_id, N, T, &mut rand_core::OsRng).unwrap();
    let prss_keys = deal_keys(N, T, &mut rand_core::OsRng);

    // Every party's light client is anchored at the genesis file (its trust root), not at
    // anything a host serves.
    let genesis: tendermint::Genesis<Value> =
        serde_json::from_slice(&std::fs::read(nodes[0].home.join("config/genesis.json")).unwrap())
            .unwrap();
    let genesis_set = tendermint::validator::Set::without_proposer(genesis.validators.clone());
    let options = Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(3600),
        clock_drift: Duration::from_secs(10),
    };
    let first = light_block(&rpc_url(&nodes[0]), 1).await;

    // The parties: attested TLS mesh, runtime, host on its own validator.
    let cfg: Config = codec::decode(
        &clients[0]
            .abci_query(Some("store".into()), keys::CONFIG.to_vec(), None, false)
            .await
            .unwrap()
            .value,
    )
    .unwrap();
    let registered: Vec<[u8; 32]> = cfg.parties.iter().map(|p| p.identity_key_digest).collect();
    let root = MockRootCa::generate(now_unix()).unwrap();
    let (listeners, endpoints) = GrpcParty::bind_local(N).await.unwrap();
    let blobs_dir = dir.path().join("blobs");
    let (served_tx, mut served_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut hosts = Vec::new();
    for (i, ((share, listener), identity)) in shares
        .into_iter()
        .zip(listeners)
        .zip(identity_keys)
        .enumerate()
    {
        let party = i + 1;
        let flooding =
            FloodingParams::for_param_set(PARAMS, N, T, share.message_modulus, share.carry_modulus)
                .unwrap();
        let signer = SigningKey::from_bytes(&setup.parties[i].key().to_bytes()).unwrap();
        let address = signer.address();
        let net = Arc::new(GrpcParty::start_tls(
            party,
            listener,
            endpoints.clone(),
            party_tls(&root, party, identity, &registered),
        ));
        let (lc, _) =
            LightClient::from_genesis(CHAIN, 1, &genesis_set, first.clone(), options, Time::now())
                .unwrap();
        let rpc = ChainRpc::new(&rpc_url(&nodes[i])).unwrap();
        let lease = Arc::new(Nonces::new(rpc.clone(), address).lease());
        let shares = Arc::new(kms_runtime::share_store::MemoryShareStore::new(
            Default::default(),
            &share,
        ));
        let runtime = Arc::new(PartyRuntime::new(RuntimeParts {
            chain_id: CHAIN.into(),
            light_client: lc,
            party: Arc::new(ThresholdParty {
                prss: Prss::new(party, N, T, &prss_keys).unwrap(),
                key: kms_threshold::HeldKey::new(Default::default(), share),
                flooding,
                params: PARAMS,
                signer,
                domain: domain.clone(),
                served: kms_threshold::ServedLog::in_memory(),
            }),
            server_key: server_key.clone(),
            material: BTreeMap::from([(key_id, material.clone())]),
            clock: Arc::new(SystemClock),
            net,
            nonces: lease.clone(),
            shares,
            round_deadline: Duration::from_secs(60),
        }));
        let follower = Follower::start(
            rpc,
            1,
            Some(dir.path().join(format!("cursor-{party}"))),
            Duration::from_millis(250),
        )
        .await
        .unwrap();
        assert_eq!(
            follower.wakeup(),
            Wakeup::Subscription,
            "CometBFT offers a websocket"
        );
        let slot = Slot {
            enclave: runtime,
            nonces: lease,
        };
        let mut host = PartyHost::new(follower, vec![slot], Blobs::new(&blobs_dir));
        let served_tx = served_tx.clone();
        hosts.push(tokio::spawn(async move {
            loop {
                match host.step().await {
                    Ok((_, served)) => {
                        for s in served {
                            let _ = served_tx.send((
                                party,
                                format!("{s:?}"),
                                matches!(s, Served::Broadcast { .. }),
                            ));
                        }
                    }
                    Err(e) => {
                        let _ = served_tx.send((party, format!("host error: {e}"), false));
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }));
    }
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for h in &self.0 {
                h.abort();
            }
        }
    }
    let _hosts = AbortOnDrop(hosts);

    // Keygen through the ASC: the parties report the key set's material, t + 1 complete it.
    let mut user = Wallet::random();
    commit(
        &clients[0],
        setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
    )
    .await;
    commit(
        &clients[1],
        user.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
    )
    .await;
    commit(
        &clients[2],
        setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "dapp".into(),
                admin: user.address(),
            },
        ),
    )
    .await;
    commit(
        &clients[3],
        setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "dapp".into(),
                request: KmsRequest::KeyGen(keygen.clone()),
            },
        ),
    )
    .await;
    let rec = wait_complete(&clients[0], &key_id, Duration::from_secs(60)).await;
    assert!(
        rec.responded.len() > T,
        "keygen completed by {:?}",
        rec.responded
    );

    // Ciphertexts under the key set's public key; the chain carries their digests, the blob
    // store (the KV-store's role) their bytes.
    kms_engine::tfhe::set_server_key(server_key.clone());
    let values = [
        (FheType::Uint8, ClearValue::Unsigned(173)),
        (FheType::Bool, ClearValue::Bool(true)),
        (FheType::Uint64, ClearValue::Unsigned(1 << 40)),
    ];
    let cts: Vec<TypedCiphertext> = values
        .iter()
        .map(|(t, v)| encrypt_value(&ks.public_key, *t, *v).unwrap())
        .collect();
    let blobs = Blobs::new(&blobs_dir);
    for ct in &cts {
        blobs.put(&ct.bytes).await.unwrap();
    }
    let client_keys = ClientKeyPair::generate(&mut rand_core::OsRng);
    blobs.put(client_keys.public().as_bytes()).await.unwrap();

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
        &clients[1],
        user.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: "dapp".into(),
                handles: cts.iter().map(TypedCiphertext::digest).collect(),
                addresses: vec![user.address()],
            },
        ),
    )
    .await;
    commit(
        &clients[1],
        user.tx(
            CHAIN,
            Msg::Request {
                app_id: "dapp".into(),
                request: KmsRequest::PublicDecrypt(public_req.to_ref()),
            },
        ),
    )
    .await;
    commit(
        &clients[2],
        user.tx(
            CHAIN,
            Msg::Request {
                app_id: "dapp".into(),
                request: KmsRequest::UserDecrypt(user_req.to_ref()),
            },
        ),
    )
    .await;

    // The truth: tfhe-rs's own decryption with the client key.
    let expected: Vec<String> = cts
        .iter()
        .enumerate()
        .map(|(i, ct)| {
            decrypt_ciphertext(i, ct, &key_id, PARAMS, &ks.client_key)
                .unwrap()
                .to_decimal()
        })
        .collect();
    assert_eq!(expected, ["173", "true", "1099511627776"]);

    // Public decryption: completed on chain by t + 1 matching signed results. A node is read
    // for what it reported complete (another node may not have committed that block yet).
    let rec = wait_complete(&clients[3], &public_id, Duration::from_secs(120)).await;
    let got = public_result(&clients[3], &rec, &cts).await.unwrap();
    assert_eq!(got, expected, "public decryption");

    // User decryption: every party's envelope on chain; the client verifies and combines.
    let urec = wait_complete(&clients[0], &user_id, Duration::from_secs(120)).await;
    let responses = user_shares(&clients[0], &user_id, &cfg.parties).await;
    assert!(urec.responded.len() > 2 * T, "2t + 1 envelopes at least");
    let meta: Vec<_> = cts.iter().map(|c| (c.fhe_type, c.digest())).collect();
    let flooding = FloodingParams::for_param_set(PARAMS, N, T, 4, 4).unwrap();
    let combined = user_combine(
        &client_keys,
        &domain,
        &user_id,
        &key_id,
        &meta,
        &responses,
        &flooding,
    )
    .unwrap();
    assert!(combined.rejected.is_empty(), "{:?}", combined.rejected);
    let got: Vec<String> = combined
        .plaintexts
        .iter()
        .map(Plaintext::to_decimal)
        .collect();
    assert_eq!(got, expected, "user decryption");

    // What the hosts reported so far: every party broadcast an answer to each request or
    // skipped one already complete; none was refused by its enclave.
    let mut log = Vec::new();
    while let Ok(s) = served_rx.try_recv() {
        log.push(s);
    }
    assert!(
        log.iter().all(|(_, s, _)| !s.contains("EnclaveRefused")),
        "{log:#?}"
    );
    for party in 1..=N {
        assert!(
            log.iter()
                .any(|(p, _, broadcast)| *p == party && *broadcast),
            "party {party} answered nothing: {log:#?}"
        );
    }

    // A public decryption of a fresh ciphertext, submitted through node 0; its value is checked
    // against tfhe-rs's decryption once it completes.
    let mut submit = |value: u128| {
        let ct =
            encrypt_value(&ks.public_key, FheType::Uint8, ClearValue::Unsigned(value)).unwrap();
        let req = PublicDecryptionRequest {
            key_id,
            ciphertexts: vec![ct.clone()],
        };
        let txs = vec![
            user.tx(
                CHAIN,
                Msg::AclGrant {
                    app_id: "dapp".into(),
                    handles: vec![ct.digest()],
                    addresses: vec![user.address()],
                },
            ),
            user.tx(
                CHAIN,
                Msg::Request {
                    app_id: "dapp".into(),
                    request: KmsRequest::PublicDecrypt(req.to_ref()),
                },
            ),
        ];
        (ct, req.request_id(), txs)
    };
    // One validator down (node 3 and its app): the chain goes on with 3 of 4; party 4, which
    // follows node 3, is blind, and the other three complete the request.
    validators.kill(3);
    apps.kill(3);
    let (ct, id, txs) = submit(77);
    blobs.put(&ct.bytes).await.unwrap();
    for tx in txs {
        commit(&clients[0], tx).await;
    }
    let rec = wait_complete(&clients[0], &id, Duration::from_secs(120)).await;
    assert!(!rec.responded.contains(&setup.parties[3].address()));
    let truth = decrypt_ciphertext(0, &ct, &key_id, PARAMS, &ks.client_key)
        .unwrap()
        .to_decimal();
    assert_eq!(
        public_result(&clients[0], &rec, std::slice::from_ref(&ct))
            .await
            .unwrap()[0],
        truth
    );

    // Two down (nodes 2 and 3): the chain halts; a request sits in node 0's mempool and
    // nothing is approved or answered.
    validators.kill(2);
    apps.kill(2);
    let (ct, id, txs) = submit(88);
    blobs.put(&ct.bytes).await.unwrap();
    for tx in txs {
        let r = clients[0].broadcast_tx_sync(tx).await.unwrap();
        assert!(r.code.is_ok(), "CheckTx: {}", r.log);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        record(&clients[0], &id).await.is_none(),
        "approved without a quorum"
    );

    // Both back: the chain resumes, the request is approved and completed, correctly.
    for i in [2, 3] {
        apps.0[i] = Some(spawn_app(&nodes[i]));
        validators.0[i] = Some(spawn_validator(&bin, &nodes[i]));
    }
    let rec = wait_complete(&clients[0], &id, Duration::from_secs(180)).await;
    let truth = decrypt_ciphertext(0, &ct, &key_id, PARAMS, &ks.client_key)
        .unwrap()
        .to_decimal();
    assert_eq!(truth, "88");
    assert_eq!(
        public_result(&clients[0], &rec, std::slice::from_ref(&ct))
            .await
            .unwrap()[0],
        truth
    );
    served_rx.close();
}
