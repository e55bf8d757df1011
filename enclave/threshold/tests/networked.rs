//! Decryption rounds over the transports: in-process with silent and garbage-sending parties,
//! and over gRPC/TCP with an unreachable party. Deadlines turn silence into absence.

use kms_algebra::prss::{deal_keys, Prss};
use kms_engine::serialize_public;
use kms_threshold::{
    deal_insecure, decrypt_round, squash, DecryptionSession, FloodingParams, SquashedCiphertext,
};
use kms_transport::grpc::GrpcParty;
use kms_transport::{InProcessNetwork, Transport};
use kms_types::{FheType, ParamSetName, RequestId, TypedCiphertext};
use rand_core::OsRng;
use std::sync::Arc;
use std::time::Duration;
use tfhe::prelude::*;

struct Setup {
    key_id: RequestId,
    keys: Vec<Arc<kms_threshold::SnsKeyShare>>,
    prss: Vec<Arc<Prss<u128, 4>>>,
    fp: FloodingParams,
    sq: SquashedCiphertext,
    want: u128,
}

fn setup(n: usize, t: usize) -> Setup {
    let id = RequestId::derive("networked", b"");
    let ks = kms_engine::generate_key_set(ParamSetName::TestInsecure, &id, &mut |_| {});
    tfhe::set_server_key(ks.server_key.decompress());
    let want = 0x1234_5678_9abc_def0u64;
    let ct = TypedCiphertext {
        fhe_type: FheType::Uint64,
        bytes: serialize_public(&tfhe::FheUint64::encrypt(want, &ks.client_key)).unwrap(),
    };
    let sq = squash(&ct, ParamSetName::TestInsecure).unwrap();
    let keys = deal_insecure(&ks.client_key, id, n, t, &mut OsRng).unwrap();
    let fp = FloodingParams::new(n, t, keys[0].message_modulus, keys[0].carry_modulus).unwrap();
    let pk = deal_keys(n, t, &mut OsRng);
    Setup {
        key_id: id,
        keys: keys.into_iter().map(Arc::new).collect(),
        prss: (1..=n)
            .map(|p| Arc::new(Prss::new(p, n, t, &pk).unwrap()))
            .collect(),
        fp,
        sq,
        want: u128::from(want),
    }
}

/// The decryption session of request `tag` on the setup's key.
fn session(s: &Setup, tag: &[u8]) -> DecryptionSession {
    DecryptionSession {
        kind: DecryptionSession::PUBLIC,
        key_id: s.key_id,
        request_id: RequestId::derive("networked/request", tag),
        index: 0,
        ciphertext_digest: kms_types::sha3_256(tag),
    }
}

/// Runs a decryption round for each of `transports` (parties 1, 2, … in order), concurrently.
async fn rounds(
    s: &Setup,
    transports: Vec<Arc<dyn Transport>>,
    session: &DecryptionSession,
    deadline: Duration,
) -> Vec<kms_threshold::RoundOutcome> {
    let mut tasks = Vec::new();
    for (i, t) in transports.into_iter().enumerate() {
        let (k, r, sq, sid, fp) = (
            s.keys[i].clone(),
            s.prss[i].clone(),
            s.sq.clone(),
            session.clone(),
            s.fp,
        );
        tasks.push(tokio::spawn(async move {
            decrypt_round(t.as_ref(), &k, &r, &fp, &sid, &sq, deadline).await
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_round_tolerates_a_silent_and_a_garbage_party() {
    let s = setup(7, 2);
    let net = InProcessNetwork::new(7);
    let session = session(&s, b"req-1");
    // Party 6 sends garbage to everyone; party 7 never speaks.
    let garbage = net.party(6);
    for to in 1..=5 {
        garbage
            .send(to, &session.id(), vec![1, 2, 3])
            .await
            .unwrap();
    }
    for out in rounds(
        &s,
        (1..=5)
            .map(|p| Arc::new(net.party(p)) as Arc<dyn Transport>)
            .collect(),
        &session,
        Duration::from_millis(300),
    )
    .await
    {
        assert_eq!(out.plaintext.as_u128(), Some(s.want));
        assert_eq!(out.absent, vec![6, 7]);
        assert!(out.cheaters.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_round_with_an_unreachable_party() {
    let s = setup(4, 1);
    let (listeners, endpoints) = GrpcParty::bind_local(4).await.unwrap();
    // Party 4 never starts: its port is closed.
    let mut listeners = listeners.into_iter();
    let parties: Vec<Arc<GrpcParty>> = (1..=3)
        .map(|p| {
            Arc::new(GrpcParty::start(
                p,
                listeners.next().unwrap(),
                endpoints.clone(),
            ))
        })
        .collect();
    drop(listeners);
    let session = session(&s, b"req-2");
    for out in rounds(
        &s,
        parties[..3]
            .iter()
            .map(|p| p.clone() as Arc<dyn Transport>)
            .collect(),
        &session,
        Duration::from_secs(3),
    )
    .await
    {
        assert_eq!(out.plaintext.as_u128(), Some(s.want));
        assert_eq!(out.absent, vec![4]);
    }
}

/// Party `me`'s mesh TLS (mock NSM under one developer root, production policy on its PCRs).
fn attested(
    root: &kms_nsm::MockRootCa,
    me: usize,
    key: kms_attested_tls::IdentityKey,
    registered: &[[u8; 32]],
) -> kms_transport::tls::PartyTls {
    use kms_attestation::{Policy, Release};
    use kms_nsm::{MockNsm, MockRootCa};
    let pcrs = [[0x51u8; 48], [0x52; 48], [0x53; 48]];
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
    };
    let root = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
    let nsm = Arc::new(MockNsm::new(root, &format!("i-{me}"), pcrs, now).unwrap());
    let policy = Policy::production(vec![Release::from_image("kms", pcrs)], 300);
    kms_transport::tls::PartyTls::for_party(nsm, me, registered, key, policy).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attested_tls_round_with_an_impersonator() {
    // Four enclaves over mutually attested TLS. Party 4 is genuine (attested) but malicious: it
    // sends its messages claiming to be party 1. The channel names it, so its messages are
    // refused and it counts as absent; nobody can inject shares in another party's name.
    let s = setup(4, 1);
    let root = kms_nsm::MockRootCa::generate(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap(),
    )
    .unwrap();
    let (listeners, endpoints) = GrpcParty::bind_local(4).await.unwrap();
    let keys: Vec<kms_attested_tls::IdentityKey> = (0..4)
        .map(|_| kms_attested_tls::IdentityKey::generate().unwrap())
        .collect();
    let registered: Vec<[u8; 32]> = keys.iter().map(|k| k.digest()).collect();
    let parties: Vec<Arc<GrpcParty>> = listeners
        .into_iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (l, key))| {
            let claimed = if i == 3 { 1 } else { i + 1 };
            Arc::new(GrpcParty::start_tls(
                claimed,
                l,
                endpoints.clone(),
                attested(&root, i + 1, key, &registered),
            ))
        })
        .collect();
    let session = session(&s, b"req-3");
    // The impostor tries to pass a wrong share off as party 1's.
    for to in 2..=3 {
        assert!(parties[3]
            .send(to, &session.id(), vec![0; 64])
            .await
            .is_err());
    }
    for out in rounds(
        &s,
        parties[..3]
            .iter()
            .map(|p| p.clone() as Arc<dyn Transport>)
            .collect(),
        &session,
        Duration::from_secs(3),
    )
    .await
    {
        assert_eq!(out.plaintext.as_u128(), Some(s.want));
        assert_eq!(out.absent, vec![4]);
        assert!(out.cheaters.is_empty());
    }
}
