//! The KMS chain from the command line: the developer-mode devnet node, the ABCI app for a real
//! CometBFT node, and the light-client benchmark.

use crate::bench::Comparison;
use kms_chain_types::state::keys;
use kms_chain_types::tx::{KmsRequest, Msg};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_devnet::{Node, PersistentChain};
use kms_eip712::SigningKey;
use kms_light_client::{verify_request_approved, LightClient, Options};
use kms_types::{KeyGenRequest, ParamSetName};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tendermint::Time;

/// Developer-mode secrets of a devnet: the admin's and parties' chain keys (hex), written next to
/// the chain data so clients and parties in developer mode can use them.
#[derive(Serialize, Deserialize)]
pub struct DevKeys {
    /// Chain ID.
    pub chain_id: String,
    /// Config admin's secp256k1 key.
    pub admin: String,
    /// Party keys, index i + 1.
    pub parties: Vec<String>,
}

const DEV_KEYS: &str = "dev-keys.json";

/// Writes the developer keys of `setup` (admin and parties' chain keys, hex) to `path`.
fn write_dev_keys(path: &Path, chain_id: &str, setup: &DevSetup) -> Result<(), String> {
    let keys = DevKeys {
        chain_id: chain_id.to_string(),
        admin: hex::encode(setup.admin.key().to_bytes().as_slice()),
        parties: setup
            .parties
            .iter()
            .map(|p| hex::encode(p.key().to_bytes().as_slice()))
            .collect(),
    };
    let raw = serde_json::to_vec_pretty(&keys).map_err(|e| e.to_string())?;
    std::fs::write(path, raw).map_err(|e| e.to_string())
}

/// Writes a developer KMS chain for real CometBFT below `dir` (`kms chain-net init`): a
/// `validators`-node network ([`crate::network::write_network`]) whose config registers
/// `parties` developer parties with threshold `threshold`, their keys in `dir/dev-keys.json`.
/// Prints how to start each node.
#[allow(clippy::too_many_arguments)]
pub fn init_network(
    cometbft: &Path,
    dir: &Path,
    chain_id: &str,
    validators: usize,
    parties: usize,
    threshold: u32,
    block_ms: u64,
) -> Result<(), String> {
    let setup = DevSetup::new(chain_id, parties, threshold, 0, Time::now());
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let nodes = crate::network::write_network(
        cometbft,
        dir,
        chain_id,
        validators,
        &setup.genesis.app_config,
        block_ms,
    )
    .map_err(|e| e.to_string())?;
    write_dev_keys(&dir.join(DEV_KEYS), chain_id, &setup)?;
    println!(
        "{chain_id}: {validators} validators below {}, developer keys in {DEV_KEYS}; start each node with:",
        dir.display()
    );
    for n in &nodes {
        println!(
            "  kms chain-app --abci 127.0.0.1:{} --data-dir {}/app &  {} start --home {}   # RPC http://127.0.0.1:{}",
            n.abci,
            n.home.display(),
            cometbft.display(),
            n.home.display(),
            n.rpc
        );
    }
    Ok(())
}

/// Runs the devnet until interrupted.
pub async fn run_devnet(
    dir: &Path,
    chain_id: &str,
    rpc: SocketAddr,
    block_ms: u64,
    validators: usize,
    parties: usize,
    threshold: u32,
) -> Result<(), String> {
    let keys_path = dir.join(DEV_KEYS);
    let chain = PersistentChain::open_or_create(dir, || {
        let setup = DevSetup::new(chain_id, parties, threshold, validators, Time::now());
        let _ = write_dev_keys(&keys_path, chain_id, &setup);
        setup.genesis
    })
    .map_err(|e| e.to_string())?;
    let (id, height) = (chain.chain().chain_id().to_string(), chain.chain().height());
    let node = Node::new(chain);
    let (addr, server) = node.serve_rpc(rpc).await.map_err(|e| e.to_string())?;
    let producer = node.spawn_producer(Duration::from_millis(block_ms.max(10)));
    println!("devnet {id}: resuming at height {height}, RPC on http://{addr}");
    println!("developer keys (admin, parties): {}", keys_path.display());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = server => {}
        _ = producer => {}
    }
    Ok(())
}

/// Serves the ABCI app to a real CometBFT node (blocking); with `data_dir`, its committed state
/// persists in `<data_dir>/state.redb`.
pub fn run_abci(addr: &str, data_dir: Option<&std::path::Path>) -> Result<(), String> {
    let app = match data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let app = kms_chain_app::KmsApp::open(
                &dir.join("state.redb"),
                kms_chain_app::store::DEFAULT_KEEP_VERSIONS,
            )
            .map_err(|e| e.to_string())?;
            let (height, _) = app.last_committed();
            println!(
                "KMS chain app: state in {}, at height {height}",
                dir.display()
            );
            app
        }
        None => kms_chain_app::KmsApp::new(),
    };
    let server = tendermint_abci::ServerBuilder::default()
        .bind(addr, app)
        .map_err(|e| e.to_string())?;
    println!("KMS chain app: ABCI on {}", server.local_addr());
    server.listen().map_err(|e| e.to_string())
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

