//! A k-validator CometBFT network for the KMS chain on one machine (`kms chain-net init`): one
//! home per validator with keys from `cometbft init`, a shared genesis with every validator and
//! the KMS config as `app_state`, loopback ports, and each node peered with all others. Each node
//! then runs `kms chain-app --abci 127.0.0.1:<abci> --data-dir <home>/app` and
//! `cometbft start --home <home>`.

use kms_chain_types::state::Config;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One validator of a written network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeLayout {
    /// The CometBFT home.
    pub home: PathBuf,
    /// CometBFT RPC port (127.0.0.1).
    pub rpc: u16,
    /// P2P port (127.0.0.1).
    pub p2p: u16,
    /// The port its `kms chain-app` listens on for ABCI.
    pub abci: u16,
    /// Its CometBFT node ID.
    pub id: String,
}

/// Why a network could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// `cometbft` failed or could not run.
    #[error("{command}: {reason}")]
    Command {
        /// What ran.
        command: String,
        /// What it said.
        reason: String,
    },
    /// A file could not be read, parsed or written.
    #[error("{path}: {reason}")]
    File {
        /// Which.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `config.toml` does not have a line this CometBFT version should write.
    #[error("{path}: no {line:?} (another CometBFT version?)")]
    Config {
        /// Which file.
        path: PathBuf,
        /// The missing line.
        line: String,
    },
}

fn run(cmd: &mut Command) -> Result<String, NetworkError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| NetworkError::Command {
        command: command.clone(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(NetworkError::Command {
            command,
            reason: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn file_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> NetworkError + '_ {
    move |e| NetworkError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read_json(path: &Path) -> Result<Value, NetworkError> {
    let raw = std::fs::read(path).map_err(|e| file_err(path)(&e))?;
    serde_json::from_slice(&raw).map_err(|e| file_err(path)(&e))
}

fn free_port() -> Result<u16, NetworkError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| NetworkError::Command {
        command: "bind 127.0.0.1:0".into(),
        reason: e.to_string(),
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| NetworkError::Command {
            command: "local_addr".into(),
            reason: e.to_string(),
        })
}

fn set(config: &mut String, path: &Path, from: &str, to: &str) -> Result<(), NetworkError> {
    if !config.contains(from) {
        return Err(NetworkError::Config {
            path: path.to_path_buf(),
            line: from.to_string(),
        });
    }
    *config = config.replacen(from, to, 1);
    Ok(())
}

/// Writes `validators` homes below `root` (`node0`, `node1`, …) for chain `chain_id` with `config`
/// as the genesis app state, and `root/network.json` listing them. `block_ms` is CometBFT's
/// `timeout_commit`.
pub fn write_network(
    cometbft: &Path,
    root: &Path,
    chain_id: &str,
    validators: usize,
    config: &Config,
    block_ms: u64,
) -> Result<Vec<NodeLayout>, NetworkError> {
    let mut nodes = Vec::with_capacity(validators);
    for i in 0..validators {
        let home = root.join(format!("node{i}"));
        run(Command::new(cometbft).args(["init", "--home"]).arg(&home))?;
        let id = run(Command::new(cometbft)
            .args(["show-node-id", "--home"])
            .arg(&home))?;
        nodes.push(NodeLayout {
            home,
            rpc: free_port()?,
            p2p: free_port()?,
            abci: free_port()?,
            id,
        });
    }
    let genesis_of = |n: &NodeLayout| n.home.join("config/genesis.json");
    let first = nodes.first().ok_or_else(|| NetworkError::Command {
        command: "write_network".into(),
        reason: "no validators".into(),
    })?;
    let mut genesis = read_json(&genesis_of(first))?;
    let mut vals = Vec::with_capacity(validators);
    for (i, n) in nodes.iter().enumerate() {
        let g = read_json(&genesis_of(n))?;
        let mut v = g
            .get("validators")
            .and_then(|v| v.get(0))
            .cloned()
            .ok_or_else(|| file_err(&genesis_of(n))(&"no validator"))?;
        v["name"] = Value::String(format!("validator-{i}"));
        vals.push(v);
    }
    genesis["chain_id"] = Value::String(chain_id.into());
    genesis["validators"] = Value::Array(vals);
    genesis["app_state"] = serde_json::to_value(config).map_err(|e| file_err(root)(&e))?;
    let genesis = serde_json::to_vec_pretty(&genesis).map_err(|e| file_err(root)(&e))?;
    let peers: Vec<String> = nodes
        .iter()
        .map(|n| format!("{}@127.0.0.1:{}", n.id, n.p2p))
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        let path = genesis_of(n);
        std::fs::write(&path, &genesis).map_err(|e| file_err(&path)(&e))?;
        let path = n.home.join("config/config.toml");
        let mut c = std::fs::read_to_string(&path).map_err(|e| file_err(&path)(&e))?;
        let others: Vec<&str> = peers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| p.as_str())
            .collect();
        for (from, to) in [
            (
                "proxy_app = \"tcp://127.0.0.1:26658\"".to_string(),
                format!("proxy_app = \"tcp://127.0.0.1:{}\"", n.abci),
            ),
            (
                "laddr = \"tcp://127.0.0.1:26657\"".to_string(),
                format!("laddr = \"tcp://127.0.0.1:{}\"", n.rpc),
            ),
            (
                "laddr = \"tcp://0.0.0.0:26656\"".to_string(),
                format!("laddr = \"tcp://127.0.0.1:{}\"", n.p2p),
            ),
            (
                "persistent_peers = \"\"".to_string(),
                format!("persistent_peers = \"{}\"", others.join(",")),
            ),
            (
                "addr_book_strict = true".to_string(),
                "addr_book_strict = false".to_string(),
            ),
            (
                "allow_duplicate_ip = false".to_string(),
                "allow_duplicate_ip = true".to_string(),
            ),
            (
                "timeout_commit = \"1s\"".to_string(),
                format!("timeout_commit = \"{block_ms}ms\""),
            ),
        ] {
            set(&mut c, &path, &from, &to)?;
        }
        std::fs::write(&path, c).map_err(|e| file_err(&path)(&e))?;
    }
    let manifest = root.join("network.json");
    let raw = serde_json::to_vec_pretty(&nodes).map_err(|e| file_err(&manifest)(&e))?;
    std::fs::write(&manifest, raw).map_err(|e| file_err(&manifest)(&e))?;
    Ok(nodes)
}

/// The processes of a started network (`<root>/pids.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningNode {
    /// The node's CometBFT home.
    pub home: PathBuf,
    /// Its `kms chain-app` process.
    pub app_pid: u32,
    /// Its `cometbft` process.
    pub node_pid: u32,
    /// Its RPC address.
    pub rpc: String,
}

