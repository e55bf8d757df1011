//! `kms bench-consensus`: the KMS chain under 4 real CometBFT validators against the devnet at
//! the same block time, on the same workload, in the same run.
//!
//! * **Throughput**: `txs` signed transactions from distinct fresh accounts (faucet requests:
//!   CheckTx, then FinalizeBlock with a state write each) are broadcast with `broadcast_tx_sync`
//!   (round robin over the nodes); the timed region runs from the first broadcast until the
//!   last transaction is found committed (`tx` by hash, polled every 50 ms). Reported as seconds
//!   per transaction (1 / TPS), real / devnet.
//! * **Latency**: one transaction at a time with `broadcast_tx_commit`, timed from the call to
//!   its return (the transaction committed); median of `latency_runs`.

use crate::bench::Comparison;
use crate::network::{start_network, stop_network, write_network};
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use kms_devnet::{Node, PersistentChain};
use std::path::Path;
use std::time::{Duration, Instant};
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient};

const CHAIN: &str = "kms-bench";

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Network setup.
    #[error("network: {0}")]
    Network(#[from] crate::network::NetworkError),
    /// RPC.
    #[error("rpc: {0}")]
    Rpc(#[from] tendermint_rpc::Error),
    /// The devnet.
    #[error("devnet: {0}")]
    Devnet(String),
    /// A transaction was refused or never committed.
    #[error("transaction: {0}")]
    Tx(String),
}

fn faucet_txs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| Wallet::random().tx(CHAIN, Msg::Faucet { amount: 1_000 }))
        .collect()
}

async fn wait_height(c: &HttpClient, h: u64, within: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + within;
    while c
        .status()
        .await
        .map(|s| s.sync_info.latest_block_height.value())
        .unwrap_or(0)
        < h
    {
        if Instant::now() > deadline {
            return Err(BenchError::Tx(format!("height {h} not reached")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Broadcasts `txs` round robin over `clients` and returns the time until all are committed.
async fn throughput(clients: &[HttpClient], txs: Vec<Vec<u8>>) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let mut hashes = Vec::with_capacity(txs.len());
    for (i, tx) in txs.into_iter().enumerate() {
        let c = &clients[i % clients.len()];
        let r = c.broadcast_tx_sync(tx).await?;
        if r.code.is_err() {
            return Err(BenchError::Tx(format!(
                "CheckTx {}: {}",
                r.code.value(),
                r.log
            )));
        }
        hashes.push(r.hash);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut pending = hashes;
    while let Some(h) = pending.last().copied() {
        if clients[0].tx(h, false).await.is_ok() {
            pending.pop();
            continue;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Tx(format!("{} never committed", pending.len())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(start.elapsed())
}

async fn latency(c: &HttpClient, runs: usize) -> Result<Vec<Duration>, BenchError> {
    let mut out = Vec::with_capacity(runs);
    for tx in faucet_txs(runs) {
        let t = Instant::now();
        let r = c.broadcast_tx_commit(tx).await?;
        if r.check_tx.code.is_err() || r.tx_result.code.is_err() {
            return Err(BenchError::Tx(format!(
                "{} / {}",
                r.check_tx.log, r.tx_result.log
            )));
        }
        out.push(t.elapsed());
    }
    Ok(out)
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, Duration::as_secs_f64)
}

/// Runs both workloads on a 4-validator CometBFT network (`cometbft`, apps run by `kms`) and on
/// the devnet, both with `block_ms` between blocks.
pub async fn run(
    cometbft: &Path,
    kms: &Path,
    txs: usize,
    latency_runs: usize,
    block_ms: u64,
) -> Result<Vec<Comparison>, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::Devnet(e.to_string()))?;
    let setup = DevSetup::new(CHAIN, 4, 1, 4, Time::now());

    // The devnet: in process, RPC on loopback, a block every block_ms.
    let chain =
        PersistentChain::open_or_create(&dir.path().join("devnet"), || setup.genesis.clone())
            .map_err(|e| BenchError::Devnet(e.to_string()))?;
    let node = Node::new(chain);
    let (addr, server) = node
        .serve_rpc(([127, 0, 0, 1], 0).into())
        .await
        .map_err(|e| BenchError::Devnet(e.to_string()))?;
    let producer = node.spawn_producer(Duration::from_millis(block_ms));
    let devnet = HttpClient::new(format!("http://{addr}").as_str())?;
    wait_height(&devnet, 2, Duration::from_secs(30)).await?;
    let dev_tp = throughput(std::slice::from_ref(&devnet), faucet_txs(txs)).await?;
    let dev_lat = latency(&devnet, latency_runs).await?;
    producer.abort();
    server.abort();

    // Real CometBFT: 4 validators, each with its own app process.
    let net = dir.path().join("net");
    write_network(
        cometbft,
        &net,
        CHAIN,
        4,
        &setup.genesis.app_config,
        block_ms,
    )?;
    let running = start_network(&net, cometbft, kms)?;
    let result = async {
        let clients = running
            .iter()
            .map(|r| HttpClient::new(r.rpc.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        for c in &clients {
            wait_height(c, 2, Duration::from_secs(90)).await?;
        }
        let real_tp = throughput(&clients, faucet_txs(txs)).await?;
        let real_lat = latency(&clients[0], latency_runs).await?;
        Ok::<_, BenchError>((real_tp, real_lat))
    }
    .await;
    stop_network(&net, Duration::from_secs(10))?;
    let (real_tp, real_lat) = result?;

    let per_tx = |d: Duration| d.as_secs_f64() / txs.max(1) as f64;
    let (lat_real, lat_dev) = (median(real_lat), median(dev_lat));
    Ok(vec![
        Comparison {
            name: format!("{txs} transactions, broadcast to committed, per transaction (1/TPS)"),
            kms_s: per_tx(real_tp),
            baseline_s: per_tx(dev_tp),
            baseline: format!("devnet, {block_ms} ms blocks"),
            ratio: per_tx(real_tp) / per_tx(dev_tp).max(f64::MIN_POSITIVE),
            runs: 1,
        },
        Comparison {
            name: "one transaction, broadcast_tx_commit latency (median)".into(),
            kms_s: lat_real,
            baseline_s: lat_dev,
            baseline: format!("devnet, {block_ms} ms blocks"),
            ratio: lat_real / lat_dev.max(f64::MIN_POSITIVE),
            runs: latency_runs,
        },
    ])
}
