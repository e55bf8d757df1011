//! The app's state on disk (issue 11): after a restart `Info` reports the last committed height
//! and app hash, queries answer as before; a crash between `FinalizeBlock` and `Commit` loses
//! that block only, and replaying it (as CometBFT's handshake does) gives the same app hash and
//! applies it once; a damaged record is refused, never served.

use kms_chain_app::persist::PersistError;
use kms_chain_app::KmsApp;
use kms_chain_types::state::{keys, Account};
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestQuery,
};

const CHAIN: &str = "persist-test";

fn finalize(app: &KmsApp, height: i64, txs: &[Vec<u8>]) -> Vec<u8> {
    let r = app.finalize_block(RequestFinalizeBlock {
        txs: txs.iter().map(|t| t.clone().into()).collect(),
        height,
        ..Default::default()
    });
    assert!(
        r.tx_results.iter().all(|t| t.code == 0),
        "{:?}",
        r.tx_results
    );
    r.app_hash.to_vec()
}

/// The account of `w` at `height` (0: the last committed).
fn balance(app: &KmsApp, w: &Wallet, height: i64) -> Account {
    let q = app.query(RequestQuery {
        data: keys::account(&w.address()).into(),
        path: "store".into(),
        height,
        prove: false,
    });
    kms_chain_types::codec::decode(&q.value).unwrap()
}

#[test]
fn committed_state_survives_restarts_and_uncommitted_blocks_replay_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let setup = DevSetup::new(CHAIN, 4, 1, 1, tendermint::Time::now());
    let mut w = Wallet::random();
    let (tx1, tx2, tx3) = (
        w.tx(CHAIN, Msg::Faucet { amount: 1_000 }),
        w.tx(CHAIN, Msg::Faucet { amount: 2_000 }),
        w.tx(CHAIN, Msg::Faucet { amount: 4_000 }),
    );

    // A reference run in memory: three blocks.
    let reference = KmsApp::new();
    let init = RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: KmsApp::genesis_app_state(&setup.genesis.app_config).into(),
        initial_height: 1,
        ..Default::default()
    };
    reference.init_chain(init.clone());
    let mut want = Vec::new();
    for (h, tx) in [(1, &tx1), (2, &tx2), (3, &tx3)] {
        want.push(finalize(&reference, h, std::slice::from_ref(tx)));
        reference.commit();
    }

    // The persistent app: two committed blocks, then a crash after FinalizeBlock of the third.
    {
        let app = KmsApp::open(&path, 100).unwrap();
        assert_eq!(app.info(RequestInfo::default()).last_block_height, 0);
        app.init_chain(init);
        assert_eq!(finalize(&app, 1, std::slice::from_ref(&tx1)), want[0]);
        app.commit();
        assert_eq!(finalize(&app, 2, std::slice::from_ref(&tx2)), want[1]);
        app.commit();
        assert_eq!(finalize(&app, 3, std::slice::from_ref(&tx3)), want[2]);
        // killed here: no Commit for height 3
    }
    let app = KmsApp::open(&path, 100).unwrap();
    let info = app.info(RequestInfo::default());
    assert_eq!(
        info.last_block_height, 2,
        "the uncommitted block is not there"
    );
    assert_eq!(info.last_block_app_hash.to_vec(), want[1]);
    assert_eq!(balance(&app, &w, 0), balance(&reference, &w, 2));
    // CometBFT's handshake replays block 3: same hash, applied once.
    assert_eq!(finalize(&app, 3, std::slice::from_ref(&tx3)), want[2]);
    app.commit();
    drop(app);
    let app = KmsApp::open(&path, 100).unwrap();
    let info = app.info(RequestInfo::default());
    assert_eq!(info.last_block_height, 3);
    assert_eq!(info.last_block_app_hash.to_vec(), want[2]);
    assert_eq!(balance(&app, &w, 0), balance(&reference, &w, 0));
    // The chain ID came back too: a transaction for it is accepted.
    let tx4 = w.tx(CHAIN, Msg::Faucet { amount: 1 });
    finalize(&app, 4, &[tx4]);
}

#[test]
fn a_damaged_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    std::fs::write(&path, b"not a redb file at all, just bytes").unwrap();
    assert!(matches!(KmsApp::open(&path, 10), Err(PersistError::Db(_))));
}
