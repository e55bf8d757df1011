//! The KMS chain end to end on a 4-validator devnet, checked by the enclave's light client:
//! faucet, application ACL, keygen completed by the parties, an approved decryption request
//! proven from genesis, an unauthorized request refused by the ISC, fulfillments from the four
//! party keys completing the requests, and every kind of bad transaction rejected without a trace.

use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus};
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::types::{PublicDecryptionResult, UserDecryptionResponse};
use kms_eip712::DomainConfig;
use kms_light_client::state_proof::{decode_proof_ops, verify_membership, verify_non_membership};
use kms_light_client::tx_proof::verify_tx_inclusion;
use kms_light_client::{verify_request_approved, Error, LightClient, Options};
use kms_types::{
    sha3_256, CiphertextRef, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRef, RequestId,
    UserDecryptionRef,
};
use std::time::Duration;
use tendermint::Time;

const CHAIN: &str = "kms-devnet-test";

struct Net {
    m: ManualChain,
}

impl Net {
    fn new(setup: &DevSetup) -> Self {
        Self {
            m: ManualChain::new(setup.genesis.clone()).unwrap(),
        }
    }

    fn tick(&mut self) -> Time {
        self.m.tick()
    }

    /// A block with exactly `txs`: these tests are about execution (what a transaction that
    /// reaches a block does), CheckTx is tested in `soundness.rs`.
    fn block(&mut self, txs: Vec<Vec<u8>>) -> (u64, Vec<u32>) {
        self.m.include(txs)
    }

    fn record(&self, id: &RequestId) -> RequestRecord {
        let q = self.m.chain.query("store", keys::request(id), 0, false);
        codec::decode(&q.value).unwrap()
    }
}

fn genesis_time() -> Time {
    Time::parse_from_rfc3339("2026-11-24T00:00:00Z").unwrap()
}

fn options() -> Options {
    Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(7 * 24 * 3600),
        clock_drift: Duration::from_secs(5),
    }
}

fn material_fulfillment(w: &Wallet, domain: &DomainConfig, id: &RequestId) -> Fulfillment {
    let items = [("PublicKey", [7u8; 32]), ("ServerKey", [8u8; 32])]
        .into_iter()
        .map(|(dt, digest)| MaterialItem::signed(w.key(), domain, id, dt, digest).unwrap())
        .collect();
    Fulfillment::Material { items }
}

fn decryption_fulfillment(
    w: &Wallet,
    domain: &DomainConfig,
    id: &RequestId,
    r: &PublicDecryptionRef,
    value: u8,
) -> Fulfillment {
    let mut plaintexts = vec![0u8; 32 * r.ciphertexts.len()];
    for i in 0..r.ciphertexts.len() {
        plaintexts[32 * i + 31] = value;
    }
    let digests: Vec<[u8; 32]> = r.ciphertexts.iter().map(|c| c.digest).collect();
    let v = PublicDecryptionResult::new(
        id,
        &r.key_id,
        &digests,
        r.ciphertexts.iter().map(|c| c.fhe_type.wire()).collect(),
        plaintexts.clone(),
    );
    Fulfillment::PublicDecryption {
        plaintexts,
        signature: w.key().sign(domain, &v).unwrap().0.to_vec(),
    }
}

