//! Every supported type, with extreme values, on the small insecure test parameters (the protocol
//! is under test here, not the parameter size): the engine's decryption equals tfhe-rs's own.

use kms_cli::devserver::PublicStore;
use kms_client::{encrypt_value, ClearValue, KmsClient};
use kms_e2e_tests::{dev_client_key, dev_server};
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::tfhe::prelude::*;
use kms_engine::tfhe::{self, integer::I256, integer::U256};
use kms_engine::{generate_key_set, serialize_public, Backend, CentralizedEngine, Plaintext};
use kms_types::{FheType, ParamSetName, PublicDecryptionRequest, RequestId, TypedCiphertext};

fn word_u(v: U256) -> [u8; 32] {
    let mut w = [0u8; 32];
    v.copy_to_be_byte_slice(&mut w);
    w
}
fn word_i(v: I256) -> [u8; 32] {
    let mut w = [0u8; 32];
    v.copy_to_be_byte_slice(&mut w);
    w
}

/// Encrypts with the client key and returns (ciphertext, tfhe-rs's own decryption as a word).
fn enc(ck: &tfhe::ClientKey, t: FheType, v: i128) -> (TypedCiphertext, [u8; 32]) {
    macro_rules! u {
        ($ty:ty, $clear:ty) => {{
            let ct = <$ty>::encrypt(v as $clear, ck);
            let d: U256 = ct.decrypt(ck);
            (serialize_public(&ct).unwrap(), word_u(d))
        }};
    }
    macro_rules! uw {
        ($ty:ty) => {{
            let ct = <$ty>::encrypt(U256::from((v as u128, 0u128)), ck);
            let d: U256 = ct.decrypt(ck);
            (serialize_public(&ct).unwrap(), word_u(d))
        }};
    }
    macro_rules! i {
        ($ty:ty, $clear:ty) => {{
            let ct = <$ty>::encrypt(v as $clear, ck);
            let d: I256 = ct.decrypt(ck);
            (serialize_public(&ct).unwrap(), word_i(d))
        }};
    }
    macro_rules! iw {
        ($ty:ty) => {{
            let hi = if v < 0 { u128::MAX } else { 0 };
            let ct = <$ty>::encrypt(I256::from((v as u128, hi)), ck);
            let d: I256 = ct.decrypt(ck);
            (serialize_public(&ct).unwrap(), word_i(d))
        }};
    }
    let (bytes, word) = match t {
        FheType::Bool => {
            let ct = tfhe::FheBool::encrypt(v != 0, ck);
            let d: bool = ct.decrypt(ck);
            let mut w = [0u8; 32];
            w[31] = d as u8;
            (serialize_public(&ct).unwrap(), w)
        }
        FheType::Uint4 => u!(tfhe::FheUint4, u8),
        FheType::Uint8 => u!(tfhe::FheUint8, u8),
        FheType::Uint16 => u!(tfhe::FheUint16, u16),
        FheType::Uint32 => u!(tfhe::FheUint32, u32),
        FheType::Uint64 => u!(tfhe::FheUint64, u64),
        FheType::Uint128 => u!(tfhe::FheUint128, u128),
        FheType::Uint160 => uw!(tfhe::FheUint160),
        FheType::Uint256 => uw!(tfhe::FheUint256),
        FheType::Int8 => i!(tfhe::FheInt8, i8),
        FheType::Int16 => i!(tfhe::FheInt16, i16),
        FheType::Int32 => i!(tfhe::FheInt32, i32),
        FheType::Int64 => i!(tfhe::FheInt64, i64),
        FheType::Int128 => i!(tfhe::FheInt128, i128),
        FheType::Int160 => iw!(tfhe::FheInt160),
        FheType::Int256 => iw!(tfhe::FheInt256),
    };
    (TypedCiphertext { fhe_type: t, bytes }, word)
}

