//! Two endpoints with mock NSMs over real TLS 1.3 on loopback: they connect when each attests a
//! trusted release and the expected identity, and are refused with a clear error otherwise.

use kms_attestation::AttestationError;
use kms_attestation::{Policy, Release};
use kms_attested_tls::{
    channel_error, client_config, server_config, AttestedIdentity, AttestedVerifier, ChannelError,
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

const GOOD: [[u8; 48]; 3] = [[0xa0; 48], [0xa1; 48], [0xa2; 48]];

fn release() -> Release {
    Release::from_image("kms v1", GOOD)
}

/// Two mock NSMs (two enclaves) under one developer root.
fn nsms(server_pcrs: [[u8; 48]; 3]) -> (MockNsm, MockNsm) {
    let root = MockRootCa::generate(now()).unwrap();
    let (cert, key) = (root.cert_der().to_vec(), root.key_pkcs8_der());
    let a = MockNsm::new(root, "i-server", server_pcrs, now).unwrap();
    let b = MockNsm::new(
        MockRootCa::from_parts(&cert, &key).unwrap(),
        "i-client",
        GOOD,
        now,
    )
    .unwrap();
    (a, b)
}

fn verifier(nsm: &dyn Nsm, expect: &str) -> AttestedVerifier {
    AttestedVerifier::new(
        nsm.trusted_root(),
        Policy::production(vec![release()], 300),
        vec![expect.as_bytes().to_vec()],
    )
}

/// Runs one connection; returns (client result, server result).
async fn exchange(
    server_id: &AttestedIdentity,
    server_verifier: AttestedVerifier,
    client_id: &AttestedIdentity,
    client_verifier: AttestedVerifier,
) -> (
    Result<Vec<u8>, std::io::Error>,
    Result<Vec<u8>, std::io::Error>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(server_id, Arc::new(server_verifier)).unwrap(),
    ));
    let connector = TlsConnector::from(Arc::new(
        client_config(client_id, Arc::new(client_verifier)).unwrap(),
    ));
    let server = async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"world").await?;
        tls.flush().await?;
        Ok::<_, std::io::Error>(buf.to_vec())
    };
    let client = async move {
        let tcp = TcpStream::connect(addr).await?;
        let name = rustls::pki_types::ServerName::try_from("kms-party").unwrap();
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"hello").await?;
        tls.flush().await?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf.to_vec())
    };
    let t = Duration::from_secs(20);
    let (c, s) = tokio::join!(
        tokio::time::timeout(t, client),
        tokio::time::timeout(t, server)
    );
    let timeout = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timeout");
    (
        c.unwrap_or_else(|_| Err(timeout())),
        s.unwrap_or_else(|_| Err(timeout())),
    )
}

#[tokio::test]
async fn attested_parties_connect() {
    let (sn, cn) = nsms(GOOD);
    let sid = AttestedIdentity::new(&sn, b"party-1").unwrap();
    let cid = AttestedIdentity::new(&cn, b"party-2").unwrap();
    let (c, s) = exchange(
        &sid,
        verifier(&sn, "party-2"),
        &cid,
        verifier(&cn, "party-1"),
    )
    .await;
    assert_eq!(c.unwrap(), b"world");
    assert_eq!(s.unwrap(), b"hello");
}

#[tokio::test]
async fn other_pcrs_are_refused() {
    let (sn, cn) = nsms([[0xbb; 48]; 3]);
    let sid = AttestedIdentity::new(&sn, b"party-1").unwrap();
    let cid = AttestedIdentity::new(&cn, b"party-2").unwrap();
    let (c, _) = exchange(
        &sid,
        verifier(&sn, "party-2"),
        &cid,
        verifier(&cn, "party-1"),
    )
    .await;
    let e = channel_error(&c.unwrap_err()).unwrap();
    assert!(
        matches!(
            e,
            ChannelError::Rejected(AttestationError::UntrustedPcrs(_))
        ),
        "{e}"
    );
}

