//! Two enclaves per party (issue 10's coordinator): each party's host drives two `kms enclave`
//! processes that share the party's sealed state, and hands each approved request to one of
//! them by its ID; slot `s` of every party forms its own attested mesh. A batch of public
//! decryptions, submitted back to back, completes with tfhe-rs's values; each request's
//! threshold round ran in the enclaves of its slot and nowhere else; both slots of every party
//! served; and the two enclaves' concurrent fulfillments never collided on the party account's
//! nonce.

use kms_cli::demo_threshold::{DealtKeySet, LocalNetwork};
use kms_engine::decrypt_ciphertext;
use kms_host::slot_of;
use kms_types::{CanonicalRequest, PublicDecryptionRequest, RequestId, TypedCiphertext};
use std::path::Path;
use std::time::Duration;

const BATCH: usize = 12;
const SLOTS: usize = 2;

/// `BATCH` encryptions whose requests fall in both slots, at least three in each (so a party
/// that happens to come late to one of them, the request complete before its host fetched it,
/// still serves in each slot).
fn batch(dealt: &DealtKeySet) -> (Vec<u128>, Vec<TypedCiphertext>) {
    let values: Vec<u128> = (0..BATCH as u128).map(|i| 3 * i + 7).collect();
    let cts = dealt.batch_in_slots(&values, SLOTS, 3).unwrap();
    (values, cts)
}

fn request_id(key_id: RequestId, ct: &TypedCiphertext) -> RequestId {
    PublicDecryptionRequest {
        key_id,
        ciphertexts: vec![ct.clone()],
    }
    .request_id()
}

/// Whether an enclave log has the timing line of `id` (written after its threshold round).
fn ran_round(log: &str, id: &RequestId) -> bool {
    let id = id.to_string();
    log.lines()
        .any(|l| l.contains("phase timings") && l.contains(&id))
}

/// A network whose parties run [`SLOTS`] enclaves each, its folder and its key set.
async fn two_enclaves_per_party(label: &str) -> (tempfile::TempDir, DealtKeySet, LocalNetwork) {
    let dir = tempfile::tempdir().unwrap();
    let dealt = DealtKeySet::test(label).unwrap();
    let net = dealt
        .start_network(
            Path::new(env!("CARGO_BIN_EXE_kms")),
            dir.path().to_path_buf(),
            Duration::from_millis(300),
            SLOTS,
        )
        .await
        .unwrap();
    (dir, dealt, net)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_enclaves_per_party_serve_a_batch() {
    let (_dir, dealt, mut net) = two_enclaves_per_party("enclave-slots").await;
    let logs = net.parties.logs();
    assert_eq!(net.parties.slots(), SLOTS);
    for i in 0..4 {
        let pids = net.parties.enclave_pids(i);
        assert_eq!(pids.len(), SLOTS);
        assert!(pids.iter().all(Option::is_some), "party {} enclaves", i + 1);
    }

    let key_id = net.key_id;
    let (values, cts) = batch(&dealt);
    let ids: Vec<RequestId> = cts.iter().map(|ct| request_id(key_id, ct)).collect();
    let done = net
        .timed_public_decryption_batch(cts.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {logs:?}"));
    assert_eq!(done.ids, ids);
    // The independent truth: tfhe-rs's own decryption with the dealer's client key.
    for (i, (ct, got)) in cts.iter().zip(&done.plaintexts).enumerate() {
        let want = decrypt_ciphertext(i, ct, &key_id, dealt.keygen.params, &dealt.keys.client_key)
            .unwrap()
            .to_decimal();
        assert_eq!(got, &want);
        assert_eq!(got, &values[i].to_string());
    }
    // Late answers are logged shortly after completion.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let mut rounds_per_request = vec![0usize; ids.len()];
    for party in 0..4 {
        for slot in 0..SLOTS {
            let log = read(net.parties.enclave_log(party, slot).unwrap());
            let mut served = 0;
            for (k, id) in ids.iter().enumerate() {
                if ran_round(&log, id) {
                    assert_eq!(
                        slot_of(id, SLOTS),
                        slot,
                        "party {} slot {slot} ran the round of a request of another slot",
                        party + 1
                    );
                    rounds_per_request[k] += 1;
                    served += 1;
                }
            }
            // Opening needs 2t + 1 = 3 of the 4 parties, so a slot that took part in none of
            // its requests' rounds would have left them to the others: allowed for one party
            // at most. Every party here is up, so each slot serves.
            assert!(served > 0, "party {} slot {slot} served nothing", party + 1);
        }
        let host = read(net.parties.parties[party].dir.join("host.log"));
        let refused: Vec<&str> = host
            .lines()
            .filter(|l| l.contains("not broadcast"))
            .collect();
        assert!(
            !host.contains("bad nonce"),
            "party {}'s enclaves collided on the account nonce: {refused:#?}",
            party + 1
        );
    }
    for (k, n) in rounds_per_request.iter().enumerate() {
        assert!(*n >= 3, "request {} ran in {n} parties' enclaves", ids[k]);
    }
}

/// One enclave of a two-enclave party dies: its host hands out nothing until it is back (each
/// request has one slot), the other parties complete a batch without that party; restarted
/// from the shared sealed state, the enclave rejoins its slot's mesh and the party serves the
/// next batch in both slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_with_one_of_its_enclaves_down_pauses_and_rejoins() {
    let (_dir, dealt, mut net) = two_enclaves_per_party("enclave-slots-down").await;
    let logs = net.parties.logs();
    let key_id = net.key_id;
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();

    // Party 4's slot-1 enclave dies.
    net.parties.kill_enclave_slot(3, 1);
    let (values, cts) = batch(&dealt);
    let ids: Vec<RequestId> = cts.iter().map(|ct| request_id(key_id, ct)).collect();
    let done = net
        .timed_public_decryption_batch(cts)
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {logs:?}"));
    for (got, want) in done.plaintexts.iter().zip(&values) {
        assert_eq!(got, &want.to_string());
    }
    // Party 4 served none of them, in either slot: its host waits for its missing enclave.
    for slot in 0..SLOTS {
        let log = read(net.parties.enclave_log(3, slot).unwrap());
        assert!(
            ids.iter().all(|id| !ran_round(&log, id)),
            "party 4 slot {slot} served while one of its enclaves was down"
        );
    }

    // Restarted: it boots from the shared sealed state and the party serves again.
    net.parties.start_enclave_slot(3, 1).unwrap();
    let (values, cts) = batch(&dealt);
    let ids: Vec<RequestId> = cts.iter().map(|ct| request_id(key_id, ct)).collect();
    let done = net
        .timed_public_decryption_batch(cts)
        .await
        .unwrap_or_else(|e| panic!("{e}; logs: {logs:?}"));
    for (got, want) in done.plaintexts.iter().zip(&values) {
        assert_eq!(got, &want.to_string());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for slot in 0..SLOTS {
        let log = read(net.parties.enclave_log(3, slot).unwrap());
        assert!(
            ids.iter()
                .any(|id| slot_of(id, SLOTS) == slot && ran_round(&log, id)),
            "party 4 slot {slot} did not rejoin"
        );
    }
}
