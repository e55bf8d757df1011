//! `kms up` leaves a developer-mode KMS running for manual use: the chain answers on the RPC
//! address it reports, the key set is registered on chain by the parties, every party is an
//! enclave and a host process; Ctrl-C (SIGINT) stops all of them.

use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus};
use kms_cli::demo_threshold::UpInfo;
use kms_cli::network::alive;
use kms_types::RequestId;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tendermint_rpc::{Client, HttpClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_up_runs_until_interrupted_and_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut up = Command::new(env!("CARGO_BIN_EXE_kms"))
        .arg("up")
        .arg("--dir")
        .arg(dir.path())
        .args([
            "--rpc",
            &format!("127.0.0.1:{port}"),
            "--params",
            "test-insecure",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .output();
        }
    }
    let _guard = Kill(up.id());
    let path = dir.path().join("up.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !path.exists() {
        assert!(Instant::now() < deadline, "kms up never came up");
        assert!(up.try_wait().unwrap().is_none(), "kms up exited");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info: UpInfo = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(info.rpc, format!("http://127.0.0.1:{port}"));
    let client = HttpClient::new(info.rpc.as_str()).unwrap();
    let key_id = RequestId::parse(&info.key_id).unwrap();
    let rec: RequestRecord = codec::decode(
        &client
            .abci_query(Some("store".into()), keys::request(&key_id), None, false)
            .await
            .unwrap()
            .value,
    )
    .unwrap();
    assert!(matches!(rec.status, RequestStatus::Completed { .. }));
    assert_eq!(info.processes.len(), 4);
    let pids: Vec<u32> = info.processes.iter().flat_map(|(h, e)| [*h, *e]).collect();
    assert!(pids.iter().all(|p| alive(*p)));
    assert!(std::path::Path::new(&info.public_key).exists());

    Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .output()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = up.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "kms up ignored Ctrl-C");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success());
    for p in pids {
        assert!(!alive(p), "process {p} survived");
    }
}
