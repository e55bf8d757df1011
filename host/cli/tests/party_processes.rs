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

mod support;

use kms_algebra::prss::deal_keys;
use kms_attested_tls::IdentityKey;
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus, ResponseRecord};
use kms_chain_types::tx::{Fulfillment, KmsRequest, Msg};
use kms_client::{encrypt_value, ClearValue};
use kms_devnet::dev::{DevSetup, Wallet};
use kms_devnet::{Node, PersistentChain};
use kms_eip712::Signature;
use kms_engine::{decrypt_ciphertext, generate_key_set, serialize_public, Plaintext};
use kms_host::Blobs;
use kms_nsm::MockRootCa;
use kms_runtime::state::{AeadSealer, KeyEntry, PartyState};
use kms_signcryption::{ClientKeyPair, Envelope, Signcrypted};
use kms_threshold::{deal_insecure, user_combine, FloodingParams, UserShareResponse};
use kms_types::{
    CanonicalRequest, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRequest, RequestId,
    TypedCiphertext, UserDecryptionRequest,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::Processes;
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient};
use zeroize::Zeroizing;

const CHAIN: &str = "kms-processes";
const N: usize = 4;
const T: usize = 1;
const PARAMS: ParamSetName = ParamSetName::TestInsecure;

fn kms() -> &'static str {
    env!("CARGO_BIN_EXE_kms")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Party {
    dir: PathBuf,
    socket: PathBuf,
    key_file: PathBuf,
}

fn spawn_host(
    p: &Party,
    listen: u16,
    peers: &Path,
    rpc: &str,
    blobs: &Path,
    signer: [u8; 20],
) -> Child {
    let log = std::fs::File::create(p.dir.join("host.log")).unwrap();
    Command::new(kms())
        .arg("host")
        .arg("--channel")
        .arg(format!("unix:{}", p.socket.display()))
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .arg("--peers")
        .arg(peers)
        .args(["--rpc", rpc])
        .arg("--data-dir")
        .arg(&p.dir)
        .arg("--blobs")
        .arg(blobs)
        .args(["--signer", &format!("0x{}", hex::encode(signer))])
        .args(["--poll-ms", "150"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn spawn_enclave(party: usize, p: &Party, root: &Path) -> Child {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.socket.exists() {
        assert!(
            Instant::now() < deadline,
            "host socket {} missing",
            p.socket.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.dir.join("enclave.log"))
        .unwrap();
    Command::new(kms())
        .arg("enclave")
        .args(["--party", &party.to_string()])
        .arg("--channel")
        .arg(format!("unix:{}", p.socket.display()))
        .arg("--dev-sealing-key")
        .arg(&p.key_file)
        .arg("--dev-root-ca")
        .arg(root)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

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

    // The dealer (stand-in for the DKG): key set, shares, PRSS keys, each party's sealed state.
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
    let shares = deal_insecure(&ks.client_key, key_id, N, T, &mut rand_core::OsRng).unwrap();
    let prss_keys = deal_keys(N, T, &mut rand_core::OsRng);
    let root = MockRootCa::generate(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    )
    .unwrap();
    let root_file = dir.path().join("dev-root-ca");
    let mut raw = (root.cert_der().len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(root.cert_der());
    raw.extend_from_slice(&root.key_pkcs8_der());
    std::fs::write(&root_file, raw).unwrap();

    let mut parties = Vec::new();
    for (i, (share, id_key)) in shares.into_iter().zip(&identity).enumerate() {
        let p = i + 1;
        let pdir = dir.path().join(format!("party{p}"));
        std::fs::create_dir_all(pdir.join("sealed")).unwrap();
        let mut key = Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key[..]);
        let key_file = pdir.join("dev-sealing-key");
        std::fs::write(&key_file, hex::encode(&key[..])).unwrap();
        let state = PartyState {
            party: p as u32,
            n: N as u32,
            t: T as u32,
            chain_id: CHAIN.into(),
            domain: domain.clone(),
            genesis_validators: genesis_validators.clone(),
            registered: digests.clone(),
            identity_key: id_key.to_pkcs8_der(),
            signer_key: setup.parties[i].key().to_bytes(),
            prss: prss_keys
                .iter()
                .filter(|(set, _)| set.contains(&p))
                .map(|(s, k)| (s.clone(), k.clone()))
                .collect(),
            keys: vec![KeyEntry {
                key_id,
                params: PARAMS,
                share,
                server_key_digest,
                material: material.clone(),
            }],
        };
        let sealed = AeadSealer::new(&key)
            .seal(
                &PartyState::context(p as u32, "state"),
                &state.encode().unwrap(),
            )
            .unwrap();
        std::fs::write(pdir.join("sealed/state"), sealed).unwrap();
        parties.push(Party {
            socket: pdir.join("channel.sock"),
            dir: pdir,
            key_file,
        });
    }
    let ports: Vec<u16> = (0..N).map(|_| free_port()).collect();
    let peers_file = dir.path().join("peers.json");
    std::fs::write(
        &peers_file,
        serde_json::to_vec(
            &ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    let logs: Vec<PathBuf> = parties
        .iter()
        .flat_map(|p| [p.dir.join("host.log"), p.dir.join("enclave.log")])
        .collect();

    // The processes.
    let _hosts = Processes(
        parties
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Some(spawn_host(
                    p,
                    ports[i],
                    &peers_file,
                    &rpc,
                    &blobs_dir,
                    setup.parties[i].address(),
                ))
            })
            .collect(),
    );
    let mut enclaves = Processes(
        parties
            .iter()
            .enumerate()
            .map(|(i, p)| Some(spawn_enclave(i + 1, p, &root_file)))
            .collect(),
    );

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
        if round == 2 {
            enclaves.kill(3);
        }
        if round == 3 {
            enclaves.0[3] = Some(spawn_enclave(4, &parties[3], &root_file));
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
        let first = response(&client, &public_id, &rec.responded[0])
            .await
            .unwrap();
        let Fulfillment::PublicDecryption { plaintexts, .. } = first.fulfillment else {
            panic!("not a public decryption result");
        };
        let got: Vec<String> = plaintexts
            .chunks(32)
            .zip(&cts)
            .map(|(w, ct)| {
                Plaintext {
                    fhe_type: ct.fhe_type,
                    word: w.try_into().unwrap(),
                }
                .to_decimal()
            })
            .collect();
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
        let mut responses = Vec::new();
        for p in &cfg_parties {
            let response =
                response(&client, &user_id, &p.signer)
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
                party: p.index as usize,
                signer: p.signer,
                response,
            });
        }
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
    }

    // An enclave whose host has no sealed state refuses to start.
    let empty = Party {
        dir: dir.path().join("nobody"),
        socket: dir.path().join("nobody/channel.sock"),
        key_file: parties[0].key_file.clone(),
    };
    std::fs::create_dir_all(&empty.dir).unwrap();
    let port = free_port();
    let mut host = Processes(vec![Some(spawn_host(
        &empty,
        port,
        &peers_file,
        &rpc,
        &blobs_dir,
        [9; 20],
    ))]);
    let out = spawn_enclave(1, &empty, &root_file)
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let log = std::fs::read_to_string(empty.dir.join("enclave.log")).unwrap();
    assert!(log.contains("no sealed state"), "{log}");
    host.kill(0);
}