#[tokio::test]
async fn stale_documents_are_refused() {
    let (sn, cn) = nsms(GOOD);
    let sid = AttestedIdentity::new(&sn, b"party-1").unwrap();
    let cid = AttestedIdentity::new(&cn, b"party-2").unwrap();
    let late = verifier(&cn, "party-1").at_time(now() + Duration::from_secs(600));
    let (c, _) = exchange(&sid, verifier(&sn, "party-2"), &cid, late).await;
    let e = channel_error(&c.unwrap_err()).unwrap();
    assert!(
        matches!(
            e,
            ChannelError::Rejected(AttestationError::TooOld { max_s: 300, .. })
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_tls_key_that_is_not_the_attested_key_is_refused() {
    let (sn, cn) = nsms(GOOD);
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&other);
    let sid = AttestedIdentity::new_with_mismatched_key(&sn, b"party-1", spki).unwrap();
    let cid = AttestedIdentity::new(&cn, b"party-2").unwrap();
    let (c, _) = exchange(
        &sid,
        verifier(&sn, "party-2"),
        &cid,
        verifier(&cn, "party-1"),
    )
    .await;
    let e = channel_error(&c.unwrap_err()).unwrap();
    assert_eq!(
        e,
        ChannelError::Rejected(AttestationError::Binding("public_key"))
    );
}

#[tokio::test]
async fn unattested_or_unexpected_clients_are_refused_by_the_server() {
    let (sn, cn) = nsms(GOOD);
    let sid = AttestedIdentity::new(&sn, b"party-1").unwrap();
    let plain = AttestedIdentity::unattested().unwrap();
    let (c, s) = exchange(
        &sid,
        verifier(&sn, "party-2"),
        &plain,
        verifier(&cn, "party-1"),
    )
    .await;
    assert!(c.is_err());
    assert_eq!(
        channel_error(&s.unwrap_err()),
        Some(ChannelError::NotAttested)
    );

    let cid = AttestedIdentity::new(&cn, b"party-3").unwrap();
    let (c, s) = exchange(
        &sid,
        verifier(&sn, "party-2"),
        &cid,
        verifier(&cn, "party-1"),
    )
    .await;
    assert!(c.is_err());
    assert_eq!(
        channel_error(&s.unwrap_err()),
        Some(ChannelError::Rejected(AttestationError::Binding(
            "user_data (party identity)"
        )))
    );
}

#[tokio::test]
async fn a_plain_client_checks_the_enclave() {
    use kms_attested_tls::{client_config_without_identity, server_config_for_clients};
    for (pcrs, ok) in [(GOOD, true), ([[0xcc; 48]; 3], false)] {
        let (sn, cn) = nsms(pcrs);
        let sid = AttestedIdentity::new(&sn, b"party-1").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server_config_for_clients(&sid).unwrap()));
        let connector = TlsConnector::from(Arc::new(
            client_config_without_identity(Arc::new(verifier(&cn, "party-1"))).unwrap(),
        ));
        let server = async move {
            let (tcp, _) = listener.accept().await?;
            let mut tls = acceptor.accept(tcp).await?;
            tls.write_all(b"hi").await?;
            tls.flush().await
        };
        let client = async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls::pki_types::ServerName::try_from("kms-party").unwrap();
            let mut tls = connector.connect(name, tcp).await?;
            let mut b = [0u8; 2];
            tls.read_exact(&mut b).await.map(|_| b)
        };
        let (c, _) = tokio::join!(client, server);
        match (ok, c) {
            (true, Ok(b)) => assert_eq!(&b, b"hi"),
            (false, Err(e)) => assert!(matches!(
                channel_error(&e),
                Some(ChannelError::Rejected(AttestationError::UntrustedPcrs(_)))
            )),
            (_, other) => panic!("unexpected: {other:?}"),
        }
    }
}
