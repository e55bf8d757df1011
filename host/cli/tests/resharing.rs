//! Resharing through the party runtime (issue 10): four parties, two enclaves each, as separate
//! processes on the devnet. The admin asks the ASC for a resharing; the enclaves of the
//! request's slot refresh their shares over the attested mesh, seal the new share as pending
//! and report; on the chain's completion (all n equal verdicts) each party takes the new share
//! up and erases the old. Decryptions approved afterwards carry the new epoch and are served
//! with the new shares, also by the enclaves of the other slot, which reload the sealed state.
//!
//! The truths checked: tfhe-rs's own decryption of every ciphertext; and the parties' sealed
//! states, opened with their developer sealing keys, whose shares this test reconstructs by
//! itself (robust opening per coefficient): the new shares differ from the old, hold the same
//! secret, and are stamped with the epoch the chain recorded.

use kms_algebra::shamir::robust_open;
use kms_chain_types::state::{RequestRecord, RequestStatus};
use kms_cli::demo_threshold::{DealtKeySet, LocalNetwork};
use kms_engine::decrypt_ciphertext;
use kms_runtime::state::{AeadSealer, PartyState};
use kms_threshold::{Share, SnsKeyShare};
use kms_types::{
    CanonicalRequest, KeyEpoch, PublicDecryptionRequest, RequestId, Reshared, TypedCiphertext,
};
use std::path::Path;
use std::time::Duration;

const SLOTS: usize = 2;

/// Each party's sealed share and its epoch, opened with the party's developer sealing key.
fn sealed_shares(net: &LocalNetwork) -> Vec<(KeyEpoch, SnsKeyShare)> {
    net.parties
        .parties
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let hex_key = std::fs::read_to_string(&p.sealing_key).unwrap();
            let mut key = [0u8; 32];
            hex::decode_to_slice(hex_key.trim(), &mut key).unwrap();
            let sealed = std::fs::read(p.dir.join("sealed").join("state")).unwrap();
            let plain = AeadSealer::new(&zeroize::Zeroizing::new(key))
                .unseal(&PartyState::context(i as u32 + 1, "state"), &sealed)
                .unwrap();
            let mut state = PartyState::decode(&plain).unwrap();
            assert_eq!(state.keys.len(), 1);
            let entry = state.keys.pop().unwrap();
            assert_eq!(entry.key_id, net.key_id);
            (entry.epoch, entry.share)
        })
        .collect()
}

/// The secret the four shares hold, coefficient by coefficient; every share must lie on the
/// one polynomial.
fn reconstruct(shares: &[(KeyEpoch, SnsKeyShare)]) -> Vec<Share> {
    let coefs = shares[0].1.key.len();
    (0..coefs)
        .map(|c| {
            let col: Vec<Option<Share>> = shares.iter().map(|(_, s)| Some(s.key[c])).collect();
            let o = robust_open(&col, 1).unwrap();
            assert_eq!(o.agreeing, 4, "coefficient {c}: a share off the polynomial");
            o.value
        })
        .collect()
}

fn request_id(key_id: RequestId, ct: &TypedCiphertext) -> RequestId {
    PublicDecryptionRequest {
        key_id,
        ciphertexts: vec![ct.clone()],
    }
    .request_id()
}

/// `count` fresh encryptions (values from `base`) whose requests fall in both slots, at least
/// `per_slot` in each.
fn batch(
    dealt: &DealtKeySet,
    base: u128,
    count: usize,
    per_slot: usize,
) -> (Vec<u128>, Vec<TypedCiphertext>) {
    let values: Vec<u128> = (0..count as u128).map(|i| (base + 5 * i) % 256).collect();
    let cts = dealt.batch_in_slots(&values, SLOTS, per_slot).unwrap();
    (values, cts)
}

