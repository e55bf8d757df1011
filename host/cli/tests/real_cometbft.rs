//! The KMS chain under real CometBFT (issue 11, first slice): four `cometbft` validator processes
//! in consensus on loopback, each with its own `kms chain-app` process as ABCI application. A
//! funded account's transactions are finalized by the four; a light client anchored at the
//! genesis this test wrote verifies, by itself, headers committed by the four independent
//! validators, the ASC's state proof and the inclusion of a transaction; a validator killed
//! mid-run does not stop the chain (3 of 4 voting power > 2/3); an app process killed with its
//! node comes back from its state on disk, CometBFT's handshake replays what it missed, and it
//! reaches the same app hash as the others; with two validators down (half the power) the chain
//! halts and a waiting transaction is not finalized until they are back, then it is.
//!
//! `cometbft` comes from `scripts/install-cometbft` (pinned, cached outside the clone);
//! `scripts/test` installs it when missing, or set `COMETBFT` to a binary.

mod support;

use kms_chain_types::state::keys;
use kms_chain_types::tx::Msg;
use kms_cli::network::{write_network, NodeLayout as Node};
use kms_devnet::dev::{DevSetup, Wallet};
use kms_light_client::tx_proof::verify_tx_inclusion;
use kms_light_client::{LightClient, Options};
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{
    cometbft, height, light_block, rpc_url, run, spawn_app, spawn_validator, wait_for_height,
    Processes, ONE_NETWORK_AT_A_TIME,
};
use tendermint::block::Height;
use tendermint::Time;
use tendermint_proto::v0_38::abci as v038;
use tendermint_rpc::{Client, HttpClient};