#[test]
fn four_validator_devnet_end_to_end() {
    let mut setup = DevSetup::new(CHAIN, 4, 1, 4, genesis_time());
    let domain = setup.genesis.app_config.eip712_domain.clone();
    let mut net = Net::new(&setup);
    let mut client = Wallet::random();
    let mut stranger = Wallet::random();

    // Genesis anchor: the light client trusts only the genesis validator set.
    let (h1, _) = net.block(vec![]);
    assert_eq!(h1, 1);
    let genesis_validators = net.m.chain.validators().clone();
    let now = net.tick();
    let mut lc = LightClient::from_genesis(
        CHAIN,
        1,
        &genesis_validators,
        net.m.chain.light_block(1).unwrap(),
        options(),
        now,
    )
    .unwrap()
    .0;
    assert_eq!(net.m.chain.validators().validators().len(), 4);

    // Funding, an application and a key.
    let keygen = KmsRequest::KeyGen(KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "epoch-1".into(),
    });
    let key_id = keygen.request_id();
    let (_, codes) = net.block(vec![
        client.tx(CHAIN, Msg::Faucet { amount: 10_000 }),
        setup.admin.tx(CHAIN, Msg::Faucet { amount: 10_000 }),
        setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "fhevm-a".into(),
                admin: client.address(),
            },
        ),
    ]);
    assert_eq!(codes, vec![0, 0, 0]);
    let (_, codes) = net.block(vec![setup.admin.tx(
        CHAIN,
        Msg::Request {
            app_id: "fhevm-a".into(),
            request: keygen,
        },
    )]);
    assert_eq!(codes, vec![0]);
    // t + 1 = 2 matching material reports complete the keygen.
    let txs = setup.parties[..2]
        .iter_mut()
        .map(|p| {
            let f = material_fulfillment(p, &domain, &key_id);
            p.tx(
                CHAIN,
                Msg::Fulfill {
                    request_id: key_id,
                    fulfillment: f,
                },
            )
        })
        .collect();
    let (_, codes) = net.block(txs);
    assert_eq!(codes, vec![0, 0]);
    assert!(matches!(
        net.record(&key_id).status,
        RequestStatus::Completed { .. }
    ));

    // The client allows itself to decrypt two handles and asks for a public decryption.
    let handles = [[0xa1u8; 32], [0xa2u8; 32]];
    let request = PublicDecryptionRef {
        key_id,
        ciphertexts: vec![
            CiphertextRef {
                fhe_type: FheType::Uint8,
                digest: handles[0],
            },
            CiphertextRef {
                fhe_type: FheType::Bool,
                digest: handles[1],
            },
        ],
    };
    let id = KmsRequest::PublicDecrypt(request.clone()).request_id();
    assert_eq!(id, kms_types::CanonicalRequest::request_id(&request));
    // The stranger, funded but not in the ACL, asks for a user decryption of the same handles.
    let sneaky = UserDecryptionRef {
        key_id,
        ciphertexts: request.ciphertexts.clone(),
        client_key_digest: sha3_256(b"stranger's ML-KEM key"),
    };
    let sneaky_id = KmsRequest::UserDecrypt(sneaky.clone()).request_id();
    let (_, codes) = net.block(vec![
        client.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: "fhevm-a".into(),
                handles: handles.to_vec(),
                addresses: vec![client.address()],
            },
        ),
        stranger.tx(CHAIN, Msg::Faucet { amount: 1_000 }),
    ]);
    assert_eq!(codes, vec![0, 0]);
    let request_tx = client.tx(
        CHAIN,
        Msg::Request {
            app_id: "fhevm-a".into(),
            request: KmsRequest::PublicDecrypt(request.clone()),
        },
    );
    let (h_req, codes) = net.block(vec![
        request_tx.clone(),
        stranger.tx(
            CHAIN,
            Msg::Request {
                app_id: "fhevm-a".into(),
                request: KmsRequest::UserDecrypt(sneaky),
            },
        ),
    ]);
    assert_eq!(codes, vec![0, 7], "the ISC refuses the stranger (code 7)");
    let (h_next, _) = net.block(vec![]);

    // ---- The enclave's view: skip from genesis to the header after the request. ----
    let now = net.tick();
    let header = lc
        .update(net.m.chain.light_block(h_next).unwrap(), now)
        .unwrap();
    assert_eq!(header.height(), h_req + 1);
    let req_header = LightClient::from_trusted(net.m.chain.light_block(1).unwrap(), options())
        .unwrap()
        .verify(&net.m.chain.light_block(h_req).unwrap(), now)
        .unwrap();
    // The request transaction is in block h_req...
    let loc = net
        .m
        .chain
        .find_tx(&sha2_256(&request_tx))
        .expect("indexed");
    assert_eq!(loc.height, h_req);
    let proof = net.m.chain.tx_proof(loc).unwrap();
    verify_tx_inclusion(&req_header, &request_tx, &proof).unwrap();
    // ...and the ASC approved it: state at h_req, proven against header h_req + 1.
    let q = net
        .m
        .chain
        .query("store", keys::request(&id), h_req as i64, true);
    assert_eq!(q.code, 0);
    let ops = proof_ops(&q);
    let approved = verify_request_approved(&header, &id, &q.value, &ops).unwrap();
    assert_eq!(approved.record.requester, client.address());
    assert_eq!(
        approved.record.request,
        KmsRequest::PublicDecrypt(request.clone())
    );
    assert_eq!(approved.record.status, RequestStatus::Pending);
    // The refused request is provably absent.
    let q_absent = net
        .m
        .chain
        .query("store", keys::request(&sneaky_id), h_req as i64, true);
    assert!(q_absent.value.is_empty());
    let key = keys::request(&sneaky_id);
    let cp = decode_proof_ops(&proof_ops(&q_absent), &key).unwrap();
    verify_non_membership(&header, &cp, &key).unwrap();

    // Attacks on state proofs.
    // (a) a proof for another key presented for the request key
    let other = net
        .m
        .chain
        .query("store", keys::request(&key_id), h_req as i64, true);
    assert_eq!(
        verify_request_approved(&header, &id, &other.value, &proof_ops(&other)).unwrap_err(),
        Error::StateProofKeyMismatch
    );
    let req_key = keys::request(&id);
    let other_cp = decode_proof_ops(&proof_ops(&other), &keys::request(&key_id)).unwrap();
    assert_eq!(
        verify_membership(&header, &other_cp, &req_key, &q.value).unwrap_err(),
        Error::StateProofKeyMismatch
    );
    // (b) the right proof with another value (a forged record)
    let mut forged: RequestRecord = codec::decode(&q.value).unwrap();
    forged.requester = stranger.address();
    assert_eq!(
        verify_request_approved(&header, &id, &codec::encode(&forged), &ops).unwrap_err(),
        Error::StateProofValueMismatch
    );
    // (c) a valid proof against another height's app hash
    assert!(matches!(
        verify_request_approved(&req_header, &id, &q.value, &ops).unwrap_err(),
        Error::StateProofRootMismatch { .. }
    ));

    // ---- Fulfillment. ----
    let stranger_f = decryption_fulfillment(&stranger, &domain, &id, &request, 42);
    let impostor_f = decryption_fulfillment(&stranger, &domain, &id, &request, 42);
    let (_, codes) = net.block(vec![
        // Not a party.
        stranger.tx(
            CHAIN,
            Msg::Fulfill {
                request_id: id,
                fulfillment: stranger_f,
            },
        ),
        // A party's transaction carrying someone else's EIP-712 signature.
        setup.parties[3].tx(
            CHAIN,
            Msg::Fulfill {
                request_id: id,
                fulfillment: impostor_f,
            },
        ),
    ]);
    assert_eq!(codes, vec![9, 10]);
    // Party 1 lies (validly signed, wrong value): one wrong result never completes a request.
    let lie = decryption_fulfillment(&setup.parties[0], &domain, &id, &request, 99);
    let (_, codes) = net.block(vec![setup.parties[0].tx(
        CHAIN,
        Msg::Fulfill {
            request_id: id,
            fulfillment: lie,
        },
    )]);
    assert_eq!(codes, vec![0]);
    assert_eq!(net.record(&id).status, RequestStatus::Pending);
    let before: Vec<u128> = setup
        .parties
        .iter()
        .map(|p| balance(&net, &p.address()))
        .collect();
    let mut txs = Vec::new();
    for p in &mut setup.parties[1..3] {
        let f = decryption_fulfillment(p, &domain, &id, &request, 42);
        txs.push(p.tx(
            CHAIN,
            Msg::Fulfill {
                request_id: id,
                fulfillment: f,
            },
        ));
    }
    let (_, codes) = net.block(txs);
    assert_eq!(codes, vec![0, 0]);
    let rec = net.record(&id);
    let mut expect = vec![0u8; 64];
    expect[31] = 42;
    expect[63] = 42;
    assert_eq!(
        rec.status,
        RequestStatus::Completed {
            height: net.m.chain.height(),
            result_digest: sha3_256(&expect)
        }
    );
    assert_eq!(
        rec.responded,
        setup.parties[..3]
            .iter()
            .map(|p| p.address())
            .collect::<Vec<_>>()
    );
    // The fee (2 ciphertexts × 10) went to the two parties that agreed.
    let after: Vec<u128> = setup
        .parties
        .iter()
        .map(|p| balance(&net, &p.address()))
        .collect();
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1] + after[2], before[1] + before[2] + 20);
    // Late response to a completed request.
    let late = decryption_fulfillment(&setup.parties[3], &domain, &id, &request, 42);
    let (_, codes) = net.block(vec![setup.parties[3].tx(
        CHAIN,
        Msg::Fulfill {
            request_id: id,
            fulfillment: late,
        },
    )]);
    assert_eq!(codes, vec![12]);

    // ---- User decryption: completes on 2t + 1 = 3 shares; the fourth is still recorded. ----
    let ud = UserDecryptionRef {
        key_id,
        ciphertexts: request.ciphertexts.clone(),
        client_key_digest: sha3_256(b"client ML-KEM key"),
    };
    let ud_id = KmsRequest::UserDecrypt(ud.clone()).request_id();
    let (_, codes) = net.block(vec![client.tx(
        CHAIN,
        Msg::Request {
            app_id: "fhevm-a".into(),
            request: KmsRequest::UserDecrypt(ud.clone()),
        },
    )]);
    assert_eq!(codes, vec![0]);
    for (i, p) in setup.parties.iter_mut().enumerate() {
        let envelope = vec![i as u8 + 1; kms_chain_app::asc::MIN_ENVELOPE + 100];
        let v = UserDecryptionResponse::new(&ud_id, ud.client_key_digest, sha3_256(&envelope));
        let f = Fulfillment::UserDecryption {
            envelope,
            signature: p.key().sign(&domain, &v).unwrap().0.to_vec(),
        };
        let (_, codes) = net.block(vec![p.tx(
            CHAIN,
            Msg::Fulfill {
                request_id: ud_id,
                fulfillment: f,
            },
        )]);
        assert_eq!(codes, vec![0]);
        let rec = net.record(&ud_id);
        let done = matches!(rec.status, RequestStatus::Completed { .. });
        assert_eq!(done, i >= 2, "after party {}", i + 1);
        assert_eq!(rec.responded.len(), i + 1);
    }
}

