//! Each party as two OS processes (issue 10): `kms enclave` (the enclave runtime; its only I/O
//! is a Unix socket to its host) and `kms host` (follows the chain over RPC, relays party
//! traffic over TCP, stores the enclave's sealed state it cannot read, serves blobs by digest,
//! broadcasts what the enclave signed). Four of each, against a devnet chain served over RPC
//! (no websocket there: the hosts poll).
//!
//! * The full flow: keygen (insecure dealer: the test deals the shares and seals each party's
//!   state with that party's key), public decryption completed on chain by t + 1 signed
//!   results, user decryption combined by the client; checked against tfhe-rs's decryption.
//! * One enclave killed: the next requests complete through the other three.
//! * Restarted, it boots from its sealed state and answers again.
//! * An enclave whose host has no sealed state for it refuses to start (no fresh identity).
//!
//! The enclaves seal with AWS KMS, against a local KMS endpoint that releases a data key only
//! to an enclave whose attestation document carries the release's PCRs: each first boot
//! reseals the dealer's state under a new data key (four keys released), the developer key
//! files are then deleted, and the restart gets its key back from KMS (a fifth release).

use kms_attested_tls::IdentityKey;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus, ResponseRecord};
use kms_chain_types::tx::{KmsRequest, Msg};
use kms_cli::demo_threshold::{public_result, user_shares};
use kms_cli::parties::{DealInputs, DevAwsKms, Supervisor};
use kms_client::{encrypt_value, ClearValue};
use kms_devnet::dev::{DevSetup, Wallet};
use kms_devnet::{Node, PersistentChain};
use kms_engine::{decrypt_ciphertext, generate_key_set, serialize_public, Plaintext};
use kms_host::Blobs;
use kms_mock_aws_kms::{MockKey, MockKms};
use kms_signcryption::ClientKeyPair;
use kms_threshold::{user_combine, FloodingParams};
use kms_types::{
    CanonicalRequest, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRequest, RequestId,
    TypedCiphertext, UserDecryptionRequest,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient};

const CHAIN: &str = "kms-processes";
const N: usize = 4;
const T: usize = 1;
const PARAMS: ParamSetName = ParamSetName::TestInsecure;

async fn record(c: &HttpClient, id: &RequestId) -> Option<RequestRecord> {
    let q = c
        .abci_query(Some("store".into()), keys::request(id), None, false)
        .await
        .ok()?;
    codec::decode(&q.value).ok()
}

