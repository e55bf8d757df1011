//! What a client and the gRPC service refuse to take from the other side: request IDs chosen by
//! a caller (issue 9, hole 3), download URIs and sizes chosen by a server (hole 7), and an
//! EIP-712 domain reported by a server when the client pinned another (hole 16).

use kms_cli::devserver::PublicStore;
use kms_client::{ClientError, KmsClient, Pinned};
use kms_convert as convert;
use kms_e2e_tests::dev_server;
use kms_eip712::DomainConfig;
use kms_grpc::v1 as pb;
use kms_types::{
    CanonicalRequest, DataType, KeyGenRequest, ParamSetName, StorageError, PUBLIC_KEY_MAX_BYTES,
};
use tonic::Code;

/// A caller cannot occupy the ID of another request: here the ID of the production key set it
/// expects operators to generate, with insecure parameters behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_recomputes_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), PublicStore::File).await;
    let mut client = KmsClient::connect(&server.endpoint(), None).await.unwrap();
    let production = KeyGenRequest {
        params: ParamSetName::Default,
        label: "epoch-1".into(),
    };
    let squat = client
        .rpc()
        .key_gen(pb::KeyGenRequest {
            request_id: Some(convert::id_to_pb(&production.request_id())),
            params: ParamSetName::TestInsecure.as_str().into(),
            label: "epoch-1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(squat.code(), Code::InvalidArgument, "{squat:?}");
    assert!(squat.message().contains("is not the ID of this request"));
    // Nothing was registered under the production ID.
    let get = client
        .rpc()
        .get_key_gen_result(convert::id_to_pb(&production.request_id()))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);

    // The same holds for every kind: a CRS request under a decryption's ID.
    let crs = client
        .rpc()
        .crs_gen(pb::CrsGenRequest {
            request_id: Some(convert::id_to_pb(&production.request_id())),
            params: ParamSetName::TestInsecure.as_str().into(),
            max_num_bits: 64,
            label: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(crs.code(), Code::InvalidArgument);

    // Without a claimed ID the service acknowledges the derived one.
    let insecure = KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "epoch-1".into(),
    };
    let ack = client
        .rpc()
        .key_gen(pb::KeyGenRequest {
            request_id: None,
            params: ParamSetName::TestInsecure.as_str().into(),
            label: "epoch-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        convert::id_from_pb("request_id", ack.request_id.as_ref()).unwrap(),
        insecure.request_id()
    );
    server.stop().await;
}

/// The client verifies under the domain of its own deployment, not the one a server reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pins_the_eip712_domain() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), PublicStore::File).await;
    let reported = KmsClient::connect(&server.endpoint(), None)
        .await
        .unwrap()
        .trust()
        .clone();
    // The same signer, but the client's deployment is another chain.
    let other_deployment = Pinned {
        domain: DomainConfig {
            chain_id: reported.domain.chain_id + 1,
            ..reported.domain.clone()
        },
        ..reported.clone()
    };
    match KmsClient::connect(&server.endpoint(), Some(other_deployment)).await {
        Err(ClientError::Mismatch(m)) => assert!(m.contains("domain"), "{m}"),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("a KMS signing for another deployment was accepted"),
    }
    let pinned = KmsClient::connect(&server.endpoint(), Some(reported.clone()))
        .await
        .unwrap();
    assert_eq!(pinned.domain(), &reported.domain);
    server.stop().await;
}

/// Downloads go to the URI derived from the handle and the client's pinned base, and read at
/// most what the data type can take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_derives_download_uris_and_caps_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let server = dev_server(dir.path(), PublicStore::File).await;
    let mut dev = KmsClient::connect(&server.endpoint(), None).await.unwrap();
    let kg = dev
        .keygen(ParamSetName::TestInsecure, "uris", |_| {})
        .await
        .unwrap();
    let (pk, _) = kg
        .handles
        .iter()
        .find(|(h, _)| h.data_type == DataType::PublicKey)
        .cloned()
        .unwrap();

    // A mirror of the public material the client trusts; the server's own copy is tampered.
    let mirror = tempfile::tempdir().unwrap();
    let mirror_base = format!("file://{}", mirror.path().display());
    let server_copy = dir.path().join("public").join(pk.storage_key().path());
    let mirror_copy = mirror.path().join(pk.storage_key().path());
    std::fs::create_dir_all(mirror_copy.parent().unwrap()).unwrap();
    let original = std::fs::read(&server_copy).unwrap();
    std::fs::write(&mirror_copy, &original).unwrap();
    let mut tampered = original.clone();
    tampered[original.len() / 2] ^= 1;
    std::fs::write(&server_copy, &tampered).unwrap();

    let pinned = Pinned {
        public_base_uri: mirror_base.clone(),
        ..dev.trust().clone()
    };
    let mut client = KmsClient::connect(&server.endpoint(), Some(pinned))
        .await
        .unwrap();
    let handles = client
        .handle(&kg.key_id, DataType::PublicKey)
        .await
        .unwrap();
    assert!(handles.1.starts_with(&mirror_base), "{}", handles.1);
    assert_eq!(client.download(&pk).await.unwrap(), original);
    client.fetch_public_key(&kg.key_id).await.unwrap();

    // An object larger than a public key can be is refused without reading it all.
    let huge = std::fs::File::create(&mirror_copy).unwrap();
    huge.set_len(PUBLIC_KEY_MAX_BYTES + 1).unwrap();
    match client.download(&pk).await {
        Err(ClientError::Storage(StorageError::TooLarge { limit, .. })) => {
            assert_eq!(limit, PUBLIC_KEY_MAX_BYTES)
        }
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("an oversized public key was read"),
    }
    server.stop().await;
}
