//! The request table stays bounded (issue 9, hole 7): finished decryptions leave memory once
//! stored, and a repeated or late request still gets the very same signed answer, also after a
//! restart; too many requests at once are refused as busy, not queued without bound.

use kms_engine::tfhe::prelude::*;
use kms_engine::{decode_private_key, serialize_public, CentralizedEngine};
use kms_server::dev::PlaintextSealer;
use kms_server::{Core, CoreError, Output, RequestKind};
use kms_storage::FileStorage;
use kms_types::{
    DataType, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRequest, Sealer, Storage,
    StorageKey, TypedCiphertext,
};
use std::sync::Arc;
use std::time::Duration;

async fn core(dir: &std::path::Path, max_pending: usize, max_finished: usize) -> Arc<Core> {
    let storage = Arc::new(FileStorage::new(dir).unwrap());
    let engine = CentralizedEngine::new(
        kms_eip712::SigningKey::from_bytes(&[7u8; 32]).unwrap(),
        kms_eip712::DomainConfig::default(),
    );
    Core::start_with_limits(
        Arc::new(engine),
        storage.clone(),
        storage,
        Arc::new(PlaintextSealer::new()),
        1,
        max_pending,
        max_finished,
    )
    .await
    .unwrap()
}

async fn wait(core: &Core, id: &kms_types::RequestId, kind: RequestKind) -> Arc<Output> {
    for _ in 0..600 {
        match core.result(id, kind).await {
            Err(CoreError::Pending(..)) => tokio::time::sleep(Duration::from_millis(50)).await,
            r => return r.unwrap(),
        }
    }
    panic!("request {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_decryptions_leave_memory_and_come_back_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let c = core(dir.path(), 8, 1).await;
    let key_id = c
        .keygen(KeyGenRequest {
            params: ParamSetName::TestInsecure,
            label: "table".into(),
        })
        .unwrap();
    wait(&c, &key_id, RequestKind::KeyGen).await;
    // The client key, read back as the core sealed it (developer sealer: plaintext).
    let key = StorageKey::private(DataType::FheKeyInfo, key_id);
    let sealed = FileStorage::new(dir.path())
        .unwrap()
        .get(&key)
        .await
        .unwrap()
        .unwrap();
    let blob = PlaintextSealer::new()
        .unseal(&key.path(), &sealed)
        .await
        .unwrap();
    let (_, ck) = decode_private_key(&blob).unwrap();
    let request = |v: u8| PublicDecryptionRequest {
        key_id,
        ciphertexts: vec![TypedCiphertext {
            fhe_type: FheType::Uint8,
            bytes: serialize_public(&kms_engine::tfhe::FheUint8::encrypt(v, &ck)).unwrap(),
        }],
    };
    let (a, b) = (request(11), request(22));
    let id_a = c.public_decrypt(a.clone()).await.unwrap();
    let first = wait(&c, &id_a, RequestKind::PublicDecrypt).await;
    // The second decryption pushes the first out of memory (bound: one finished decryption).
    let id_b = c.public_decrypt(b).await.unwrap();
    wait(&c, &id_b, RequestKind::PublicDecrypt).await;
    let again = wait(&c, &id_a, RequestKind::PublicDecrypt).await;
    let (Output::PublicDecrypt(x), Output::PublicDecrypt(y)) = (first.as_ref(), again.as_ref())
    else {
        panic!("not public decryptions");
    };
    assert_eq!(x, y, "the stored result is the one first returned");
    assert_eq!(x.plaintexts[0].as_u128(), Some(11));
    // A repeat of the evicted request is a duplicate, not a new job.
    assert_eq!(c.public_decrypt(a).await.unwrap(), id_a);
    drop(c);

    // After a restart the result is still the same signed answer.
    let c = core(dir.path(), 8, 1).await;
    let restored = wait(&c, &id_a, RequestKind::PublicDecrypt).await;
    let Output::PublicDecrypt(z) = restored.as_ref() else {
        panic!("not a public decryption");
    };
    assert_eq!(x, z);
    assert_eq!(z.request_id, id_a);
    assert!(z
        .verify(&kms_eip712::DomainConfig::default(), &x.signer)
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_running_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = core(dir.path(), 1, 16).await;
    c.keygen(KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "busy-1".into(),
    })
    .unwrap();
    let second = c.keygen(KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "busy-2".into(),
    });
    assert_eq!(second, Err(CoreError::Busy));
}