async fn wait_complete(
    c: &HttpClient,
    id: &RequestId,
    within: Duration,
    logs: &[PathBuf],
) -> RequestRecord {
    let deadline = Instant::now() + within;
    loop {
        if let Some(r) = record(c, id).await {
            if matches!(r.status, RequestStatus::Completed { .. }) {
                return r;
            }
        }
        if Instant::now() > deadline {
            for l in logs {
                eprintln!(
                    "--- {}\n{}",
                    l.display(),
                    std::fs::read_to_string(l).unwrap_or_default()
                );
            }
            panic!("request {id} not complete after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
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

async fn response(c: &HttpClient, id: &RequestId, signer: &[u8; 20]) -> Option<ResponseRecord> {
    let v = c
        .abci_query(
            Some("store".into()),
            keys::response(id, signer),
            None,
            false,
        )
        .await
        .ok()?
        .value;
    codec::decode(&v).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_parties_as_enclave_and_host_processes() {
    let dir = tempfile::tempdir().unwrap();
    let identity: Vec<IdentityKey> = (0..N).map(|_| IdentityKey::generate().unwrap()).collect();
    let digests: Vec<[u8; 32]> = identity.iter().map(IdentityKey::digest).collect();
    let mut setup = DevSetup::new(CHAIN, N, T as u32, 4, Time::now()).with_identity_keys(&digests);
    let domain = setup.genesis.app_config.eip712_domain.clone();

    // The chain: a devnet in this process, served over RPC to the hosts.
    let genesis = setup.genesis.clone();
    let chain = PersistentChain::open_or_create(&dir.path().join("chain"), || genesis).unwrap();
    let genesis_validators = serde_json::to_vec(chain.chain().validators().validators()).unwrap();
    let node = Node::new(chain);
    let (addr, _server) = node.serve_rpc(([127, 0, 0, 1], 0).into()).await.unwrap();
    let _producer = node.spawn_producer(Duration::from_millis(300));
    let rpc = format!("http://{addr}");
    let client = HttpClient::new(rpc.as_str()).unwrap();

    // The dealer (stand-in for the DKG) and the processes, as the demo runs them.
    let keygen = KeyGenRequest {
        params: PARAMS,
        label: "processes".into(),
    };
    let key_id = keygen.request_id();
    let ks = generate_key_set(PARAMS, &key_id, &mut |_| {});
    let blobs_dir = dir.path().join("blobs");
    let blobs = Blobs::new(&blobs_dir);
    let server_key_digest = blobs
        .put(&serialize_public(&ks.server_key).unwrap())
        .await
        .unwrap();
    let material = vec![
        (
            "PublicKey".to_string(),
            kms_types::sha3_256(&serialize_public(&ks.public_key).unwrap()),
        ),
        ("ServerKey".to_string(), server_key_digest),
    ];
    let mut parties = Supervisor::provision(
        &dir.path().join("parties"),
        Path::new(env!("CARGO_BIN_EXE_kms")),
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
            params: PARAMS,
            client_key: &ks.client_key,
            server_key_digest,
            material,
            endpoints: setup.endpoints(),
        },
    )
    .unwrap();
    // AWS KMS sealing: a local endpoint holding one key per party, whose key policy requires
    // the dev release's PCRs in documents under the mock NSM's root.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAPARTYHOSTS000001");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test-secret");
    let arns: Vec<String> = (1..=N)
        .map(|p| format!("arn:aws:kms:mock-region:11112222333{p}:key/party-{p}"))
        .collect();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let aws_kms = MockKms::start(
        arns.iter()
            .map(|arn| MockKey {
                arn: arn.clone(),
                pcrs: kms_runtime::process::DEV_PCRS,
            })
            .collect(),
        kms_attestation::PinnedRoot::from_der(&parties.nsm_root_der().unwrap()).unwrap(),
        "AKIAPARTYHOSTS000001",
        now,
    )
    .await
    .unwrap();
    parties
        .use_aws_kms(DevAwsKms {
            endpoint: aws_kms.addr.to_string(),
            endpoint_host: kms_mock_aws_kms::HOST_NAME.into(),
            region: "mock-region".into(),
            ca_der: aws_kms.ca_der.clone(),
            key_arns: arns,
        })
        .unwrap();
    parties.start().unwrap();
    let logs = parties.logs();

    // Keygen through the ASC.
    let mut user = Wallet::random();
    commit(
        &client,
        setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
    )
    .await;
    commit(&client, user.tx(CHAIN, Msg::Faucet { amount: 1_000_000 })).await;
    commit(
        &client,
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
        &client,
        setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "dapp".into(),
                request: KmsRequest::KeyGen(keygen.clone()),
            },
        ),
    )
    .await;
    wait_complete(&client, &key_id, Duration::from_secs(90), &logs).await;
    // Every enclave took over its state under its own AWS KMS data key; the developer keys
    // are gone from here on.
    let deadline = Instant::now() + Duration::from_secs(60);
    while aws_kms.counters.released.load(Ordering::SeqCst) < N {
        assert!(
            Instant::now() < deadline,
            "not every enclave got its data key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(aws_kms.counters.released.load(Ordering::SeqCst), N);
    for p in &parties.parties {
        std::fs::remove_file(&p.sealing_key).unwrap();
        assert!(p.dir.join("sealed/data-key").exists());
    }

    // Requests on ciphertexts the client encrypted under the public key.
    kms_engine::tfhe::set_server_key(ks.server_key.decompress());
    let mut round = 0u128;
    let mut decrypt = |user: &mut Wallet| {
        round += 1;
        let cts: Vec<TypedCiphertext> = [
            (FheType::Uint8, ClearValue::Unsigned(100 + round)),
            (FheType::Bool, ClearValue::Bool(round.is_multiple_of(2))),
        ]
        .iter()
        .map(|(t, v)| encrypt_value(&ks.public_key, *t, *v).unwrap())
        .collect();
        let client_keys = ClientKeyPair::generate(&mut rand_core::OsRng);
        let public = PublicDecryptionRequest {
            key_id,
            ciphertexts: cts.clone(),
        };
        let user_req = UserDecryptionRequest {
            key_id,
            ciphertexts: cts.clone(),
            client_encryption_key: client_keys.public().as_bytes().to_vec(),
        };
        let txs = vec![
            user.tx(
                CHAIN,
                Msg::AclGrant {
                    app_id: "dapp".into(),
                    handles: cts.iter().map(TypedCiphertext::digest).collect(),
                    addresses: vec![user.address()],
                },
            ),
            user.tx(
                CHAIN,
                Msg::Request {
                    app_id: "dapp".into(),
                    request: KmsRequest::PublicDecrypt(public.to_ref()),
                },
            ),
            user.tx(
                CHAIN,
                Msg::Request {
                    app_id: "dapp".into(),
                    request: KmsRequest::UserDecrypt(user_req.to_ref()),
                },
            ),
        ];
        (
            cts,
            client_keys,
            public.request_id(),
            user_req.request_id(),
            txs,
        )
    };
    let cfg_parties = setup.genesis.app_config.parties.clone();
    let check = |cts: &[TypedCiphertext]| -> Vec<String> {
        cts.iter()
            .enumerate()
            .map(|(i, ct)| {
                decrypt_ciphertext(i, ct, &key_id, PARAMS, &ks.client_key)
                    .unwrap()
                    .to_decimal()
            })
            .collect()
    };

    // Round 1: all four up.
    // Round 2: party 4's enclave killed; the other three complete both requests.
    // Round 3: party 4's enclave restarted from its sealed state; it answers again.
    for round in 1..=3 {
        let started = Instant::now();
        if round == 2 {
            parties.kill_enclave(3);
        }
        if round == 3 {
            // Restarted; the requests go out once it serves again (a party booting while a
            // round runs misses that round: the network is synchronous with a deadline).
            parties.start_enclave(3).unwrap();
            let log = parties.parties[3].dir.join("enclave.log");
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("serving")
                .count()
                < 2
            {
                assert!(Instant::now() < deadline, "party 4 never came back");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Its data key came back from KMS (its key file is gone).
            assert_eq!(aws_kms.counters.released.load(Ordering::SeqCst), N + 1);
        }
        let (cts, client_keys, public_id, user_id, txs) = decrypt(&mut user);
        for ct in &cts {
            blobs.put(&ct.bytes).await.unwrap();
        }
        blobs.put(client_keys.public().as_bytes()).await.unwrap();
        for tx in txs {
            commit(&client, tx).await;
        }
        let expected = check(&cts);

        let rec = wait_complete(&client, &public_id, Duration::from_secs(120), &logs).await;
        let got = public_result(&client, &rec, &cts).await.unwrap();
        assert_eq!(got, expected, "round {round}: public decryption");

        wait_complete(&client, &user_id, Duration::from_secs(120), &logs).await;
        // Late envelopes still arrive after completion; give party 4 a moment in round 3.
        if round == 3 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while response(&client, &user_id, &cfg_parties[3].signer)
                .await
                .is_none()
            {
                assert!(
                    Instant::now() < deadline,
                    "restarted party 4 never answered"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        let responses = user_shares(&client, &user_id, &cfg_parties).await;
        let answered: Vec<bool> = responses.iter().map(|r| r.response.is_some()).collect();
        match round {
            2 => assert!(!answered[3], "a killed enclave answered"),
            3 => assert!(answered[3], "the restarted enclave did not answer"),
            _ => {}
        }
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
        assert_eq!(got, expected, "round {round}: user decryption");
        eprintln!("round {round}: {:?}", started.elapsed());
    }

    // An enclave whose host has no sealed state refuses to start (never a fresh identity).
    parties.kill_enclave(0);
    std::fs::remove_file(parties.parties[0].dir.join("sealed/state")).unwrap();
    parties.start_enclave(0).unwrap();
    let status = parties
        .enclave_exit(0, Duration::from_secs(30))
        .expect("the enclave kept running without its state");
    assert!(!status.success());
    let log = std::fs::read_to_string(parties.parties[0].dir.join("enclave.log")).unwrap();
    assert!(log.contains("no sealed state"), "{log}");

    // Nor one whose host lost its data-key record: KMS is not asked for a new key.
    parties.kill_enclave(1);
    std::fs::remove_file(parties.parties[1].dir.join("sealed/data-key")).unwrap();
    let released = aws_kms.counters.released.load(Ordering::SeqCst);
    parties.start_enclave(1).unwrap();
    let status = parties
        .enclave_exit(1, Duration::from_secs(30))
        .expect("the enclave kept running without its data key");
    assert!(!status.success());
    let log = std::fs::read_to_string(parties.parties[1].dir.join("enclave.log")).unwrap();
    assert!(log.contains("no sealed data-key record"), "{log}");
    assert_eq!(aws_kms.counters.released.load(Ordering::SeqCst), released);
}
