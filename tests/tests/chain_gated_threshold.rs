//! The chain and the threshold engine together, in one process: requests go through the ASC on a
//! 4-validator devnet; each of the n = 4 parties acts only on a request its own light client
//! verified (from genesis, with an ICS23 proof of the ASC's record) and whose ciphertext digests
//! match the bytes it was handed; the parties decrypt by noise flooding over an in-process
//! network, each signs the result with its registered key, and their fulfillments complete the
//! request on chain. Party 3 lies with a validly signed wrong result: it never wins.

use kms_algebra::prss::{deal_keys, Prss};
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus};
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::tfhe::prelude::*;
use kms_engine::tfhe::{self};
use kms_engine::{generate_key_set, serialize_public};
use kms_light_client::{verify_request_approved, LightClient, Options};
use kms_threshold::{deal_insecure, FloodingParams, ThresholdParty};
use kms_transport::InProcessNetwork;
use kms_types::{
    sha3_256, CanonicalRequest, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRequest,
    TypedCiphertext,
};
use std::time::Duration;
use tendermint::Time;

const CHAIN: &str = "kms-gated";

fn blk(net: &mut ManualChain, txs: Vec<Vec<u8>>) -> (u64, Vec<u32>) {
    net.block(txs).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_gated_threshold_decryption_completes_on_chain() {
    let genesis_time = Time::parse_from_rfc3339("2026-11-24T00:00:00Z").unwrap();
    let mut setup = DevSetup::new(CHAIN, 4, 1, 4, genesis_time);
    let domain: DomainConfig = setup.genesis.app_config.eip712_domain.clone();
    let genesis_config = setup.genesis.app_config.clone();
    let mut net = ManualChain::new(setup.genesis.clone()).unwrap();
    let genesis_validators = net.chain.validators().clone();
    blk(&mut net, vec![]);
    let mut client = Wallet::random();

    // Keygen through the ASC (the dealer stands in for the DKG).
    let keygen = KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "gated".into(),
    };
    let key_id = keygen.request_id();
    let ks = generate_key_set(ParamSetName::TestInsecure, &key_id, &mut |_| {});
    tfhe::set_server_key(ks.server_key.decompress());
    let pk_bytes = serialize_public(&ks.public_key).unwrap();
    let (_, codes) = blk(
        &mut net,
        vec![
            setup.admin.tx(CHAIN, Msg::Faucet { amount: 100_000 }),
            client.tx(CHAIN, Msg::Faucet { amount: 100_000 }),
            // Applications are registered by governance; the client administers this one's ACL.
            setup.admin.tx(
                CHAIN,
                Msg::CreateApplication {
                    app_id: "dapp".into(),
                    admin: client.address(),
                },
            ),
        ],
    );
    assert_eq!(codes, vec![0, 0, 0]);
    let (_, codes) = blk(
        &mut net,
        vec![setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "dapp".into(),
                request: KmsRequest::KeyGen(keygen),
            },
        )],
    );
    assert_eq!(codes, vec![0]);
    let material = |w: &Wallet| {
        let item =
            MaterialItem::signed(w.key(), &domain, &key_id, "PublicKey", sha3_256(&pk_bytes));
        Fulfillment::Material {
            items: vec![item.unwrap()],
        }
    };
    let txs = setup.parties[..2]
        .iter_mut()
        .map(|p| {
            let f = material(p);
            p.tx(
                CHAIN,
                Msg::Fulfill {
                    request_id: key_id,
                    fulfillment: f,
                },
            )
        })
        .collect();
    assert_eq!(blk(&mut net, txs).1, vec![0, 0]);

    // The client's ciphertexts and its public-decryption request.
    let cts = vec![
        TypedCiphertext {
            fhe_type: FheType::Uint16,
            bytes: serialize_public(&tfhe::FheUint16::encrypt(31337u16, &ks.client_key)).unwrap(),
        },
        TypedCiphertext {
            fhe_type: FheType::Int8,
            bytes: serialize_public(&tfhe::FheInt8::encrypt(-7i8, &ks.client_key)).unwrap(),
        },
    ];
    let full = PublicDecryptionRequest {
        key_id,
        ciphertexts: cts.clone(),
    };
    let on_chain = full.to_ref();
    let request_id = full.request_id();
    let (_, codes) = blk(
        &mut net,
        vec![client.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: "dapp".into(),
                handles: on_chain.ciphertexts.iter().map(|c| c.digest).collect(),
                addresses: vec![client.address()],
            },
        )],
    );
    assert_eq!(codes, vec![0]);
    let (h_req, codes) = blk(
        &mut net,
        vec![client.tx(
            CHAIN,
            Msg::Request {
                app_id: "dapp".into(),
                request: KmsRequest::PublicDecrypt(on_chain),
            },
        )],
    );
    assert_eq!(codes, vec![0]);
    blk(&mut net, vec![]);

    // Each party's enclave: verify the request by itself, then decrypt.
    let now = (net.clock + Duration::from_secs(1)).unwrap();
    let options = Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(3600),
        clock_drift: Duration::from_secs(5),
    };
    let q = net
        .chain
        .query("store", keys::request(&request_id), h_req as i64, true);
    let ops = tendermint::merkle::proof::ProofOps::try_from(q.proof_ops.clone().unwrap()).unwrap();
    let first = net.chain.light_block(1).unwrap();
    let header = net.chain.light_block(h_req + 1).unwrap();
    let (n, t) = (4, 1);
    let shares = deal_insecure(&ks.client_key, key_id, n, t, &mut rand_core::OsRng).unwrap();
    let prss_keys = deal_keys(n, t, &mut rand_core::OsRng);
    let network = InProcessNetwork::new(n);
    let mut tasks = Vec::new();
    for (i, share) in shares.into_iter().enumerate() {
        let party = i + 1;
        let signer = SigningKey::from_bytes(&setup.parties[i].key().to_bytes()).unwrap();
        let flooding = FloodingParams::for_param_set(
            ParamSetName::TestInsecure,
            n,
            t,
            share.message_modulus,
            share.carry_modulus,
        )
        .unwrap();
        let me = ThresholdParty {
            prss: Prss::new(party, n, t, &prss_keys).unwrap(),
            key: kms_threshold::HeldKey::new(Default::default(), share),
            flooding,
            params: ParamSetName::TestInsecure,
            signer,
            domain: domain.clone(),
            served: kms_threshold::ServedLog::in_memory(),
        };
        let (first, header, value, ops, gv, cts) = (
            first.clone(),
            header.clone(),
            q.value.clone(),
            ops.clone(),
            genesis_validators.clone(),
            cts.clone(),
        );
        let transport = network.party(party);
        let server_key = ks.server_key.clone();
        tasks.push(tokio::spawn(async move {
            tfhe::set_server_key(server_key.decompress());
            let (mut lc, _) =
                LightClient::from_genesis(CHAIN, 1, &gv, first, options, now).unwrap();
            let verified = lc.update(header, now).unwrap();
            let approved = verify_request_approved(&verified, &request_id, &value, &ops).unwrap();
            // The ciphertexts handed over by the (untrusted) host must be the approved ones.
            let KmsRequest::PublicDecrypt(r) = &approved.record.request else {
                panic!("kind")
            };
            let handed: Vec<_> = cts.iter().map(TypedCiphertext::to_ref).collect();
            assert_eq!(r.ciphertexts, handed);
            me.public_decrypt(
                &transport,
                request_id,
                r.key_id,
                approved.record.key_epoch,
                &cts,
                Duration::from_secs(5),
            )
            .await
            .unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    // tfhe-rs's own decryption is the truth.
    let v16: u16 = tfhe::safe_serialization::safe_deserialize::<tfhe::FheUint16>(
        cts[0].bytes.as_slice(),
        1 << 30,
    )
    .unwrap()
    .decrypt(&ks.client_key);
    let v8: i8 = tfhe::safe_serialization::safe_deserialize::<tfhe::FheInt8>(
        cts[1].bytes.as_slice(),
        1 << 30,
    )
    .unwrap()
    .decrypt(&ks.client_key);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.signed.plaintexts[0].as_u128(), Some(u128::from(v16)));
        assert_eq!(r.signed.plaintexts[1].as_i128(), Some(i128::from(v8)));
        // Against the address the config contract registered for this party, not the signer
        // the result names.
        let registered = genesis_config.parties[i].signer;
        assert_eq!(registered, setup.parties[i].address());
        r.signed.verify(&domain, &registered).unwrap();
    }

    // Fulfillments: party 3 lies (validly signed wrong words), parties 1 and 2 tell the truth.
    let words = |r: &kms_threshold::PartyDecryption| -> Vec<u8> {
        r.signed.plaintexts.iter().flat_map(|p| p.word).collect()
    };
    let mut lie = words(&results[2]);
    lie[31] ^= 1;
    let lie_sig = {
        let mut pts = results[2].signed.plaintexts.clone();
        pts[0].word[31] ^= 1;
        let v = kms_engine::public_decryption_struct(
            &request_id,
            &key_id,
            &results[2].signed.ciphertext_digests,
            &pts,
        );
        setup.parties[2].key().sign(&domain, &v).unwrap()
    };
    let f3 = Fulfillment::PublicDecryption {
        plaintexts: lie,
        signature: lie_sig.0.to_vec(),
    };
    let (_, codes) = blk(
        &mut net,
        vec![setup.parties[2].tx(
            CHAIN,
            Msg::Fulfill {
                request_id,
                fulfillment: f3,
            },
        )],
    );
    assert_eq!(codes, vec![0]);
    let record = |net: &ManualChain| -> RequestRecord {
        codec::decode(
            &net.chain
                .query("store", keys::request(&request_id), 0, false)
                .value,
        )
        .unwrap()
    };
    assert_eq!(record(&net).status, RequestStatus::Pending);
    let mut txs = Vec::new();
    for i in [0usize, 1] {
        let f = Fulfillment::PublicDecryption {
            plaintexts: words(&results[i]),
            signature: results[i].signed.signature.0.to_vec(),
        };
        txs.push(setup.parties[i].tx(
            CHAIN,
            Msg::Fulfill {
                request_id,
                fulfillment: f,
            },
        ));
    }
    assert_eq!(blk(&mut net, txs).1, vec![0, 0]);
    match record(&net).status {
        RequestStatus::Completed { result_digest, .. } => {
            assert_eq!(result_digest, sha3_256(&words(&results[0])));
        }
        s => panic!("not complete: {s:?}"),
    }
}