const PIDS: &str = "pids.json";

fn log_file(path: &Path) -> Result<std::fs::File, NetworkError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| file_err(path)(&e))
}

fn spawn(cmd: &mut Command, log: &Path) -> Result<u32, NetworkError> {
    use std::os::unix::process::CommandExt;
    let out = log_file(log)?;
    let err = out.try_clone().map_err(|e| file_err(log)(&e))?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: the node outlives the terminal that started it.
        .process_group(0)
        .spawn()
        .map(|c| c.id())
        .map_err(|e| NetworkError::Command {
            command: format!("{cmd:?}"),
            reason: e.to_string(),
        })
}

/// Whether process `pid` is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            // The state follows the parenthesised command name.
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Starts the network written below `root`: for each node its `kms chain-app` (binary `kms`)
/// and its `cometbft start`, detached, logging to `app.log` and `node.log` in its home; records
/// them in `root/pids.json`. Refuses if that file names a live process.
pub fn start_network(
    root: &Path,
    cometbft: &Path,
    kms: &Path,
) -> Result<Vec<RunningNode>, NetworkError> {
    let pids = root.join(PIDS);
    if let Ok(raw) = std::fs::read(&pids) {
        let running: Vec<RunningNode> =
            serde_json::from_slice(&raw).map_err(|e| file_err(&pids)(&e))?;
        if running
            .iter()
            .any(|r| alive(r.app_pid) || alive(r.node_pid))
        {
            return Err(NetworkError::Command {
                command: "start".into(),
                reason: format!("already running (see {}); stop it first", pids.display()),
            });
        }
    }
    let manifest = root.join("network.json");
    let nodes: Vec<NodeLayout> =
        serde_json::from_value(read_json(&manifest)?).map_err(|e| file_err(&manifest)(&e))?;
    let mut running = Vec::with_capacity(nodes.len());
    for n in &nodes {
        let app_pid = spawn(
            Command::new(kms)
                .args(["chain-app", "--abci", &format!("127.0.0.1:{}", n.abci)])
                .arg("--data-dir")
                .arg(n.home.join("app")),
            &n.home.join("app.log"),
        )?;
        let node_pid = spawn(
            Command::new(cometbft)
                .args(["start", "--home"])
                .arg(&n.home),
            &n.home.join("node.log"),
        )?;
        running.push(RunningNode {
            home: n.home.clone(),
            app_pid,
            node_pid,
            rpc: format!("http://127.0.0.1:{}", n.rpc),
        });
    }
    let raw = serde_json::to_vec_pretty(&running).map_err(|e| file_err(&pids)(&e))?;
    std::fs::write(&pids, raw).map_err(|e| file_err(&pids)(&e))?;
    Ok(running)
}

/// Stops a network started by [`start_network`]: SIGTERM to every recorded process, waits up to
/// `grace` for them to exit, then SIGKILL; removes `pids.json`. Returns the PIDs stopped.
pub fn stop_network(root: &Path, grace: std::time::Duration) -> Result<Vec<u32>, NetworkError> {
    let path = root.join(PIDS);
    let raw = std::fs::read(&path).map_err(|e| file_err(&path)(&e))?;
    let running: Vec<RunningNode> =
        serde_json::from_slice(&raw).map_err(|e| file_err(&path)(&e))?;
    // CometBFT first (it stops calling the app), then the apps.
    let pids: Vec<u32> = running
        .iter()
        .map(|r| r.node_pid)
        .chain(running.iter().map(|r| r.app_pid))
        .filter(|p| alive(*p))
        .collect();
    let signal = |sig: &str, pids: &[u32]| {
        for p in pids {
            let _ = Command::new("kill").args([sig, &p.to_string()]).output();
        }
    };
    signal("-TERM", &pids);
    let deadline = std::time::Instant::now() + grace;
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stubborn: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    signal("-KILL", &stubborn);
    std::fs::remove_file(&path).map_err(|e| file_err(&path)(&e))?;
    Ok(pids)
}
