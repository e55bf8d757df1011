//! `kms bench-consensus`: the KMS chain under 4 real CometBFT validators against the devnet at
//! the same block time, on the same workload, in the same run.
//!
//! * **Throughput**: `txs` signed transactions from distinct fresh accounts (faucet requests:
//!   CheckTx, then FinalizeBlock with a state write each) are broadcast with `broadcast_tx_sync`
//!   (round robin over the nodes); the timed region runs from the first broadcast until the
//!   last transaction is found committed (`tx` by hash, polled every 50 ms). Reported as seconds
//!   per transaction (1 / TPS), real / devnet.
//! * **Request throughput**: the same, with public-decryption *requests* to the ASC (8 funded
//!   accounts, each with its ACL'd handles on a registered key set; each account's requests go,
//!   in nonce order, to one node). Set-up (key set registered with material from two parties,
//!   application, ACL grants, funding) is outside the timed region. No party answers: this is
//!   the chain's work (CheckTx, gossip, FinalizeBlock with the ISC check, the fee escrow and the
//!   request record).
//! * **Latency**: one transaction at a time with `broadcast_tx_commit`, timed from the call to
//!   its return (the transaction committed); median of `latency_runs`.
//! * **Request to completion**: with the 4 parties running as processes (enclave + host each,
//!   test parameters, insecure dealer), one public decryption at a time: its ACL grant committed
//!   first (not timed), then the request, timed from its broadcast until the chain shows it
//!   complete (polled every 20 ms); median of `latency_runs`. On real CometBFT every host follows
//!   node 0.

use crate::bench::Comparison;
use crate::network::{start_network, stop_network, write_network};
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use kms_devnet::{Node, PersistentChain};
use std::path::{Path, PathBuf};
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

/// Requests per account in the request-throughput run (the devnet's mempool holds at most 16
/// pending transactions per account).
const PER_ACCOUNT: usize = 15;

/// The request workload: set-up phases (each committed before the next, through one node) and
/// the timed requests (account `i`'s at positions `i, i + accounts, …`).
fn request_workload(setup: &mut DevSetup, requests: usize) -> (Vec<Vec<Vec<u8>>>, Vec<Vec<u8>>) {
    use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem};
    use kms_types::{CiphertextRef, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRef};
    let domain = setup.genesis.app_config.eip712_domain.clone();
    let keygen = KmsRequest::KeyGen(KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "bench".into(),
    });
    let key_id = keygen.request_id();
    let mut app_admin = Wallet::random();
    let phase1 = vec![
        setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
        setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "bench".into(),
                admin: app_admin.address(),
            },
        ),
        setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "bench".into(),
                request: keygen,
            },
        ),
    ];
    // The key set registered by t + 1 parties' material (no party process runs here).
    let phase2 = setup
        .parties
        .iter_mut()
        .take(2)
        .filter_map(|p| {
            let item =
                MaterialItem::signed(p.key(), &domain, &key_id, "PublicKey", [7; 32]).ok()?;
            Some(p.tx(
                CHAIN,
                Msg::Fulfill {
                    request_id: key_id,
                    fulfillment: Fulfillment::Material { items: vec![item] },
                },
            ))
        })
        .collect();
    let per = PER_ACCOUNT;
    let n_accounts = requests.div_ceil(per).max(1);
    let mut accounts: Vec<Wallet> = (0..n_accounts).map(|_| Wallet::random()).collect();
    let handles: Vec<Vec<[u8; 32]>> = (0..n_accounts)
        .map(|a| {
            (0..per)
                .map(|i| kms_types::sha3_256(&[a.to_be_bytes(), i.to_be_bytes()].concat()))
                .collect()
        })
        .collect();
    // Account funding in one phase (distinct senders); the application admin's grants in
    // phases of at most PER_ACCOUNT (one sender).
    let mut phases = vec![phase1, phase2];
    let mut funding = vec![app_admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 })];
    for w in accounts.iter_mut() {
        funding.push(w.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }));
    }
    phases.push(funding);
    let grants: Vec<Vec<u8>> = accounts
        .iter()
        .zip(&handles)
        .map(|(w, hs)| {
            app_admin.tx(
                CHAIN,
                Msg::AclGrant {
                    app_id: "bench".into(),
                    handles: hs.clone(),
                    addresses: vec![w.address()],
                },
            )
        })
        .collect();
    phases.extend(grants.chunks(PER_ACCOUNT).map(<[Vec<u8>]>::to_vec));
    let mut timed = Vec::with_capacity(per * n_accounts);
    for i in 0..per {
        for (w, hs) in accounts.iter_mut().zip(&handles) {
            if timed.len() == requests {
                break;
            }
            timed.push(w.tx(
                CHAIN,
                Msg::Request {
                    app_id: "bench".into(),
                    request: KmsRequest::PublicDecrypt(PublicDecryptionRef {
                        key_id,
                        ciphertexts: vec![CiphertextRef {
                            fhe_type: FheType::Uint8,
                            digest: hs[i],
                        }],
                    }),
                },
            ));
        }
    }
    (phases, timed)
}