#[test]
fn bad_transactions_consume_their_nonce_and_change_nothing_else() {
    let mut setup = DevSetup::new(CHAIN, 4, 1, 4, genesis_time());
    let mut net = Net::new(&setup);
    let mut client = Wallet::random();
    let (_, codes) = net.block(vec![
        client.tx(CHAIN, Msg::Faucet { amount: 1_000 }),
        setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "app".into(),
                admin: client.address(),
            },
        ),
    ]);
    assert_eq!(codes, vec![0, 0]);
    let replay = client.tx_with_nonce(CHAIN, 0, Msg::Faucet { amount: 100 });
    let keygen = KmsRequest::KeyGen(KeyGenRequest {
        params: ParamSetName::Default,
        label: "k".into(),
    });
    let config_before = net
        .m
        .chain
        .query("store", keys::CONFIG.to_vec(), 0, false)
        .value;
    let client_before = balance(&net, &client.address());
    // (sender, expected code, tx): each with its sender's next nonce.
    let bad: Vec<(u32, Vec<u8>)> = vec![
        // a non-admin asks for keygen
        (
            6,
            client.tx(
                CHAIN,
                Msg::Request {
                    app_id: "app".into(),
                    request: keygen.clone(),
                },
            ),
        ),
        // the admin has no tokens: unpaid
        (
            5,
            setup.admin.tx(
                CHAIN,
                Msg::Request {
                    app_id: "app".into(),
                    request: keygen.clone(),
                },
            ),
        ),
        // decryption under a key that does not exist
        (
            11,
            client.tx(
                CHAIN,
                Msg::Request {
                    app_id: "app".into(),
                    request: KmsRequest::PublicDecrypt(PublicDecryptionRef {
                        key_id: RequestId::derive("nope", b""),
                        ciphertexts: vec![CiphertextRef {
                            fhe_type: FheType::Uint8,
                            digest: [1; 32],
                        }],
                    }),
                },
            ),
        ),
        // faucet above the limit
        (13, client.tx(CHAIN, Msg::Faucet { amount: u128::MAX })),
        // ACL change by someone who is not the app's admin
        (
            6,
            setup.admin.tx(
                CHAIN,
                Msg::AclGrant {
                    app_id: "app".into(),
                    handles: vec![[1; 32]],
                    addresses: vec![[2; 20]],
                },
            ),
        ),
        // a config change by a non-admin
        (
            6,
            client.tx(
                CHAIN,
                Msg::UpdateConfig(kms_chain_types::tx::ConfigUpdate::AddAdmin([9; 20])),
            ),
        ),
        // an invalid config by the admin (t too large)
        (
            13,
            setup.admin.tx(
                CHAIN,
                Msg::UpdateConfig(kms_chain_types::tx::ConfigUpdate::SetParties {
                    parties: setup.genesis.app_config.parties.clone(),
                    threshold: 2,
                }),
            ),
        ),
        // fulfillment of an unknown request by a party
        (
            11,
            setup.parties[0].tx(
                CHAIN,
                Msg::Fulfill {
                    request_id: RequestId::derive("x", b""),
                    fulfillment: Fulfillment::ReshareDone {
                        verdict_digest: [0; 32],
                    },
                },
            ),
        ),
    ];
    // CheckTx refuses the replay of an executed transaction.
    assert_eq!(net.m.chain.submit(replay).code, 4);
    let (h, _) = net.block(bad.iter().map(|(_, tx)| tx.clone()).collect());
    let codes: Vec<u32> = net
        .m
        .chain
        .tx_results(h)
        .unwrap()
        .iter()
        .map(|r| r.code)
        .collect();
    let expected: Vec<u32> = bad.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, expected, "execution refuses each");
    // Nothing but nonces and base fees changed: no request, no ACL entry, the same config.
    assert!(net
        .m
        .chain
        .query("store", keys::request(&keygen.request_id()), 0, false)
        .value
        .is_empty());
    assert!(net
        .m
        .chain
        .query("store", keys::acl("app", &[1; 32], &[2; 20]), 0, false)
        .value
        .is_empty());
    assert_eq!(
        net.m
            .chain
            .query("store", keys::CONFIG.to_vec(), 0, false)
            .value,
        config_before
    );
    // Every failed transaction consumed its nonce and the client paid the base fee for each of
    // its four.
    let tx_base = setup.genesis.app_config.fees.tx_base;
    assert_eq!(
        balance(&net, &client.address()),
        client_before - 4 * tx_base
    );
    assert_eq!(nonce(&net, &client.address()), 5);
    assert_eq!(nonce(&net, &setup.admin.address()), 4);
    assert_eq!(nonce(&net, &setup.parties[0].address()), 1);
    // Malformed bytes are refused by CheckTx with code 1, forged signatures too.
    assert_eq!(net.m.chain.submit(b"\x00garbage".to_vec()).code, 1);
    // A tampered signature cannot act for the client: it is refused or recovers another account.
    let mut forged = client.tx_with_nonce(CHAIN, 5, Msg::Faucet { amount: 1 });
    let n = forged.len();
    forged[n - 3] ^= 1;
    match kms_chain_types::tx::decode_tx(&forged, CHAIN) {
        Ok(v) => assert_ne!(v.sender, client.address()),
        Err(e) => assert!(matches!(
            e,
            kms_chain_types::tx::TxDecodeError::BadSignature(_)
        )),
    }
    assert_eq!(
        net.m
            .chain
            .submit(kms_chain_types::tx::sign_tx(
                client.key(),
                "other-chain",
                5,
                Msg::Faucet { amount: 1 }
            ))
            .code,
        3
    );
}

fn nonce(net: &Net, addr: &[u8; 20]) -> u64 {
    let q = net.m.chain.query("store", keys::account(addr), 0, false);
    codec::decode::<kms_chain_types::state::Account>(&q.value)
        .unwrap()
        .nonce
}

fn balance(net: &Net, addr: &[u8; 20]) -> u128 {
    let q = net.m.chain.query("store", keys::account(addr), 0, false);
    if q.value.is_empty() {
        return 0;
    }
    codec::decode::<kms_chain_types::state::Account>(&q.value)
        .unwrap()
        .balance
}

fn proof_ops(
    q: &tendermint_proto::v0_38::abci::ResponseQuery,
) -> tendermint::merkle::proof::ProofOps {
    tendermint::merkle::proof::ProofOps::try_from(q.proof_ops.clone().unwrap()).unwrap()
}

fn sha2_256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
