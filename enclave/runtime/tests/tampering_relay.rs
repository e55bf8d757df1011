//! A host that tampers with the party traffic it relays (issue 10): the enclaves' attested TLS
//! runs end to end over byte streams the hosts carry, so a flipped byte kills the connection
//! instead of changing a share. Four parties decrypt over relayed attested TLS while party 2's
//! host corrupts everything parties 1 and 3 send it: parties 1, 3 and 4 output tfhe-rs's own
//! decryption with no cheater named, and party 2, left with t + 1 < 2t + 1 shares, refuses
//! (naming parties 1 and 3 as missing) instead of outputting anything else.

use kms_algebra::prss::{deal_keys, Prss};
use kms_attestation::{Policy, Release};
use kms_attested_tls::IdentityKey;
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::{decrypt_ciphertext, generate_key_set, serialize_public};
use kms_nsm::{MockNsm, MockRootCa};
use kms_threshold::{deal_insecure, FloodingParams, ServedLog, ThresholdParty};
use kms_transport::grpc::GrpcParty;
use kms_transport::tls::{BoxIo, Dial, PartyTls};
use kms_types::{FheType, ParamSetName, RequestId, TypedCiphertext};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const N: usize = 4;
const T: usize = 1;
const PARAMS: ParamSetName = ParamSetName::TestInsecure;
const PCRS: [[u8; 48]; 3] = [[5; 48], [6; 48], [7; 48]];

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Copies `from` → `to`; with `tamper`, flips a bit in every chunk after the first 64 bytes.
async fn pump(
    mut from: tokio::io::ReadHalf<BoxIo>,
    mut to: tokio::io::WriteHalf<BoxIo>,
    tamper: bool,
) {
    let mut buf = vec![0u8; 16 << 10];
    let mut seen = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tamper && seen + n > 64 {
            if let Some(b) = buf.get_mut(n - 1) {
                *b ^= 0x01;
            }
        }
        seen += n;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_flips_bytes_cannot_change_a_share() {
    let key_id = RequestId::derive("tampering-relay", b"");
    let ks = generate_key_set(PARAMS, &key_id, &mut |_| {});
    kms_engine::tfhe::set_server_key(ks.server_key.decompress());
    let ct = TypedCiphertext {
        fhe_type: FheType::Uint8,
        bytes: serialize_public(
            &<kms_engine::tfhe::FheUint8 as kms_engine::tfhe::prelude::FheEncrypt<u8, _>>::encrypt(
                201,
                &ks.client_key,
            ),
        )
        .unwrap(),
    };
    let truth = decrypt_ciphertext(0, &ct, &key_id, PARAMS, &ks.client_key)
        .unwrap()
        .to_decimal();
    assert_eq!(truth, "201");

    let shares = deal_insecure(&ks.client_key, key_id, N, T, &mut rand_core::OsRng).unwrap();
    let prss_keys = deal_keys(N, T, &mut rand_core::OsRng);
    let identity: Vec<IdentityKey> = (0..N).map(|_| IdentityKey::generate().unwrap()).collect();
    let registered: Vec<[u8; 32]> = identity.iter().map(IdentityKey::digest).collect();
    let root = MockRootCa::generate(now()).unwrap();

    // Each party's incoming relayed connections; the dialers are the hosts' relays.
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..N).map(|_| mpsc::channel::<BoxIo>(64)).unzip();
    let senders = Arc::new(senders);
    let mut parties = Vec::new();
    for (i, ((share, rx), id)) in shares.into_iter().zip(receivers).zip(identity).enumerate() {
        let me = i + 1;
        let senders = senders.clone();
        let dial: Dial = Arc::new(move |to| {
            let senders = senders.clone();
            Box::pin(async move {
                let (mine, relay_near) = tokio::io::duplex(64 << 10);
                let (relay_far, theirs) = tokio::io::duplex(64 << 10);
                let (near_r, near_w) = tokio::io::split(Box::new(relay_near) as BoxIo);
                let (far_r, far_w) = tokio::io::split(Box::new(relay_far) as BoxIo);
                // Party 2's host corrupts what parties 1 and 3 send it.
                let tamper = (me == 1 || me == 3) && to == 2;
                tokio::spawn(pump(near_r, far_w, tamper));
                tokio::spawn(pump(far_r, near_w, false));
                senders
                    .get(to - 1)
                    .ok_or_else(|| std::io::Error::other("no such party"))?
                    .send(Box::new(theirs))
                    .await
                    .map_err(|_| std::io::Error::other("party gone"))?;
                Ok(Box::new(mine) as BoxIo)
            })
        });
        let root = MockRootCa::from_parts(root.cert_der(), &root.key_pkcs8_der()).unwrap();
        let nsm = Arc::new(MockNsm::new(root, &format!("i-{me}"), PCRS, now).unwrap());
        let policy = Policy::production(vec![Release::from_image("test", PCRS)], 300);
        let tls = PartyTls::for_party(nsm, me, &registered, id, policy).unwrap();
        let net = Arc::new(GrpcParty::start_tls_relayed(me, N, rx, dial, tls));
        let flooding =
            FloodingParams::for_param_set(PARAMS, N, T, share.message_modulus, share.carry_modulus)
                .unwrap();
        let party = Arc::new(ThresholdParty {
            prss: Prss::new(me, N, T, &prss_keys).unwrap(),
            key: kms_threshold::HeldKey::new(Default::default(), share),
            flooding,
            params: PARAMS,
            signer: SigningKey::random(&mut rand_core::OsRng),
            domain: DomainConfig::default(),
            served: ServedLog::in_memory(),
        });
        let squashed = party.squash_all(std::slice::from_ref(&ct)).unwrap();
        parties.push((party, net, squashed));
    }

    let request = RequestId::derive("request", b"tampered");
    let tasks: Vec<_> = parties
        .into_iter()
        .map(|(party, net, squashed)| {
            tokio::spawn(async move {
                party
                    .decrypt_squashed(
                        net.as_ref(),
                        request,
                        key_id,
                        Default::default(),
                        &squashed,
                        Duration::from_secs(5),
                    )
                    .await
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let party = i + 1;
        match (party, t.await.unwrap()) {
            (2, Err(e)) => {
                let msg = e.to_string();
                assert!(msg.contains("missing: parties [1, 3]"), "party 2: {msg}");
            }
            (2, Ok(d)) => panic!(
                "party 2 output {:?} from too few shares",
                d.signed.plaintexts
            ),
            (p, Ok(d)) => {
                assert_eq!(d.signed.plaintexts[0].to_decimal(), truth, "party {p}");
                assert!(
                    d.cheaters.is_empty(),
                    "party {p}: a corrupted byte became a wrong share"
                );
            }
            (p, Err(e)) => panic!("party {p}: {e}"),
        }
    }
}
