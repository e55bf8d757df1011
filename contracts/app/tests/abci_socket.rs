//! The app over the ABCI socket protocol, as a CometBFT node drives it (InitChain, CheckTx,
//! FinalizeBlock, Commit, Query with proof), through tendermint-abci's own client.

use kms_chain_app::KmsApp;
use kms_chain_types::state::{keys, Account};
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use tendermint_abci::{ClientBuilder, ServerBuilder};
use tendermint_proto::v0_38::abci::{
    RequestCheckTx, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestQuery,
};

#[test]
fn abci_socket_round_trip() {
    let server = ServerBuilder::default()
        .bind("127.0.0.1:0", KmsApp::new())
        .unwrap();
    let addr = server.local_addr();
    std::thread::spawn(move || {
        let _ = server.listen();
    });
    let mut c = ClientBuilder::default().connect(addr).unwrap();

    let setup = DevSetup::new("abci-test", 4, 1, 1, tendermint::Time::now());
    let init = c
        .init_chain(RequestInitChain {
            chain_id: "abci-test".into(),
            app_state_bytes: KmsApp::genesis_app_state(&setup.genesis.app_config).into(),
            initial_height: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(init.app_hash.len(), 32);

    let mut w = Wallet::random();
    let tx = w.tx("abci-test", Msg::Faucet { amount: 77 });
    assert_eq!(
        c.check_tx(RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0
        })
        .unwrap()
        .code,
        0
    );
    let bad = c
        .check_tx(RequestCheckTx {
            tx: b"junk".to_vec().into(),
            r#type: 0,
        })
        .unwrap();
    assert_eq!(bad.code, 1);
    assert_eq!(bad.codespace, "kms");
    let fin = c
        .finalize_block(RequestFinalizeBlock {
            txs: vec![tx.into(), b"junk".to_vec().into()],
            height: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        fin.tx_results.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_ne!(fin.app_hash, init.app_hash);
    c.commit().unwrap();
    let info = c.info(RequestInfo::default()).unwrap();
    assert_eq!(info.last_block_height, 1);
    assert_eq!(info.last_block_app_hash, fin.app_hash);

    let q = c
        .query(RequestQuery {
            data: keys::account(&w.address()).into(),
            path: "store".into(),
            height: 1,
            prove: true,
        })
        .unwrap();
    let acct: Account = kms_chain_types::codec::decode(&q.value).unwrap();
    // The faucet transaction paid the base fee and one token per byte it wrote (its account).
    let fees = &setup.genesis.app_config.fees;
    let written = keys::account(&w.address()).len()
        + kms_chain_types::codec::encode(&Account {
            balance: 77,
            nonce: 1,
        })
        .len();
    let fee = fees.tx_base + fees.per_state_byte * written as u128;
    assert_eq!(
        acct,
        Account {
            balance: 77 - fee,
            nonce: 1
        }
    );
    let ops = q.proof_ops.unwrap();
    assert_eq!(ops.ops.len(), 1);
    assert_eq!(ops.ops[0].r#type, "ics23:jmt");
    // Unknown path: a clean error.
    let q = c
        .query(RequestQuery {
            path: "nope".into(),
            ..Default::default()
        })
        .unwrap();
    assert_ne!(q.code, 0);
}