/// The enclave's cost of trusting one request: one skipping header update over 4 validators
/// plus one ICS23 proof of the request, against the irreducible part (4 ed25519 verifications of
/// the commit's votes) measured in the same run.
pub fn bench_light_client(runs: usize) -> Result<Vec<Comparison>, String> {
    let runs = runs.max(3);
    let chain_id = "kms-bench";
    let t0 = Time::now();
    let mut setup = DevSetup::new(chain_id, 4, 1, 4, t0);
    let mut m = ManualChain::new(setup.genesis.clone()).map_err(|e| e.to_string())?;
    let tick = |m: &mut ManualChain, txs: Vec<Vec<u8>>| m.block(txs).map(|(h, _)| h);
    tick(&mut m, vec![])?;
    let req = KmsRequest::KeyGen(KeyGenRequest {
        params: ParamSetName::Default,
        label: "bench".into(),
    });
    let id = req.request_id();
    let admin: &mut Wallet = &mut setup.admin;
    tick(
        &mut m,
        vec![
            admin.tx(chain_id, Msg::Faucet { amount: 100_000 }),
            admin.tx(
                chain_id,
                Msg::CreateApplication {
                    app_id: "bench".into(),
                    admin: admin.address(),
                },
            ),
        ],
    )?;
    // Some state so the proof has a realistic depth.
    let mut filler = Vec::new();
    for _ in 0..200 {
        let mut w = Wallet::new(SigningKey::random(&mut rand_core::OsRng));
        filler.push(w.tx(chain_id, Msg::Faucet { amount: 1 }));
    }
    tick(&mut m, filler)?;
    tick(
        &mut m,
        vec![admin.tx(
            chain_id,
            Msg::Request {
                app_id: "bench".into(),
                request: req,
            },
        )],
    )?;
    for _ in 0..20 {
        tick(&mut m, vec![])?;
    }
    let now = m.tick();
    let chain = &m.chain;
    let target = chain.height();
    let options = Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(3600),
        clock_drift: Duration::from_secs(5),
    };
    let first = chain.light_block(1).ok_or("no block 1")?;
    let (lc, _) = LightClient::from_genesis(chain_id, 1, chain.validators(), first, options, now)
        .map_err(|e| e.to_string())?;
    let untrusted = chain.light_block(target).ok_or("no target block")?;
    // The proof of the request in the state after h_req, against the header of target (whose app
    // hash commits to the state after target - 1). Query at target - 1.
    let q = chain.query("store", keys::request(&id), target as i64 - 1, true);
    let ops = tendermint::merkle::proof::ProofOps::try_from(q.proof_ops.clone().ok_or("no proof")?)
        .map_err(|e| e.to_string())?;

    let mut update = Vec::new();
    let mut proof = Vec::new();
    let mut sigs = Vec::new();
    let commit = &untrusted.signed_header.commit;
    let votes: Vec<(
        ed25519_consensus::VerificationKey,
        Vec<u8>,
        ed25519_consensus::Signature,
    )> = commit
        .signatures
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let tendermint::block::CommitSig::BlockIdFlagCommit {
                validator_address,
                timestamp,
                signature: Some(sig),
            } = s
            else {
                return None;
            };
            let v = untrusted.validators.validator(*validator_address)?;
            let vote = tendermint::Vote {
                vote_type: tendermint::vote::Type::Precommit,
                height: commit.height,
                round: commit.round,
                block_id: Some(commit.block_id),
                timestamp: Some(*timestamp),
                validator_address: *validator_address,
                validator_index: tendermint::vote::ValidatorIndex::try_from(i as u32).ok()?,
                signature: None,
                extension: Vec::new(),
                extension_signature: None,
            };
            let bytes = vote.into_signable_vec(chain.chain_id().clone());
            let vk = ed25519_consensus::VerificationKey::try_from(v.pub_key.to_bytes().as_slice())
                .ok()?;
            let sig = ed25519_consensus::Signature::try_from(sig.as_bytes()).ok()?;
            Some((vk, bytes, sig))
        })
        .collect();
    if votes.len() != 4 {
        return Err(format!("expected 4 votes, got {}", votes.len()));
    }
    for _ in 0..runs {
        let t = Instant::now();
        let header = lc.verify(&untrusted, now).map_err(|e| e.to_string())?;
        let mid = t.elapsed();
        let t2 = Instant::now();
        verify_request_approved(&header, &id, &q.value, &ops).map_err(|e| e.to_string())?;
        proof.push(t2.elapsed());
        update.push(mid);
        let t3 = Instant::now();
        for (vk, bytes, sig) in &votes {
            vk.verify(sig, bytes).map_err(|e| e.to_string())?;
        }
        sigs.push(t3.elapsed());
    }
    let both: Vec<Duration> = update.iter().zip(&proof).map(|(a, b)| *a + *b).collect();
    let base = median(sigs);
    let mk = |name: &str, v: Vec<Duration>| {
        let m = median(v);
        Comparison {
            name: name.into(),
            kms_s: m,
            baseline_s: base,
            baseline: "4 × ed25519 verify of the commit's votes".into(),
            ratio: m / base,
            runs,
        }
    };
    Ok(vec![
        mk("light client: skipping update 1 → N (4 validators)", update),
        mk(
            "light client: ICS23 proof of the request (jmt, ~200 accounts)",
            proof,
        ),
        mk("light client: update + proof (one request trusted)", both),
    ])
}
