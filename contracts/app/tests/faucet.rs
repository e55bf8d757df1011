//! Only a developer chain has a public faucet: on a production chain only governance (admins)
//! mints, and a broke account's faucet request is refused by CheckTx with the code execution
//! gives it and, if a proposer includes it anyway, mints nothing. (Before, any fresh key could
//! mint on any chain, and a broke key's failed faucet request wrote state for free.)

use kms_chain_app::KmsApp;
use kms_chain_types::state::{keys, Account};
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    RequestCheckTx, RequestFinalizeBlock, RequestInitChain, RequestQuery,
};

const CHAIN: &str = "faucet-test";

fn chain(developer: bool) -> (KmsApp, Wallet) {
    let mut setup = DevSetup::new(CHAIN, 4, 1, 1, tendermint::Time::now());
    setup.genesis.app_config.developer_chain = developer;
    let app = KmsApp::new();
    app.init_chain(RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: KmsApp::genesis_app_state(&setup.genesis.app_config).into(),
        initial_height: 1,
        ..Default::default()
    });
    (app, setup.admin)
}

fn balance(app: &KmsApp, w: &Wallet) -> u128 {
    let q = app.query(RequestQuery {
        data: keys::account(&w.address()).into(),
        path: "store".into(),
        height: 0,
        prove: false,
    });
    kms_chain_types::codec::decode::<Account>(&q.value).map_or(0, |a| a.balance)
}

fn run(app: &KmsApp, height: i64, tx: Vec<u8>) -> (u32, u32) {
    let check = app
        .check_tx(RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0,
        })
        .code;
    let fin = app.finalize_block(RequestFinalizeBlock {
        txs: vec![tx.into()],
        height,
        ..Default::default()
    });
    app.commit();
    (check, fin.tx_results[0].code)
}

#[test]
fn the_faucet_exists_only_on_developer_chains() {
    let (production, mut admin) = chain(false);
    let mut w = Wallet::random();
    let (check, fin) = run(&production, 1, w.tx(CHAIN, Msg::Faucet { amount: 1_000 }));
    assert_eq!(check, 6, "CheckTx: unauthorized, as execution says");
    assert_eq!(fin, 6, "FinalizeBlock: unauthorized");
    assert_eq!(balance(&production, &w), 0, "nothing minted");
    // Governance mints.
    let (check, fin) = run(
        &production,
        2,
        admin.tx(CHAIN, Msg::Faucet { amount: 1_000 }),
    );
    assert_eq!((check, fin), (0, 0));
    assert_eq!(balance(&production, &admin), 1_000);

    let (developer, _) = chain(true);
    let mut w = Wallet::random();
    let (check, fin) = run(&developer, 1, w.tx(CHAIN, Msg::Faucet { amount: 1_000 }));
    assert_eq!((check, fin), (0, 0));
    assert!(balance(&developer, &w) > 0);
}
