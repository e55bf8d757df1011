//! A party is the key the config contract registered for its index (issue 9, hole 5): a genuine
//! release whose configuration claims another party's index is refused by the other parties,
//! and a mesh cannot even be built around a key that is not registered for its own index.

use kms_attestation::{Policy, Release};
use kms_attested_tls::{
    channel_error, client_config, party_identity, AttestedIdentity, AttestedVerifier, ChannelError,
    IdentityKey, Mesh,
};
use kms_nsm::{MockNsm, MockRootCa, Nsm};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

const GOOD: [[u8; 48]; 3] = [[0xc0; 48], [0xc1; 48], [0xc2; 48]];

fn policy() -> Policy {
    Policy::production(vec![Release::from_image("kms v1", GOOD)], 300)
}

fn nsm(root: &MockRootCa, name: &str) -> MockNsm {
    let copy = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
    MockNsm::new(copy, name, GOOD, now).unwrap()
}

/// Party 1 serves with its mesh; a client presenting `client` (and trusting party 1) connects.
/// Returns what party 1's side of the handshake said.
async fn connect_to_party_1(
    mesh: &Mesh,
    client: &AttestedIdentity,
    verifier_of_party_1: AttestedVerifier,
) -> Result<(), std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(mesh.server.clone());
    let connector = TlsConnector::from(Arc::new(
        client_config(client, Arc::new(verifier_of_party_1)).unwrap(),
    ));
    let server = async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(())
    };
    let client = async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("kms-party").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"hi").await?;
        tls.flush().await?;
        // Wait for the server's verdict on our certificate (TLS 1.3 checks it after Finished).
        let mut buf = [0u8; 1];
        let _ = tls.read(&mut buf).await;
        Ok::<_, std::io::Error>(())
    };
    let (_, s) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(20), client),
        tokio::time::timeout(Duration::from_secs(20), server)
    );
    s.unwrap_or_else(|_| Err(std::io::Error::other("timeout")))
}

#[tokio::test]
async fn a_genuine_release_claiming_another_partys_index_is_refused() {
    let root = MockRootCa::generate(now()).unwrap();
    let keys: Vec<IdentityKey> = (0..4).map(|_| IdentityKey::generate().unwrap()).collect();
    let registered: Vec<[u8; 32]> = keys.iter().map(IdentityKey::digest).collect();
    let mut keys = keys.into_iter();
    let (k1, k2, _k3, k4) = (
        keys.next().unwrap(),
        keys.next().unwrap(),
        keys.next().unwrap(),
        keys.next().unwrap(),
    );
    let n1 = nsm(&root, "i-party-1");
    let mesh1 = Mesh::new(&n1, 1, &registered, k1, n1.trusted_root(), policy()).unwrap();
    let trusts_party_1 =
        || AttestedVerifier::new(n1.trusted_root(), policy(), vec![party_identity(1)]);

    // Party 4's operator runs the genuine release, with its own key, configured as party 2.
    let n4 = nsm(&root, "i-party-4");
    let impostor = AttestedIdentity::for_key(&n4, &party_identity(2), &k4).unwrap();
    let err = connect_to_party_1(&mesh1, &impostor, trusts_party_1())
        .await
        .unwrap_err();
    assert_eq!(
        channel_error(&err),
        Some(ChannelError::UnregisteredKey {
            identity: "kms-party-2".into()
        }),
        "{err}"
    );

    // The real party 2 connects.
    let n2 = nsm(&root, "i-party-2");
    let real = AttestedIdentity::for_key(&n2, &party_identity(2), &k2).unwrap();
    connect_to_party_1(&mesh1, &real, trusts_party_1())
        .await
        .unwrap();

    // A mesh cannot be built for an index whose registered key is not ours.
    let n4b = nsm(&root, "i-party-4b");
    let k4_again = IdentityKey::from_pkcs8_der(&k4.to_pkcs8_der()).unwrap();
    assert_eq!(
        Mesh::new(&n4b, 2, &registered, k4_again, n4b.trusted_root(), policy()).unwrap_err(),
        ChannelError::NotRegistered(2)
    );
}

const OTHER: [[u8; 48]; 3] = [[0xd0; 48], [0xd1; 48], [0xd2; 48]];

/// Each party is trusted as the releases the config contract names for it: a genuine,
/// registered party 2 running a release trusted only for party 3 is refused, and accepted once
/// its own policy names that release.
#[tokio::test]
async fn a_party_is_accepted_only_as_a_release_its_own_policy_trusts() {
    let root = MockRootCa::generate(now()).unwrap();
    let keys: Vec<IdentityKey> = (0..4).map(|_| IdentityKey::generate().unwrap()).collect();
    let registered: Vec<[u8; 32]> = keys.iter().map(IdentityKey::digest).collect();
    let mut keys = keys.into_iter();
    let (k1, k2) = (keys.next().unwrap(), keys.next().unwrap());
    let k1_der = k1.to_pkcs8_der();
    let k1_again = || IdentityKey::from_pkcs8_der(&k1_der).unwrap();
    let other = Policy::production(vec![Release::from_image("kms v2", OTHER)], 300);
    let n1 = nsm(&root, "i-party-1");
    let trusts_party_1 =
        || AttestedVerifier::new(n1.trusted_root(), policy(), vec![party_identity(1)]);
    // Party 2 runs release OTHER, with its registered key.
    let copy = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
    let n2 = MockNsm::new(copy, "i-party-2", OTHER, now).unwrap();
    let party2 = AttestedIdentity::for_key(&n2, &party_identity(2), &k2).unwrap();

    // The contract trusts OTHER for party 3 only.
    let only_for_3 = [policy(), policy(), other.clone(), policy()];
    let mesh1 = Mesh::per_party(&n1, 1, &registered, &only_for_3, k1, n1.trusted_root()).unwrap();
    let err = connect_to_party_1(&mesh1, &party2, trusts_party_1())
        .await
        .unwrap_err();
    assert!(
        matches!(channel_error(&err), Some(ChannelError::Rejected(_))),
        "{err}"
    );

    // Once party 2's own policy names OTHER, it is accepted.
    let for_2 = [policy(), other, policy(), policy()];
    let mesh1 =
        Mesh::per_party(&n1, 1, &registered, &for_2, k1_again(), n1.trusted_root()).unwrap();
    connect_to_party_1(&mesh1, &party2, trusts_party_1())
        .await
        .unwrap();

    // One policy per party, or no mesh.
    assert!(matches!(
        Mesh::per_party(
            &n1,
            1,
            &registered,
            &for_2[..3],
            k1_again(),
            n1.trusted_root()
        ),
        Err(ChannelError::PolicyCount {
            policies: 3,
            parties: 4
        })
    ));
}
