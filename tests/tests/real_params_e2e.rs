//! Real parameters, end to end through gRPC: keygen, verified public material, encryption with
//! the compact public key, public and user decryption compared with tfhe-rs's own decryption,
//! CRS with a proven encryption, tampering, bad input, idempotency, conflicts and restart.

use kms_cli::devserver::PublicStore;
use kms_client::{encrypt_value, ClearValue, ClientError, KmsClient};
use kms_e2e_tests::{dev_client_key, dev_server};
use kms_engine::tfhe::prelude::*;
use kms_engine::tfhe::zk::{ZkComputeLoad, ZkVerificationOutcome};
use kms_engine::tfhe::{self, ClientKey, FheBool, FheInt8, FheUint256, FheUint64, FheUint8};
use kms_engine::{config_for, serialize_public, MaterialError, Plaintext};
use kms_grpc::v1 as pb;
use kms_types::{
    CanonicalRequest, FheType, KeyGenRequest, ParamSetName, RequestId, TypedCiphertext,
};
use tonic::Code;

/// tfhe-rs's own decryption of a serialized ciphertext, rendered in decimal.
fn tfhe_decrypt(ck: &ClientKey, ct: &TypedCiphertext) -> String {
    let lim = 1 << 30;
    let b = ct.bytes.as_slice();
    use tfhe::safe_serialization::safe_deserialize as de;
    match ct.fhe_type {
        FheType::Bool => de::<FheBool>(b, lim).unwrap().decrypt(ck).to_string(),
        FheType::Uint8 => {
            let v: u8 = de::<FheUint8>(b, lim).unwrap().decrypt(ck);
            v.to_string()
        }
        FheType::Uint64 => {
            let v: u64 = de::<FheUint64>(b, lim).unwrap().decrypt(ck);
            v.to_string()
        }
        FheType::Int8 => {
            let v: i8 = de::<FheInt8>(b, lim).unwrap().decrypt(ck);
            v.to_string()
        }
        FheType::Uint256 => {
            let v: tfhe::integer::U256 = de::<FheUint256>(b, lim).unwrap().decrypt(ck);
            let mut w = [0u8; 32];
            v.copy_to_be_byte_slice(&mut w);
            Plaintext {
                fhe_type: FheType::Uint256,
                word: w,
            }
            .to_decimal()
        }
        t => panic!("not used here: {t}"),
    }
}

