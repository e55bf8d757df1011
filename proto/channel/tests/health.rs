//! Health checks over the channel: answered with the responder's report from the moment the
//! channel is up; a challenge of the wrong length, or a channel without a responder, gets a
//! typed refusal; and a host flooding checks gets at most [`MAX_HEALTH_IN_FLIGHT`] handled at
//! once, the rest dropped unanswered, so the enclave's work and memory stay bounded.

use kms_channel::mux::{
    BoxIo, Dialer, EnclaveChannel, Handler, HealthResponder, HostChannel, MAX_HEALTH_IN_FLIGHT,
};
use kms_channel::wire::{FailureKind, HealthReport, HostResponse, Phase, ToEnclave};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn host_end(io: tokio::net::UnixStream) -> HostChannel {
    let dial: Dialer =
        Arc::new(|_| Box::pin(async { Err::<BoxIo, _>(std::io::Error::other("none")) }));
    let handle: Handler = Arc::new(|_| Box::pin(async { HostResponse::Failed("none".into()) }));
    HostChannel::start(Box::new(io), dial, handle)
}

#[tokio::test]
async fn a_check_is_answered_with_the_challenge_and_bad_ones_are_refused() {
    let (h, e) = tokio::net::UnixStream::pair().unwrap();
    let responder: HealthResponder = Arc::new(|challenge: &[u8]| {
        Ok(HealthReport {
            phase: Phase::Booting,
            document: challenge.iter().rev().copied().collect(),
        })
    });
    let host = host_end(h);
    let _enclave = EnclaveChannel::start_with_health(Box::new(e), Some(responder));
    let challenge = [7u8; 32];
    let report = host
        .health(challenge, Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.phase, Phase::Booting);
    assert_eq!(report.document, vec![7u8; 32]);

    // Without a responder: refused as unsupported.
    let (h, e) = tokio::net::UnixStream::pair().unwrap();
    let host = host_end(h);
    let _enclave = EnclaveChannel::start(Box::new(e));
    let refused = host
        .health([1; 32], Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.kind, FailureKind::Unsupported);
}

#[tokio::test]
async fn a_challenge_of_another_length_is_refused() {
    // A host that writes frames itself (the HostChannel only sends 32-byte challenges).
    let (mut h, e) = tokio::net::UnixStream::pair().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let responder: HealthResponder = Arc::new(move |_: &[u8]| {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(HealthReport {
            phase: Phase::Serving,
            document: vec![],
        })
    });
    let _enclave = EnclaveChannel::start_with_health(Box::new(e), Some(responder));
    let frame = kms_channel::wire::encode(&ToEnclave::Health {
        corr: 9,
        challenge: vec![0; 31],
    })
    .unwrap();
    h.write_all(&frame).await.unwrap();
    let answer: kms_channel::wire::ToHost =
        tokio::time::timeout(Duration::from_secs(5), kms_channel::wire::read(&mut h))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    match answer {
        kms_channel::wire::ToHost::Health { corr: 9, report } => {
            assert_eq!(report.unwrap_err().kind, FailureKind::Protocol)
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_checks_is_bounded() {
    let (h, e) = tokio::net::UnixStream::pair().unwrap();
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, m) = (running.clone(), most.clone());
    let responder: HealthResponder = Arc::new(move |_: &[u8]| {
        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        r.fetch_sub(1, Ordering::SeqCst);
        Ok(HealthReport {
            phase: Phase::Serving,
            document: vec![1],
        })
    });
    let host = host_end(h);
    let _enclave = EnclaveChannel::start_with_health(Box::new(e), Some(responder));
    let checks: Vec<_> = (0..40u8)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move { host.health([i; 32], Duration::from_secs(3)).await })
        })
        .collect();
    // Any reply at all (a report or a refusal) took an enclave task and a slot in its outgoing
    // queue; a check past the bound must get none.
    let (mut replied, mut reports) = (0, 0);
    for c in checks {
        match c.await.unwrap() {
            Ok(Ok(_)) => {
                replied += 1;
                reports += 1;
            }
            Ok(Err(_)) => replied += 1,
            Err(_) => {}
        }
    }
    assert!(most.load(Ordering::SeqCst) <= MAX_HEALTH_IN_FLIGHT);
    assert!(reports >= 1, "no check was answered");
    assert!(
        replied < 40,
        "every check of a flood got a reply: nothing bounds the enclave's work"
    );
}
