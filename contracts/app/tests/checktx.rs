//! CheckTx between FinalizeBlock and Commit (CometBFT 0.38 may run it there): it sees the block
//! just finalized, not an overlay built on the state before it. Here a block credits an account
//! after CheckTx accepted one of its transactions; a transaction that needs that credit is
//! accepted in the window before Commit (it was refused while the old overlay shadowed the new
//! balance).

use kms_chain_app::KmsApp;
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{RequestCheckTx, RequestFinalizeBlock, RequestInitChain};

const CHAIN: &str = "checktx-test";

fn check(app: &KmsApp, tx: &[u8]) -> u32 {
    app.check_tx(RequestCheckTx {
        tx: tx.to_vec().into(),
        r#type: 0,
    })
    .code
}

fn block(app: &KmsApp, height: i64, txs: &[Vec<u8>]) -> Vec<u32> {
    app.finalize_block(RequestFinalizeBlock {
        txs: txs.iter().map(|t| t.clone().into()).collect(),
        height,
        ..Default::default()
    })
    .tx_results
    .iter()
    .map(|r| r.code)
    .collect()
}

#[test]
fn checktx_between_finalize_and_commit_sees_the_finalized_block() {
    let setup = DevSetup::new(CHAIN, 4, 1, 1, tendermint::Time::now());
    let app = KmsApp::new();
    app.init_chain(RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: KmsApp::genesis_app_state(&setup.genesis.app_config).into(),
        initial_height: 1,
        ..Default::default()
    });
    let mut x = Wallet::random();
    let mut y = Wallet::random();
    let fund_x = x.tx(CHAIN, Msg::Faucet { amount: 1_000 });
    let fund_y = y.tx(CHAIN, Msg::Faucet { amount: 100_000 });
    assert_eq!(block(&app, 1, &[fund_x, fund_y]), vec![0, 0]);
    app.commit();

    // x's transfer is pending (CheckTx's overlay holds x's next nonce and smaller balance).
    let pending = x.tx(
        CHAIN,
        Msg::Transfer {
            to: [7; 20],
            amount: 1,
        },
    );
    assert_eq!(check(&app, &pending), 0);
    // Block 2: the pending transfer and a large credit to x from y; finalized, not committed.
    let credit = y.tx(
        CHAIN,
        Msg::Transfer {
            to: x.address(),
            amount: 50_000,
        },
    );
    assert_eq!(block(&app, 2, &[pending, credit]), vec![0, 0]);
    // Spending the credit needs block 2's state.
    let spend = x.tx(
        CHAIN,
        Msg::Transfer {
            to: [8; 20],
            amount: 20_000,
        },
    );
    assert_eq!(check(&app, &spend), 0, "CheckTx read a stale overlay");
    app.commit();
}
