//! The S3 backend against a real S3-compatible server (moto), and a KMS publishing to it.

use kms_cli::devserver::PublicStore;
use kms_client::KmsClient;
use kms_e2e_tests::{dev_server, Moto};
use kms_storage::{fetch_uri, S3Storage};
use kms_types::{DataType, ParamSetName, RequestId, Storage, StorageError, StorageKey, Visibility};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_against_moto() {
    let moto = Moto::start();
    let s3 = S3Storage::new(moto.s3("kms-test", "party-1")).await;
    s3.ensure_bucket().await.unwrap();
    s3.ensure_bucket().await.unwrap(); // idempotent
    let a = RequestId::derive("t", b"a");
    let b = RequestId::derive("t", b"b");
    let key_a = StorageKey::public(DataType::Crs, a);
    assert_eq!(s3.get(&key_a).await.unwrap(), None);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    s3.put(&key_a, &big).await.unwrap();
    s3.put(&key_a, &big).await.unwrap(); // same bytes: no-op
    assert!(matches!(
        s3.put(&key_a, b"other").await,
        Err(StorageError::Conflict(_))
    ));
    s3.put(&StorageKey::public(DataType::Crs, b), b"small")
        .await
        .unwrap();
    s3.put(&StorageKey::private(DataType::Crs, b), b"private")
        .await
        .unwrap();
    assert_eq!(
        s3.get(&key_a).await.unwrap().as_deref(),
        Some(big.as_slice())
    );
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(
        s3.list(Visibility::Public, DataType::Crs).await.unwrap(),
        want
    );
    assert_eq!(
        s3.list(Visibility::Private, DataType::Crs).await.unwrap(),
        vec![b]
    );
    assert!(s3
        .list(Visibility::Public, DataType::ServerKey)
        .await
        .unwrap()
        .is_empty());
    let uri = key_a.uri(&s3.base_uri());
    assert!(uri.starts_with("s3://kms-test/party-1/PUB/CRS/"));
    let len = big.len() as u64;
    assert_eq!(
        fetch_uri(&uri, Some(&moto.s3("", "")), len).await.unwrap(),
        big
    );
    // One byte over the reader's bound: refused by the length the real server announces.
    assert!(matches!(
        fetch_uri(&uri, Some(&moto.s3("", "")), len - 1).await,
        Err(StorageError::TooLarge { .. })
    ));
    assert!(
        fetch_uri("s3://kms-test/missing", Some(&moto.s3("", "")), len)
            .await
            .is_err()
    );
    assert!(matches!(
        fetch_uri("http://x/y", None, len).await,
        Err(StorageError::BadUri(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_publishes_to_s3_and_client_verifies() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), PublicStore::S3(moto.s3("kms-public", "dev"))).await;
    let mut client = KmsClient::connect(&server.endpoint(), None)
        .await
        .unwrap()
        .with_s3(moto.s3("", ""));
    let kg = client
        .keygen(ParamSetName::TestInsecure, "s3", |_| {})
        .await
        .unwrap();
    for (h, uri) in &kg.handles {
        assert!(uri.starts_with("s3://kms-public/dev/PUB/"), "{uri}");
        let bytes = client.download(h).await.unwrap();
        assert_eq!(kms_types::sha3_256(&bytes), h.digest);
    }
    client.fetch_public_key(&kg.key_id).await.unwrap();
    // Tamper in the bucket: overwrite through a second client of the same bucket.
    let raw = S3Storage::new(moto.s3("kms-public", "dev")).await;
    let (h, _) = kg
        .handles
        .iter()
        .find(|(h, _)| h.data_type == DataType::PublicKey)
        .unwrap();
    let mut bytes = raw.get(&h.storage_key()).await.unwrap().unwrap();
    bytes[100] ^= 1;
    // Storage is write-once, so go around it as an attacker would.
    raw.delete(&h.storage_key()).await.unwrap();
    raw.put(&h.storage_key(), &bytes).await.unwrap();
    assert!(
        client.download(h).await.is_err(),
        "tampered material must be rejected"
    );
    server.stop().await;
}