/// Decrypts `cts` through the chain and checks every value against tfhe-rs's own decryption.
async fn decrypt_and_check(
    net: &mut LocalNetwork,
    dealt: &DealtKeySet,
    values: &[u128],
    cts: Vec<TypedCiphertext>,
) {
    let logs = net.parties.logs();
    let done = net
        .timed_public_decryption_batch(cts.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {logs:?}"));
    for (i, (ct, got)) in cts.iter().zip(&done.plaintexts).enumerate() {
        let want = decrypt_ciphertext(
            i,
            ct,
            &net.key_id,
            dealt.keygen.params,
            &dealt.keys.client_key,
        )
        .unwrap()
        .to_decimal();
        assert_eq!(got, &want);
        assert_eq!(got, &values[i].to_string());
    }
}

fn completed_digest(rec: &RequestRecord) -> [u8; 32] {
    match rec.status {
        RequestStatus::Completed { result_digest, .. } => result_digest,
        ref s => panic!("not complete: {s:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resharing_refreshes_every_share_and_later_requests_use_the_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dealt = DealtKeySet::test("resharing").unwrap();
    let mut net = dealt
        .start_network(
            Path::new(env!("CARGO_BIN_EXE_kms")),
            dir.path().to_path_buf(),
            Duration::from_millis(300),
            SLOTS,
        )
        .await
        .unwrap();
    let key_id = net.key_id;

    let before = sealed_shares(&net);
    assert!(before.iter().all(|(e, _)| *e == KeyEpoch::default()));
    let secret = reconstruct(&before);

    // The first resharing, then decryptions in both slots: the slot that did not run the
    // resharing reloads the party's sealed state for the new epoch.
    let r1 = net.reshare("refresh-1").await.unwrap();
    assert_eq!(r1.responded.len(), 4, "all n verdicts");
    let epoch1 = KeyEpoch {
        number: 1,
        by: Some(Reshared {
            request: r1.id,
            verdict_digest: completed_digest(&r1),
        }),
    };
    // On the completion alone (no request names the new epoch yet) every party takes its new
    // share up: its host hands the completed resharing over once more.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sealed_shares(&net).iter().any(|(e, _)| *e != epoch1) {
        assert!(
            std::time::Instant::now() < deadline,
            "not every party took its new share up on the completion: {:?}",
            sealed_shares(&net)
                .iter()
                .map(|(e, _)| e.number)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (values, cts) = batch(&dealt, 11, 6, 2);
    let ids: Vec<RequestId> = cts.iter().map(|ct| request_id(key_id, ct)).collect();
    decrypt_and_check(&mut net, &dealt, &values, cts).await;

    let after1 = sealed_shares(&net);
    for (i, ((e0, old), (e1, new))) in before.iter().zip(&after1).enumerate() {
        assert_eq!(*e0, KeyEpoch::default());
        assert_eq!(*e1, epoch1, "party {} sealed epoch", i + 1);
        assert_ne!(old.key, new.key, "party {} kept its old share", i + 1);
    }
    assert_eq!(
        reconstruct(&after1),
        secret,
        "the resharing changed the key"
    );

    // The decryptions after it were stamped with the new epoch, and each party's enclaves of
    // both slots served some: the one of the other slot took the new share up by itself.
    for (k, id) in ids.iter().enumerate() {
        let rec: RequestRecord = net.record(id).await.unwrap();
        assert_eq!(rec.key_epoch, epoch1, "request {k}");
    }
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    for party in 0..4 {
        let took_up = (0..SLOTS)
            .filter(|s| {
                let log = read(net.parties.enclave_log(party, *s).unwrap());
                log.contains("resharing taken up") || log.contains("took up the share")
            })
            .count();
        assert_eq!(
            took_up,
            SLOTS,
            "party {}: both enclaves on the new epoch",
            party + 1
        );
    }

    // A second resharing starts from the first one's epoch.
    let r2 = net.reshare("refresh-2").await.unwrap();
    assert_eq!(r2.key_epoch, epoch1);
    let (values, cts) = batch(&dealt, 101, 2, 1);
    decrypt_and_check(&mut net, &dealt, &values, cts).await;
    let after2 = sealed_shares(&net);
    for ((_, one), (e2, two)) in after1.iter().zip(&after2) {
        assert_eq!(e2.number, 2);
        assert_eq!(e2.by.map(|b| b.request), Some(r2.id));
        assert_ne!(one.key, two.key);
    }
    assert_eq!(reconstruct(&after2), secret);
}