/// Commits each phase through `c` before the next.
async fn set_up(c: &HttpClient, phases: Vec<Vec<Vec<u8>>>) -> Result<(), BenchError> {
    for phase in phases {
        throughput(std::slice::from_ref(c), phase).await?;
    }
    Ok(())
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
        if let Ok(r) = clients[0].tx(h, false).await {
            // Counted only if it succeeded (CheckTx executes as FinalizeBlock does, so an
            // accepted transaction fails only if something changed in between).
            if r.tx_result.code.is_err() {
                return Err(BenchError::Tx(format!(
                    "failed in its block: {}",
                    r.tx_result.log
                )));
            }
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

/// The same chain keys (admin, parties) with fresh nonces, for a second chain from the same
/// genesis.
fn setup_clone(setup: &DevSetup) -> DevSetup {
    let again = |w: &Wallet| {
        kms_eip712::SigningKey::from_bytes(&w.key().to_bytes())
            .map(Wallet::new)
            .unwrap_or_else(|_| Wallet::random())
    };
    DevSetup {
        admin: again(&setup.admin),
        parties: setup.parties.iter().map(again).collect(),
        genesis: setup.genesis.clone(),
    }
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, Duration::as_secs_f64)
}

/// Request-to-completion latencies of `runs` public decryptions on a started network.
async fn completion_latency(
    net: &mut crate::demo_threshold::LocalNetwork,
    dealt: &crate::demo_threshold::DealtKeySet,
    runs: usize,
) -> Result<Vec<Duration>, BenchError> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let value = (i % 200) as u128 + 1;
        let ct = dealt
            .encrypt_uint8(value)
            .map_err(|e| BenchError::Tx(e.to_string()))?;
        let (d, plaintext) = net
            .timed_public_decryption(ct)
            .await
            .map_err(|e| BenchError::Tx(e.to_string()))?;
        if plaintext != value.to_string() {
            return Err(BenchError::Tx(format!(
                "decrypted {plaintext}, encrypted {value}"
            )));
        }
        out.push(d);
    }
    Ok(out)
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
    let mut dev_setup = setup_clone(&setup);
    let (phases, requests) = request_workload(&mut dev_setup, txs);
    set_up(&devnet, phases).await?;
    let dev_req = throughput(std::slice::from_ref(&devnet), requests).await?;
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
        let mut real_setup = setup_clone(&setup);
        let (phases, requests) = request_workload(&mut real_setup, txs);
        let first = clients
            .first()
            .ok_or_else(|| BenchError::Tx("no node".into()))?;
        set_up(first, phases).await?;
        let real_req = throughput(&clients, requests).await?;
        let real_lat = latency(first, latency_runs).await?;
        Ok::<_, BenchError>((real_tp, real_req, real_lat))
    }
    .await;
    stop_network(&net, Duration::from_secs(10))?;
    let (real_tp, real_req, real_lat) = result?;

    // Request to completion, with the parties as processes, on a devnet and on real CometBFT.
    let dealt = crate::demo_threshold::DealtKeySet::test("bench-completion")
        .map_err(|e| BenchError::Tx(e.to_string()))?;
    let inputs = |dir: PathBuf| dealt.inputs(kms, dir, Duration::from_millis(block_ms));
    let mut quiet = |_: &str| {};
    let dev_dir = dir.path().join("devnet-parties");
    let dev_done = {
        let mut net = dealt
            .start_network(kms, dev_dir, Duration::from_millis(block_ms), 1)
            .await
            .map_err(|e| BenchError::Devnet(e.to_string()))?;
        completion_latency(&mut net, &dealt, latency_runs).await?
    };
    let ids =
        crate::demo_threshold::Identities::new().map_err(|e| BenchError::Devnet(e.to_string()))?;
    let net2 = dir.path().join("net-parties");
    let nodes = write_network(
        cometbft,
        &net2,
        crate::demo_threshold::Identities::CHAIN,
        4,
        &ids.setup.genesis.app_config,
        block_ms,
    )?;
    start_network(&net2, cometbft, kms)?;
    let real_done = async {
        let rpc0 = nodes
            .first()
            .map(|n| format!("http://127.0.0.1:{}", n.rpc))
            .ok_or_else(|| BenchError::Tx("no node".into()))?;
        let c = HttpClient::new(rpc0.as_str())?;
        wait_height(&c, 2, Duration::from_secs(90)).await?;
        let genesis_path = nodes
            .first()
            .map(|n| n.home.join("config/genesis.json"))
            .ok_or_else(|| BenchError::Tx("no node".into()))?;
        let genesis: tendermint::Genesis<serde_json::Value> = serde_json::from_slice(
            &std::fs::read(&genesis_path).map_err(|e| BenchError::Tx(e.to_string()))?,
        )
        .map_err(|e| BenchError::Tx(e.to_string()))?;
        let validators =
            serde_json::to_vec(&genesis.validators).map_err(|e| BenchError::Tx(e.to_string()))?;
        let real_dir = dir.path().join("real-parties");
        let mut net = crate::demo_threshold::LocalNetwork::attach(
            &rpc0,
            Vec::new(),
            ids,
            validators,
            inputs(real_dir),
            &mut quiet,
        )
        .await
        .map_err(|e| BenchError::Tx(e.to_string()))?;
        completion_latency(&mut net, &dealt, latency_runs).await
    }
    .await;
    stop_network(&net2, Duration::from_secs(10))?;
    let real_done = real_done?;
    let (done_real, done_dev) = (median(real_done), median(dev_done));

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
            name: format!("{txs} public-decryption requests, broadcast to committed, per request"),
            kms_s: per_tx(real_req),
            baseline_s: per_tx(dev_req),
            baseline: format!("devnet, {block_ms} ms blocks"),
            ratio: per_tx(real_req) / per_tx(dev_req).max(f64::MIN_POSITIVE),
            runs: 1,
        },
        Comparison {
            name: "public decryption by the 4 party processes, request to completion (median)"
                .into(),
            kms_s: done_real,
            baseline_s: done_dev,
            baseline: format!("devnet, {block_ms} ms blocks"),
            ratio: done_real / done_dev.max(f64::MIN_POSITIVE),
            runs: latency_runs,
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
