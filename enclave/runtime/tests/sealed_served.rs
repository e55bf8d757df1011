//! The served-request log as sealed state kept by the host: it survives a restart of the
//! enclave (a request ID is still served with one content only), and a host that tampers with a
//! record, or hands one party's record to another, makes the party refuse, never serve.

use kms_channel::mux::{BoxIo, Dialer, EnclaveChannel, Handler, HostChannel};
use kms_channel::wire::{HostRequest, HostResponse};
use kms_runtime::sealed_blobs::SealedBlobs;
use kms_runtime::served_store::SealedServedStore;
use kms_runtime::state::AeadSealer;
use kms_threshold::{Served, ServedLog, ThresholdError};
use kms_types::RequestId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

type Disk = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A host keeping sealed blobs in memory; one enclave connection.
fn connect(disk: &Disk) -> EnclaveChannel {
    let (host_io, enclave_io) = tokio::net::UnixStream::pair().unwrap();
    let dial: Dialer = Arc::new(|_| Box::pin(async { Err(std::io::Error::other("no peers")) }));
    let d = disk.clone();
    let handle: Handler = Arc::new(move |req| {
        let d = d.clone();
        Box::pin(async move {
            match req {
                HostRequest::GetSealed { name } => {
                    HostResponse::Blob(d.lock().unwrap().get(&name).cloned())
                }
                HostRequest::PutSealed { name, bytes } => {
                    d.lock().unwrap().insert(name, bytes);
                    HostResponse::Stored
                }
                _ => HostResponse::Failed("not here".into()),
            }
        })
    });
    // The host's end runs in its own tasks.
    let _host = HostChannel::start(Box::new(host_io) as BoxIo, dial, handle);
    EnclaveChannel::start(Box::new(enclave_io)).0
}

fn log(disk: &Disk, sealer: &Arc<AeadSealer>, party: u32) -> ServedLog {
    ServedLog::new(SealedServedStore::new(SealedBlobs::new(
        connect(disk),
        sealer.clone(),
        party,
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_log_survives_a_restart_and_refuses_tampered_records() {
    let disk: Disk = Arc::default();
    let sealer = Arc::new(AeadSealer::new(&Zeroizing::new([7u8; 32])));
    let (key, req) = (RequestId::derive("k", b""), RequestId::derive("r", b""));
    let (a, b) = ([1u8; 32], [2u8; 32]);

    let first = log(&disk, &sealer, 1);
    assert_eq!(first.begin(&key, &req, &a).unwrap(), Served::Serve);
    first.finish(&key, &req, &a, b"result").unwrap();
    drop(first);
    assert!(
        disk.lock()
            .unwrap()
            .values()
            .all(|v| !v.windows(6).any(|w| w == b"result")),
        "the host sees only sealed bytes"
    );

    // The enclave restarts: a new channel, a new log, the same host storage.
    let again = log(&disk, &sealer, 1);
    assert_eq!(
        again.begin(&key, &req, &a).unwrap(),
        Served::Done(b"result".to_vec())
    );
    assert!(matches!(
        again.begin(&key, &req, &b),
        Err(ThresholdError::RequestReplayed { .. })
    ));

    // Another party's enclave handed party 1's record: it does not open.
    let other = log(&disk, &sealer, 2);
    assert!(matches!(
        other.begin(&key, &req, &b),
        Err(ThresholdError::Storage(_))
    ));

    // The host flips a bit: refused, not served.
    for v in disk.lock().unwrap().values_mut() {
        if let Some(x) = v.last_mut() {
            *x ^= 1;
        }
    }
    assert!(matches!(
        again.begin(&key, &req, &a),
        Err(ThresholdError::Storage(_))
    ));
}
