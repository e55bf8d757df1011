//! Helpers shared by the real-CometBFT tests: the pinned `cometbft` binary, child processes
//! killed on drop, the app and validator processes of a written network, waiting for heights.

#![allow(dead_code)]

use kms_cli::network::NodeLayout as Node;
use kms_light_client::LightBlock;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tendermint_rpc::{Client, HttpClient};

pub fn cometbft() -> PathBuf {
    if let Ok(p) = std::env::var("COMETBFT") {
        return p.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-cometbft");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/install-cometbft failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Child processes, killed (and reaped) on drop, also when the test fails.
pub struct Processes(pub Vec<Option<Child>>);

impl Processes {
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.0[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for i in 0..self.0.len() {
            self.kill(i);
        }
    }
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The tests each run a 4-validator network; on 2 cores they take turns.
pub static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `kms chain-app` for node `n`, its state in the node's home.
pub fn spawn_app(n: &Node) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kms"))
        .args(["chain-app", "--abci", &format!("127.0.0.1:{}", n.abci)])
        .arg("--data-dir")
        .arg(n.home.join("app"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `cometbft start` for node `n`, its log appended to `node.log` in its home.
pub fn spawn_validator(bin: &Path, n: &Node) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(n.home.join("node.log"))
        .unwrap();
    Command::new(bin)
        .args(["start", "--home"])
        .arg(&n.home)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub async fn height(client: &HttpClient) -> u64 {
    client
        .status()
        .await
        .map(|s| s.sync_info.latest_block_height.value())
        .unwrap_or(0)
}

pub async fn wait_for_height(client: &HttpClient, h: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let now = height(client).await;
        if now >= h {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "height {now} < {h} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The RPC address of node `n`.
pub fn rpc_url(n: &Node) -> String {
    format!("http://127.0.0.1:{}", n.rpc)
}

/// The light block at `h` from `url`'s node (through the host's connector), once that node
/// has committed `h` (nodes reach a height at slightly different times; at most 30 s).
pub async fn light_block(url: &str, h: u64) -> LightBlock {
    let rpc = kms_connector::ChainRpc::new(url).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rpc.latest_height().await.unwrap() < h {
        assert!(
            std::time::Instant::now() < deadline,
            "{url} did not reach height {h} in 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    rpc.light_block(h).await.unwrap()
}