const CHAIN: &str = "kms-real-cometbft";
const N: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_real_validators_finalize_kms_transactions() {
    let bin = cometbft();
    let version = run(Command::new(&bin).arg("version"));
    assert!(version.trim().starts_with("0.38."), "CometBFT {version}");
    let dir = tempfile::tempdir().unwrap();
    let setup = DevSetup::new(CHAIN, 4, 1, 0, Time::now());
    let nodes = write_network(&bin, dir.path(), CHAIN, N, &setup.genesis.app_config, 300).unwrap();

    let _alone = ONE_NETWORK_AT_A_TIME.lock().await;
    // Four application processes (state on disk), then the four validators that drive them.
    let app = spawn_app;
    let validator = |n: &Node| spawn_validator(&bin, n);
    let mut apps = Processes(nodes.iter().map(|n| Some(app(n))).collect());
    let mut validators = Processes(nodes.iter().map(|n| Some(validator(n))).collect());
    let clients: Vec<HttpClient> = nodes
        .iter()
        .map(|n| HttpClient::new(rpc_url(n).as_str()).unwrap())
        .collect();
    for c in &clients {
        wait_for_height(c, 3, Duration::from_secs(90)).await;
    }

    // A funded account's transaction, finalized by the four.
    let mut user = Wallet::random();
    let tx = user.tx(CHAIN, Msg::Faucet { amount: 7_000 });
    let r = clients[1].broadcast_tx_commit(tx.clone()).await.unwrap();
    assert!(r.check_tx.code.is_ok(), "CheckTx: {}", r.check_tx.log);
    assert!(
        r.tx_result.code.is_ok(),
        "FinalizeBlock: {}",
        r.tx_result.log
    );
    let h_tx = r.height.value();
    // A replay of the same signed transaction is refused (its nonce is spent), whether CometBFT's
    // mempool cache or the app's CheckTx says so.
    if let Ok(replay) = clients[2].broadcast_tx_sync(tx.clone()).await {
        assert!(replay.code.is_err(), "a replayed transaction was accepted");
    }

    // The enclave's view: a light client anchored at the genesis written above verifies, by
    // itself, a header committed by the four validators, the tx's inclusion, and the account's
    // state in the app hash.
    let genesis: tendermint::Genesis<Value> =
        serde_json::from_slice(&std::fs::read(nodes[0].home.join("config/genesis.json")).unwrap())
            .unwrap();
    assert_eq!(genesis.validators.len(), 4);
    let genesis_set = tendermint::validator::Set::without_proposer(genesis.validators.clone());
    let now = Time::now();
    let options = Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(3600),
        clock_drift: Duration::from_secs(10),
    };
    let (mut lc, _) = LightClient::from_genesis(
        CHAIN,
        1,
        &genesis_set,
        light_block(&rpc_url(&nodes[0]), 1).await,
        options,
        now,
    )
    .unwrap();
    wait_for_height(&clients[0], h_tx + 1, Duration::from_secs(30)).await;
    let block_tx = light_block(&rpc_url(&nodes[3]), h_tx).await;
    let signers = block_tx
        .signed_header
        .commit
        .signatures
        .iter()
        .filter(|s| s.is_commit())
        .count();
    assert!(
        signers >= 3,
        "commit of height {h_tx} has {signers} signatures"
    );
    let header_tx = lc.update(block_tx, now).unwrap();
    let included = clients[0].tx(r.hash, true).await.unwrap();
    assert_eq!(included.tx, tx);
    verify_tx_inclusion(&header_tx, &included.tx, &included.proof.unwrap()).unwrap();
    let header_next = lc
        .update(light_block(&rpc_url(&nodes[2]), h_tx + 1).await, now)
        .unwrap();
    let q = clients[0]
        .abci_query(
            Some("store".into()),
            keys::account(&user.address()),
            Some(Height::try_from(h_tx).unwrap()),
            true,
        )
        .await
        .unwrap();
    let ops = q.proof.expect("a state proof");
    kms_light_client::state_proof::verify_membership(
        &header_next,
        &kms_light_client::state_proof::decode_proof_ops(&ops, &keys::account(&user.address()))
            .unwrap(),
        &keys::account(&user.address()),
        &q.value,
    )
    .unwrap();

    // One validator (and its app) down: 3 of 4 still make blocks, and transactions finalize.
    validators.kill(3);
    apps.kill(3);
    let before = height(&clients[0]).await;
    wait_for_height(&clients[0], before + 3, Duration::from_secs(60)).await;
    let r = clients[0]
        .broadcast_tx_commit(user.tx(CHAIN, Msg::Faucet { amount: 1 }))
        .await
        .unwrap();
    assert!(r.tx_result.code.is_ok(), "{}", r.tx_result.log);
    // Every live node has the same app hash at a common height.
    let common = r.height.value() + 1;
    let mut hashes = Vec::new();
    for c in &clients[..3] {
        wait_for_height(c, common, Duration::from_secs(30)).await;
        let b = c
            .block(Height::try_from(common).unwrap())
            .await
            .unwrap()
            .block;
        hashes.push(b.header.app_hash);
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");

    // Node 3 comes back: its app reopens its state at the height it was killed, CometBFT's
    // handshake replays what the app lacks, block sync brings the rest, and it agrees.
    apps.0[3] = Some(app(&nodes[3]));
    validators.0[3] = Some(validator(&nodes[3]));
    let target = height(&clients[0]).await + 2;
    wait_for_height(&clients[3], target, Duration::from_secs(90)).await;
    let mut at_target = Vec::new();
    for c in [&clients[0], &clients[3]] {
        // (Node 3 may commit a block a moment before node 0 does.)
        wait_for_height(c, target, Duration::from_secs(30)).await;
        let b = c
            .block(Height::try_from(target).unwrap())
            .await
            .unwrap()
            .block;
        at_target.push(b.header.app_hash);
    }
    assert_eq!(at_target[0], at_target[1]);
    // It answers queries from that state: the account funded before the kill.
    let q = clients[3]
        .abci_query(
            Some("store".into()),
            keys::account(&user.address()),
            None,
            false,
        )
        .await
        .unwrap();
    assert!(!q.value.is_empty(), "the restarted node lost the account");

    // Two validators down (half the power, < 2/3): the chain halts and a transaction waits in
    // the mempool; nothing is finalized without them. Back up, the chain resumes and commits it.
    for i in [1, 2] {
        validators.kill(i);
        apps.kill(i);
    }
    let stalled = height(&clients[0]).await;
    let waiting = user.tx(
        CHAIN,
        Msg::Transfer {
            to: [9; 20],
            amount: 1,
        },
    );
    let sync = clients[0].broadcast_tx_sync(waiting).await.unwrap();
    assert!(sync.code.is_ok(), "CheckTx: {}", sync.log);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = height(&clients[0]).await;
    assert!(
        during <= stalled + 1,
        "2 of 4 validators made blocks: {stalled} -> {during}"
    );
    assert!(
        clients[0].tx(sync.hash, false).await.is_err(),
        "a transaction was finalized while the chain had no quorum"
    );
    for i in [1, 2] {
        apps.0[i] = Some(app(&nodes[i]));
        validators.0[i] = Some(validator(&nodes[i]));
    }
    wait_for_height(&clients[0], during + 2, Duration::from_secs(90)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        if let Ok(t) = clients[0].tx(sync.hash, false).await {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the waiting transaction was never committed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(done.tx_result.code.is_ok(), "{}", done.tx_result.log);
}

/// A validator whose app adds a transaction that is not one (garbage) to every block it
/// proposes: a Byzantine proposer.
#[derive(Clone)]
struct JunkProposer(kms_chain_app::KmsApp);

/// The junk the Byzantine proposer adds.
const JUNK: &[u8] = b"not a KMS transaction";

impl tendermint_abci::Application for JunkProposer {
    fn info(&self, r: v038::RequestInfo) -> v038::ResponseInfo {
        self.0.info(r)
    }
    fn init_chain(&self, r: v038::RequestInitChain) -> v038::ResponseInitChain {
        self.0.init_chain(r)
    }
    fn check_tx(&self, r: v038::RequestCheckTx) -> v038::ResponseCheckTx {
        self.0.check_tx(r)
    }
    fn query(&self, r: v038::RequestQuery) -> v038::ResponseQuery {
        self.0.query(r)
    }
    fn prepare_proposal(&self, r: v038::RequestPrepareProposal) -> v038::ResponsePrepareProposal {
        let mut txs = r.txs;
        txs.push(JUNK.to_vec().into());
        v038::ResponsePrepareProposal { txs }
    }
    fn process_proposal(&self, r: v038::RequestProcessProposal) -> v038::ResponseProcessProposal {
        self.0.process_proposal(r)
    }
    fn finalize_block(&self, r: v038::RequestFinalizeBlock) -> v038::ResponseFinalizeBlock {
        self.0.finalize_block(r)
    }
    fn commit(&self) -> v038::ResponseCommit {
        self.0.commit()
    }
}

/// Node 0 proposes blocks with an invalid transaction; the other three reject them in
/// ProcessProposal, so the chain goes on with the others' proposals, no committed block was
/// proposed by node 0, and the junk is never in a block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_with_an_invalid_transaction_is_rejected() {
    let _alone = ONE_NETWORK_AT_A_TIME.lock().await;
    let bin = cometbft();
    let dir = tempfile::tempdir().unwrap();
    let setup = DevSetup::new(CHAIN, 4, 1, 0, Time::now());
    let nodes = write_network(&bin, dir.path(), CHAIN, N, &setup.genesis.app_config, 300).unwrap();
    // Node 0's app runs here, behind the junk-adding wrapper; the others are honest processes.
    let server = tendermint_abci::ServerBuilder::default()
        .bind(
            format!("127.0.0.1:{}", nodes[0].abci),
            JunkProposer(kms_chain_app::KmsApp::new()),
        )
        .unwrap();
    std::thread::spawn(move || {
        let _ = server.listen();
    });
    let _apps = Processes(nodes[1..].iter().map(|n| Some(spawn_app(n))).collect());
    let _validators = Processes(
        nodes
            .iter()
            .map(|n| Some(spawn_validator(&bin, n)))
            .collect(),
    );
    let client = HttpClient::new(format!("http://127.0.0.1:{}", nodes[1].rpc).as_str()).unwrap();
    let top = wait_for_height(&client, 12, Duration::from_secs(120)).await;
    let genesis: tendermint::Genesis<Value> =
        serde_json::from_slice(&std::fs::read(nodes[0].home.join("config/genesis.json")).unwrap())
            .unwrap();
    let byzantine = genesis.validators[0].address;
    let mut proposers = std::collections::BTreeSet::new();
    for h in 1..=top {
        let block = client
            .block(Height::try_from(h).unwrap())
            .await
            .unwrap()
            .block;
        assert!(
            !block.data.iter().any(|t| t.as_slice() == JUNK),
            "the junk transaction was committed at height {h}"
        );
        proposers.insert(block.header.proposer_address);
    }
    assert!(
        !proposers.contains(&byzantine),
        "a block proposed by the Byzantine validator was committed"
    );
    assert!(proposers.len() >= 2, "proposers {proposers:?}");
}

/// `kms chain-net` writes a network, `kms chain-up` starts it (detached processes that make
/// blocks, listed in `pids.json`) and refuses to start it twice, `kms chain-down` stops every
/// process it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_up_starts_the_written_network_and_chain_down_stops_it() {
    let bin = cometbft();
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let kms = env!("CARGO_BIN_EXE_kms");
    let cometbft_arg = bin.to_str().unwrap();
    run(Command::new(kms)
        .args([
            "chain-net",
            "--chain-id",
            CHAIN,
            "--block-ms",
            "300",
            "--cometbft",
            cometbft_arg,
        ])
        .arg("--dir")
        .arg(&net));

    let _alone = ONE_NETWORK_AT_A_TIME.lock().await;
    let up = run(Command::new(kms)
        .args(["chain-up", "--cometbft", cometbft_arg])
        .arg("--dir")
        .arg(&net));
    let running: Vec<kms_cli::network::RunningNode> =
        serde_json::from_slice(&std::fs::read(net.join("pids.json")).unwrap()).unwrap();
    // Should the test fail from here on, the processes still go.
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = kms_cli::network::stop_network(&self.0, Duration::from_secs(5));
        }
    }
    let down_guard = Down(net.clone());
    assert_eq!(running.len(), N, "{up}");
    for r in &running {
        assert!(up.contains(&r.rpc), "{up}");
        assert!(kms_cli::network::alive(r.app_pid) && kms_cli::network::alive(r.node_pid));
        let c = HttpClient::new(r.rpc.as_str()).unwrap();
        wait_for_height(&c, 3, Duration::from_secs(30)).await;
    }
    let again = Command::new(kms)
        .args(["chain-up", "--cometbft", cometbft_arg])
        .arg("--dir")
        .arg(&net)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a second chain-up must refuse");

    let down = run(Command::new(kms).arg("chain-down").arg("--dir").arg(&net));
    assert!(down.contains(&format!("stopped {}", 2 * N)), "{down}");
    std::mem::forget(down_guard);
    for r in &running {
        assert!(!kms_cli::network::alive(r.app_pid) && !kms_cli::network::alive(r.node_pid));
    }
    assert!(!net.join("pids.json").exists());
}
