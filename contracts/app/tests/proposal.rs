//! PrepareProposal: the mempool's transactions in order, without anything that is not a
//! transaction of this chain, within `max_tx_bytes` as CometBFT counts it; once a sender's
//! transaction is left out, so are its later ones. The size is checked
//! against prost's encoding of CometBFT's own `Data` message (an independent computation of what
//! CometBFT's `Txs.Validate` sums).

use kms_chain_app::KmsApp;
use kms_chain_types::tx::Msg;
use kms_devnet::dev::{DevSetup, Wallet};
use prost::Message as _;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{RequestInitChain, RequestPrepareProposal};
use tendermint_proto::v0_38::types::Data;

const CHAIN: &str = "proposal-test";

fn app() -> KmsApp {
    let setup = DevSetup::new(CHAIN, 4, 1, 1, tendermint::Time::now());
    let app = KmsApp::new();
    app.init_chain(RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: KmsApp::genesis_app_state(&setup.genesis.app_config).into(),
        initial_height: 1,
        ..Default::default()
    });
    app
}

/// CometBFT's size of `txs` in a block: the sum, per transaction, of its `Data` encoding.
fn cometbft_size(txs: &[Vec<u8>]) -> usize {
    txs.iter()
        .map(|t| {
            Data {
                txs: vec![t.clone()],
            }
            .encoded_len()
        })
        .sum()
}

#[test]
fn prepare_proposal_keeps_order_drops_junk_and_respects_max_tx_bytes() {
    let app = app();
    let mut w = Wallet::random();
    // Transactions of different sizes (a grant with many handles is large).
    let small = w.tx(CHAIN, Msg::Faucet { amount: 1 });
    let large = w.tx(
        CHAIN,
        Msg::AclGrant {
            app_id: "a".into(),
            handles: vec![[7; 32]; 40],
            addresses: vec![[1; 20]],
        },
    );
    // Another sender's, and the first sender's next one.
    let small2 = Wallet::random().tx(CHAIN, Msg::Faucet { amount: 2 });
    let later = w.tx(CHAIN, Msg::Faucet { amount: 3 });
    assert!(large.len() > 1_000 && small.len() < 300);
    for s in [small.len(), large.len()] {
        assert_eq!(
            kms_chain_app::abci::proto_tx_size(s) as usize,
            cometbft_size(&[vec![0; s]])
        );
    }
    let junk = b"not a transaction".to_vec();
    let mempool = [
        small.clone(),
        junk,
        large.clone(),
        small2.clone(),
        later.clone(),
    ];
    let prepare = |max: usize| {
        app.prepare_proposal(RequestPrepareProposal {
            max_tx_bytes: max as i64,
            txs: mempool.iter().map(|t| t.clone().into()).collect(),
            ..Default::default()
        })
        .txs
        .into_iter()
        .map(|t| t.to_vec())
        .collect::<Vec<_>>()
    };
    // Room for everything valid: junk dropped, order kept.
    let all = cometbft_size(&[small.clone(), large.clone(), small2.clone(), later.clone()]);
    assert_eq!(
        prepare(all),
        vec![small.clone(), large.clone(), small2.clone(), later.clone()]
    );
    // One byte short of the first two: the large one does not fit and is skipped; another
    // sender's later one still goes, but not its own sender's next one (it would fail on the
    // nonce gap without paying).
    let max = cometbft_size(&[small.clone(), large.clone()]) - 1;
    let out = prepare(max);
    assert_eq!(out, vec![small.clone(), small2.clone()]);
    assert!(cometbft_size(&out) <= max);
    // Room for exactly the first: only it.
    let out = prepare(cometbft_size(std::slice::from_ref(&small)));
    assert_eq!(out, vec![small]);
    assert!(prepare(0).is_empty());
}