fn cases() -> Vec<(FheType, i128)> {
    let mut v = vec![
        (FheType::Bool, 0),
        (FheType::Bool, 1),
        (FheType::Uint4, 15),
        (FheType::Uint4, 0),
    ];
    for t in [
        FheType::Uint8,
        FheType::Uint16,
        FheType::Uint32,
        FheType::Uint64,
    ] {
        v.push((t, (1i128 << t.bits()) - 1));
        v.push((t, 0x5a));
    }
    v.push((FheType::Uint128, u128::MAX as i128)); // bit pattern of u128::MAX
    v.push((FheType::Uint160, i128::MAX));
    v.push((FheType::Uint256, 123_456_789_012_345_678));
    for t in [
        FheType::Int8,
        FheType::Int16,
        FheType::Int32,
        FheType::Int64,
    ] {
        v.push((t, -(1i128 << (t.bits() - 1))));
        v.push((t, (1i128 << (t.bits() - 1)) - 1));
    }
    v.push((FheType::Int128, i128::MIN));
    v.push((FheType::Int160, -1));
    v.push((FheType::Int256, -987_654_321));
    v
}

#[test]
fn engine_decrypts_every_type_like_tfhe() {
    let key_id = RequestId::derive("test", b"all types");
    let ks = generate_key_set(ParamSetName::TestInsecure, &key_id, &mut |_| {});
    let engine = CentralizedEngine::new(
        SigningKey::random(&mut rand_core::OsRng),
        DomainConfig::default(),
    );
    let blob = kms_engine::encode_private_key(ParamSetName::TestInsecure, &ks.client_key).unwrap();
    engine.load_key(key_id, &blob.0).unwrap();
    let (cts, truth): (Vec<_>, Vec<_>) = cases()
        .into_iter()
        .map(|(t, v)| enc(&ks.client_key, t, v))
        .unzip();
    let req = PublicDecryptionRequest {
        key_id,
        ciphertexts: cts,
    };
    let res = engine.public_decrypt(&req).unwrap();
    for ((p, w), (t, v)) in res.plaintexts.iter().zip(&truth).zip(cases()) {
        assert_eq!(&p.word, w, "{t} {v}");
        assert_eq!(p.fhe_type, t);
    }
    res.verify(&DomainConfig::default(), &engine.signer_address())
        .unwrap();
    // Spot-check the word encoding itself against the clear values.
    let dec: Vec<String> = res.plaintexts.iter().map(Plaintext::to_decimal).collect();
    assert_eq!(dec[0], "false");
    assert_eq!(dec[1], "true");
    assert!(dec.contains(&"-170141183460469231731687303715884105728".to_string()));
    assert!(dec.contains(&"340282366920938463463374607431768211455".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_round_trip_on_test_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), PublicStore::File).await;
    let mut client = KmsClient::connect(&server.endpoint(), None).await.unwrap();
    let kg = client
        .keygen(ParamSetName::TestInsecure, "fast", |_| {})
        .await
        .unwrap();
    let pk = client.fetch_public_key(&kg.key_id).await.unwrap();
    let sk = client.fetch_server_key(&kg.key_id).await.unwrap();
    tfhe::set_server_key(sk.decompress());
    let ck = dev_client_key(dir.path(), &kg.key_id).await;
    let mut cts = Vec::new();
    let mut truth = Vec::new();
    for (t, v) in cases() {
        let clear = if t == FheType::Bool {
            ClearValue::Bool(v != 0)
        } else if t.is_signed() {
            ClearValue::Signed(v)
        } else {
            ClearValue::Unsigned(v as u128)
        };
        let ct = encrypt_value(&pk.public_key, t, clear).unwrap();
        cts.push(ct);
        truth.push(enc(&ck, t, v).1);
    }
    let public = client.public_decrypt(kg.key_id, cts.clone()).await.unwrap();
    let user = client.user_decrypt(kg.key_id, cts).await.unwrap();
    for ((p, u), w) in public.plaintexts.iter().zip(&user).zip(&truth) {
        assert_eq!(&p.word, w, "{}", p.fhe_type);
        assert_eq!(&u.word, w, "{}", u.fhe_type);
    }
    // Bad CRS and keygen requests are refused at once.
    for (params, bits) in [
        ("test-insecure", 0),
        ("test-insecure", 1 << 20),
        ("bogus", 64),
    ] {
        let e = client
            .rpc()
            .crs_gen(kms_grpc::v1::CrsGenRequest {
                request_id: Some(kms_grpc::v1::RequestId {
                    value: "33".repeat(20),
                }),
                params: params.into(),
                max_num_bits: bits,
                label: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{params} {bits}");
    }
    let e = client
        .rpc()
        .key_gen(kms_grpc::v1::KeyGenRequest {
            request_id: Some(kms_grpc::v1::RequestId {
                value: RequestId::derive("another", b"request").to_string(),
            }),
            params: "default".into(),
            label: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    server.stop().await;
}

#[test]
fn threshold_decrypts_every_type_like_tfhe() {
    // n = 4, t = 1: every party squashes and sends flooded partials; party 2 sends random shares
    // for public decryption and a forged envelope for user decryption. Every honest combination
    // equals tfhe-rs's own decryption, for every type and its extreme values.
    use kms_algebra::prss::{deal_keys, Prss};
    use kms_signcryption::ClientKeyPair;
    use kms_threshold::{
        combine, deal_insecure, partial_decrypt, squash, user_combine, user_share,
        DecryptionSession, FloodingParams, Share, UserShareResponse,
    };
    let rng = &mut rand_core::OsRng;
    let key_id = RequestId::derive("threshold", b"all types");
    let ks = generate_key_set(ParamSetName::TestInsecure, &key_id, &mut |_| {});
    tfhe::set_server_key(ks.server_key.decompress());
    let (n, t) = (4, 1);
    let keys = deal_insecure(&ks.client_key, key_id, n, t, rng).unwrap();
    let prss_keys = deal_keys(n, t, rng);
    let prss: Vec<Prss<u128, 4>> = (1..=n)
        .map(|p| Prss::new(p, n, t, &prss_keys).unwrap())
        .collect();
    let fp = FloodingParams::new(n, t, keys[0].message_modulus, keys[0].carry_modulus).unwrap();
    let (cts, truth): (Vec<_>, Vec<_>) = cases()
        .into_iter()
        .map(|(ty, v)| enc(&ks.client_key, ty, v))
        .unzip();
    let squashed: Vec<_> = cts
        .iter()
        .map(|c| squash(c, ParamSetName::TestInsecure).unwrap())
        .collect();
    for (i, (sq, want)) in squashed.iter().zip(&truth).enumerate() {
        let sid = DecryptionSession {
            kind: DecryptionSession::PUBLIC,
            key_id,
            request_id: RequestId::derive("all-types", &[i as u8]),
            index: i,
            ciphertext_digest: cts[i].digest(),
        };
        let received: Vec<Option<Vec<Share>>> = (0..n)
            .map(|p| {
                let honest = partial_decrypt(&keys[p], &prss[p], &fp, &sid, sq).unwrap();
                Some(if p == 1 {
                    honest.iter().map(|_| Share::random(rng)).collect()
                } else {
                    honest
                })
            })
            .collect();
        let (pt, cheaters) = combine(&received, &fp, &sq.layout()).unwrap();
        assert_eq!(&pt.word, want, "{}", cts[i].fhe_type);
        assert_eq!(pt.fhe_type, cts[i].fhe_type);
        assert_eq!(cheaters, vec![2]);
    }

    // User decryption of all of them in one request.
    let domain = DomainConfig::default();
    let client = ClientKeyPair::generate(rng);
    let request = RequestId::derive("user", b"all types");
    let signers: Vec<SigningKey> = (0..n).map(|_| SigningKey::random(rng)).collect();
    let data: Vec<([u8; 32], _)> = cts
        .iter()
        .zip(&squashed)
        .map(|(c, s)| (c.digest(), s.clone()))
        .collect();
    let responses: Vec<UserShareResponse> = (0..n)
        .map(|p| {
            let forger = SigningKey::random(rng);
            let signer = if p == 1 { &forger } else { &signers[p] };
            let resp = user_share(
                &keys[p],
                &prss[p],
                &fp,
                signer,
                &domain,
                request,
                key_id,
                &data,
                client.public(),
                rng,
            )
            .unwrap();
            UserShareResponse {
                party: p + 1,
                signer: signers[p].address(),
                response: Some(resp),
            }
        })
        .collect();
    let meta: Vec<(FheType, [u8; 32])> = cts.iter().map(|c| (c.fhe_type, c.digest())).collect();
    let out = user_combine(&client, &domain, &request, &key_id, &meta, &responses, &fp).unwrap();
    assert_eq!(out.rejected, vec![2]);
    for ((p, want), c) in out.plaintexts.iter().zip(&truth).zip(&cts) {
        assert_eq!(&p.word, want, "{}", c.fhe_type);
    }
}
