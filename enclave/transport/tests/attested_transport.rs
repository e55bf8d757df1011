//! Parties over attested mutual TLS (mock NSMs, real TLS 1.3 on loopback): messages flow between
//! attested parties; a party that claims another's index is refused; an enclave with other PCRs
//! cannot connect; a connection reaches only the party it was meant for; the mesh keeps
//! accepting new connections past the attestation documents' maximum age.

use kms_attestation::{Policy, Release};
use kms_attested_tls::IdentityKey;
use kms_nsm::{MockNsm, MockRootCa};
use kms_transport::grpc::GrpcParty;
use kms_transport::tls::PartyTls;
use kms_transport::{NetError, Transport};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

const GOOD: [[u8; 48]; 3] = [[0xb0; 48], [0xb1; 48], [0xb2; 48]];
const EVIL: [[u8; 48]; 3] = [[0xee; 48], [0xb1; 48], [0xb2; 48]];

fn policy() -> Policy {
    policy_with_age(300)
}

fn policy_with_age(max_age_s: u64) -> Policy {
    Policy::production(vec![Release::from_image("kms v1", GOOD)], max_age_s)
}

/// The parties' long-term identity keys and the digests the config contract registers.
fn registry(n: usize) -> (Vec<Option<IdentityKey>>, Vec<[u8; 32]>) {
    let keys: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate().unwrap()).collect();
    let digests = keys.iter().map(IdentityKey::digest).collect();
    (keys.into_iter().map(Some).collect(), digests)
}

/// Party `me`'s TLS material, attested by an NSM with `pcrs`, trusting the registered parties.
fn party_tls(
    root: &MockRootCa,
    me: usize,
    key: IdentityKey,
    registered: &[[u8; 32]],
    pcrs: [[u8; 48]; 3],
    policy: Policy,
) -> PartyTls {
    let root_copy = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
    let nsm = Arc::new(MockNsm::new(root_copy, &format!("i-party-{me}"), pcrs, now).unwrap());
    PartyTls::for_party(nsm, me, registered, key, policy).unwrap()
}

/// Four registered parties; `pcrs_of(p)` is the release party `p` runs.
fn mesh_of(
    root: &MockRootCa,
    n: usize,
    pcrs_of: impl Fn(usize) -> [[u8; 48]; 3],
    policy: Policy,
) -> impl FnMut(usize) -> PartyTls {
    let (mut keys, registered) = registry(n);
    let root = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
    move |p| {
        let key = keys[p - 1].take().unwrap();
        party_tls(&root, p, key, &registered, pcrs_of(p), policy.clone())
    }
}

async fn network(
    n: usize,
    mut tls_of: impl FnMut(usize) -> PartyTls,
    claimed: impl Fn(usize) -> usize,
) -> Vec<GrpcParty> {
    let (listeners, endpoints) = GrpcParty::bind_local(n).await.unwrap();
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| GrpcParty::start_tls(claimed(i + 1), l, endpoints.clone(), tls_of(i + 1)))
        .collect()
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_parties_exchange_messages() {
    let root = MockRootCa::generate(now()).unwrap();
    let parties = network(4, mesh_of(&root, 4, |_| GOOD, policy()), |p| p).await;
    exchange_all(&parties).await;
}

/// Every party sends to every other and receives what each sent.
async fn exchange_all(parties: &[GrpcParty]) {
    for from in 1..=4usize {
        for to in (1..=4usize).filter(|&t| t != from) {
            parties[from - 1]
                .send(to, b"s1", vec![from as u8, to as u8])
                .await
                .unwrap();
        }
    }
    for to in 1..=4usize {
        for from in (1..=4usize).filter(|&f| f != to) {
            let m = parties[to - 1].recv(from, b"s1", WAIT).await.unwrap();
            assert_eq!(m, vec![from as u8, to as u8]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_cannot_speak_for_another() {
    let root = MockRootCa::generate(now()).unwrap();
    // Party 4 runs with a genuine attested identity but claims to be party 2 in its messages.
    let parties = network(4, mesh_of(&root, 4, |_| GOOD, policy()), |p| {
        if p == 4 {
            2
        } else {
            p
        }
    })
    .await;
    let err = parties[3]
        .send(1, b"s2", b"forged".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Send { to: 1, .. }), "{err:?}");
    assert!(
        format!("{err}").contains("authenticated as party 4"),
        "{err}"
    );
    // Nothing from "party 2" arrived.
    assert!(parties[0]
        .recv(2, b"s2", Duration::from_millis(300))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enclave_with_other_pcrs_cannot_connect() {
    let root = MockRootCa::generate(now()).unwrap();
    let parties = network(
        4,
        mesh_of(&root, 4, |p| if p == 3 { EVIL } else { GOOD }, policy()),
        |p| p,
    )
    .await;
    // Party 3 (other PCRs) cannot deliver to party 1, nor receive from it.
    assert!(parties[2].send(1, b"s3", b"x".to_vec()).await.is_err());
    assert!(parties[0].send(3, b"s3", b"y".to_vec()).await.is_err());
    assert!(parties[0]
        .recv(3, b"s3", Duration::from_millis(300))
        .await
        .is_err());
    // The others still talk.
    parties[1].send(1, b"s3", b"ok".to_vec()).await.unwrap();
    assert_eq!(parties[0].recv(2, b"s3", WAIT).await.unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reaches_only_the_intended_party() {
    let root = MockRootCa::generate(now()).unwrap();
    // Party 1's view of the network is wrong: the endpoint it has for party 2 is party 3's.
    let (listeners, endpoints) = GrpcParty::bind_local(4).await.unwrap();
    let mut wrong = endpoints.clone();
    wrong[1] = endpoints[2].clone();
    let mut tls_of = mesh_of(&root, 4, |_| GOOD, policy());
    let parties: Vec<GrpcParty> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let eps = if i == 0 {
                wrong.clone()
            } else {
                endpoints.clone()
            };
            GrpcParty::start_tls(i + 1, l, eps, tls_of(i + 1))
        })
        .collect();
    // Sending "to party 2" dials party 3, whose attested identity is not party 2's: refused.
    assert!(parties[0].send(2, b"s4", b"secret".to_vec()).await.is_err());
    assert!(parties[2]
        .recv(1, b"s4", Duration::from_millis(300))
        .await
        .is_err());
}

/// Documents are accepted for 2 s; the parties first connect after 3 s. Each party re-attests
/// its key in the background, so every handshake presents a fresh document (issue 9, hole 6).
/// The same mesh without re-attestation is the control: its first connections are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_outlives_the_attestation_age() {
    let root = MockRootCa::generate(now()).unwrap();
    let parties = network(4, mesh_of(&root, 4, |_| GOOD, policy_with_age(2)), |p| p).await;
    let mut stale_tls = mesh_of(&root, 4, |_| GOOD, policy_with_age(2));
    let stale = network(
        4,
        |p| PartyTls {
            refresh: None,
            ..stale_tls(p)
        },
        |p| p,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    exchange_all(&parties).await;
    assert!(
        stale[0].send(2, b"late", b"x".to_vec()).await.is_err(),
        "control: without re-attestation the documents have aged out"
    );
}