fn code(e: ClientError) -> (Code, String) {
    match e {
        ClientError::Rpc(s) => (s.code(), s.message().to_string()),
        other => panic!("expected an RPC status, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_parameters_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), PublicStore::File).await;
    let mut client = KmsClient::connect(&server.endpoint(), None).await.unwrap();

    // --- key generation, idempotency, conflict ---------------------------------------------
    let mut stages = Vec::new();
    let kg = client
        .keygen(ParamSetName::Default, "e2e", |m| stages.push(m.to_string()))
        .await
        .unwrap();
    assert!(!stages.is_empty(), "keygen reports progress while it runs");
    let again = client
        .keygen(ParamSetName::Default, "e2e", |_| {})
        .await
        .unwrap();
    assert_eq!(again.key_id, kg.key_id);
    assert_eq!(
        again.handles, kg.handles,
        "repeating a request is idempotent"
    );
    let conflict = client
        .rpc()
        .key_gen(pb::KeyGenRequest {
            request_id: Some(pb::RequestId {
                value: kg.key_id.to_string(),
            }),
            params: "default".into(),
            label: "another label".into(),
        })
        .await
        .unwrap_err();
    // The key's ID names another request: refused before anything runs (the ID is derived).
    assert_eq!(conflict.code(), Code::InvalidArgument);
    assert!(conflict.message().contains("is not the ID of this request"));
    let bad_id = client
        .rpc()
        .get_key_gen_result(pb::RequestId {
            value: kg.key_id.to_string().to_uppercase(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_id.code(), Code::InvalidArgument);
    let unknown = client
        .rpc()
        .get_key_gen_result(pb::RequestId {
            value: "00".repeat(20),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // --- public material, encryption --------------------------------------------------------
    let pk = client.fetch_public_key(&kg.key_id).await.unwrap();
    let sk = client.fetch_server_key(&kg.key_id).await.unwrap();
    tfhe::set_server_key(sk.decompress());
    let inputs = [
        (FheType::Bool, ClearValue::Bool(true)),
        (FheType::Bool, ClearValue::Bool(false)),
        (FheType::Uint8, ClearValue::Unsigned(0)),
        (FheType::Uint8, ClearValue::Unsigned(255)),
        (FheType::Uint64, ClearValue::Unsigned(u64::MAX as u128)),
        (FheType::Uint64, ClearValue::Unsigned(0x0123_4567_89ab_cdef)),
        (FheType::Int8, ClearValue::Signed(-128)),
        (FheType::Uint256, ClearValue::Unsigned(u128::MAX)),
    ];
    let cts: Vec<TypedCiphertext> = inputs
        .iter()
        .map(|(t, v)| encrypt_value(&pk.public_key, *t, *v).unwrap())
        .collect();

    // --- decryption vs tfhe-rs --------------------------------------------------------------
    let ck = dev_client_key(dir.path(), &kg.key_id).await;
    let truth: Vec<String> = cts.iter().map(|c| tfhe_decrypt(&ck, c)).collect();
    let expected: Vec<String> = inputs
        .iter()
        .map(|(_, v)| match v {
            ClearValue::Bool(b) => b.to_string(),
            ClearValue::Unsigned(u) => u.to_string(),
            ClearValue::Signed(s) => s.to_string(),
        })
        .collect();
    assert_eq!(truth, expected, "tfhe-rs decrypts what was encrypted");

    let public = client.public_decrypt(kg.key_id, cts.clone()).await.unwrap();
    let public_vals: Vec<String> = public
        .plaintexts
        .iter()
        .map(Plaintext::to_decimal)
        .collect();
    assert_eq!(
        public_vals, truth,
        "public decryption equals tfhe-rs decryption"
    );
    let user = client.user_decrypt(kg.key_id, cts.clone()).await.unwrap();
    let user_vals: Vec<String> = user.iter().map(Plaintext::to_decimal).collect();
    assert_eq!(
        user_vals, truth,
        "user decryption equals tfhe-rs decryption"
    );

    // Idempotent decryption: same request, same signed result.
    let public2 = client.public_decrypt(kg.key_id, cts.clone()).await.unwrap();
    assert_eq!(public2, public);

    // --- bad input ---------------------------------------------------------------------------
    let good = cts[2].clone(); // FheUint8
    let mut truncated = good.clone();
    truncated.bytes.truncate(good.bytes.len() / 2);
    let garbage = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: (0..4000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    };
    let empty = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: vec![],
    };
    let wrong_type = TypedCiphertext {
        fhe_type: FheType::Uint64,
        bytes: good.bytes.clone(),
    };
    let mut other_ck = ClientKey::generate(config_for(ParamSetName::Default));
    other_ck
        .tag_mut()
        .set_data(RequestId::derive("other", b"key").as_bytes());
    let other_key = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: serialize_public(&FheUint8::encrypt(9u8, &other_ck)).unwrap(),
    };
    let untagged_ck = ClientKey::generate(config_for(ParamSetName::Default));
    let untagged = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: serialize_public(&FheUint8::encrypt(9u8, &untagged_ck)).unwrap(),
    };
    for (name, ct, needle) in [
        ("truncated", truncated, "not a valid FheUint8"),
        ("garbage", garbage, "not a valid FheUint8"),
        ("empty", empty, "not a valid FheUint8"),
        ("wrong type", wrong_type, "not a valid FheUint64"),
        ("another key", other_key, "encrypted under another key"),
        ("untagged key", untagged, "encrypted under another key"),
    ] {
        let e = client
            .public_decrypt(kg.key_id, vec![ct.clone()])
            .await
            .unwrap_err();
        let (c, msg) = code(e);
        assert_eq!(c, Code::InvalidArgument, "{name}: {msg}");
        assert!(msg.contains(needle), "{name}: {msg}");
        let e = client.user_decrypt(kg.key_id, vec![ct]).await.unwrap_err();
        assert_eq!(code(e).0, Code::InvalidArgument, "{name} (user decryption)");
    }
    let unknown_key = RequestId::derive("no", b"such key");
    let (c, _) = code(
        client
            .public_decrypt(unknown_key, vec![good.clone()])
            .await
            .unwrap_err(),
    );
    assert_eq!(c, Code::NotFound);
    let (c, _) = code(client.public_decrypt(kg.key_id, vec![]).await.unwrap_err());
    assert_eq!(c, Code::InvalidArgument);
    let bad_fhe_type = client
        .rpc()
        .public_decrypt(pb::PublicDecryptionRequest {
            request_id: Some(pb::RequestId {
                value: "11".repeat(20),
            }),
            key_id: Some(pb::RequestId {
                value: kg.key_id.to_string(),
            }),
            ciphertexts: vec![pb::TypedCiphertext {
                fhe_type: 99,
                ciphertext: good.bytes.clone(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fhe_type.code(), Code::InvalidArgument);
    let bad_client_key = client
        .rpc()
        .user_decrypt(pb::UserDecryptionRequest {
            request_id: Some(pb::RequestId {
                value: "22".repeat(20),
            }),
            key_id: Some(pb::RequestId {
                value: kg.key_id.to_string(),
            }),
            ciphertexts: vec![pb::TypedCiphertext {
                fhe_type: 2,
                ciphertext: good.bytes.clone(),
            }],
            client_encryption_key: vec![0xff; 800],
        })
        .await
        .unwrap_err();
    assert_eq!(bad_client_key.code(), Code::InvalidArgument);
    // The KMS keeps serving after all of that.
    let ok = client
        .public_decrypt(kg.key_id, vec![good.clone()])
        .await
        .unwrap();
    assert_eq!(ok.plaintexts[0].to_decimal(), "0");

    // --- CRS and a proven encryption ---------------------------------------------------------
    let (crs_h, _) = client
        .crs_gen(ParamSetName::Default, 64, "e2e")
        .await
        .unwrap();
    let crs = client.fetch_crs(&crs_h).await.unwrap();
    let meta = b"e2e metadata";
    let proven = tfhe::ProvenCompactCiphertextList::builder(&pk.public_key)
        .push(200u8)
        .push(7u64)
        .build_with_proof_packed(&crs, meta, ZkComputeLoad::Proof)
        .unwrap();
    assert!(matches!(
        proven.verify(&crs, &pk.public_key, meta),
        ZkVerificationOutcome::Valid
    ));
    assert!(matches!(
        proven.verify(&crs, &pk.public_key, b"other metadata"),
        ZkVerificationOutcome::Invalid
    ));

    // --- tampered public material -----------------------------------------------------------
    let pk_file = dir
        .path()
        .join("public")
        .join(format!("PUB/PublicKey/{}", kg.key_id));
    let original = std::fs::read(&pk_file).unwrap();
    let mut tampered = original.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x80;
    std::fs::write(&pk_file, &tampered).unwrap();
    match client.fetch_public_key(&kg.key_id).await {
        Err(ClientError::Material(MaterialError::DigestMismatch { .. })) => {}
        Err(e) => panic!("tampered public key rejected for the wrong reason: {e}"),
        Ok(_) => panic!("tampered public key accepted"),
    }
    std::fs::write(&pk_file, &original).unwrap();

    // --- restart: keys, records and the signing key come back --------------------------------
    let pinned = client.trust().clone();
    server.stop().await;
    let server = dev_server(dir.path(), PublicStore::File).await;
    let mut client = KmsClient::connect(&server.endpoint(), Some(pinned))
        .await
        .unwrap();
    let restored = client
        .keygen(ParamSetName::Default, "e2e", |_| {})
        .await
        .unwrap();
    assert_eq!(restored.handles, kg.handles);
    let after = client
        .public_decrypt(kg.key_id, cts[..3].to_vec())
        .await
        .unwrap();
    assert_eq!(
        after
            .plaintexts
            .iter()
            .map(Plaintext::to_decimal)
            .collect::<Vec<_>>(),
        truth[..3].to_vec()
    );
    let req = KeyGenRequest {
        params: ParamSetName::Default,
        label: "e2e".into(),
    };
    assert_eq!(
        req.request_id(),
        kg.key_id,
        "the key ID is the keygen request ID"
    );
    server.stop().await;
}
