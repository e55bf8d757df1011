//! Loading the recorded CometBFT fixtures (copied from ../shared/fixtures/cometbft; see
//! tests/fixtures/README.md for provenance).
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use tendermint::block::signed_header::SignedHeader;
use tendermint::block::{Block, Id};
use tendermint::validator;
use tendermint_light_client_verifier::types::LightBlock;

pub fn load(rel: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}

/// The `result` of a JSON-RPC response (or the document itself when it has no envelope).
pub fn result(v: Value) -> Value {
    match v.get("result") {
        Some(r) => r.clone(),
        None => v,
    }
}

pub fn genesis_set(rel: &str) -> validator::Set {
    let g = result(load(rel));
    let vals: Vec<validator::Info> =
        serde_json::from_value(g["genesis"]["validators"].clone()).unwrap();
    validator::Set::without_proposer(vals)
}

/// (block, block_id) pairs of a `block_search` recording, by ascending height.
pub fn searched_blocks(rel: &str) -> Vec<(Block, Id)> {
    let r = result(load(rel));
    let mut out: Vec<(Block, Id)> = r["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                serde_json::from_value(b["block"].clone()).unwrap(),
                serde_json::from_value(b["block_id"].clone()).unwrap(),
            )
        })
        .collect();
    out.sort_by_key(|(b, _)| b.header.height);
    out
}

/// Light blocks for every height whose commit is recorded (block H + 1's last_commit), with a
/// fixed validator set.
pub fn light_blocks(blocks: &[(Block, Id)], vals: &validator::Set) -> Vec<LightBlock> {
    blocks
        .windows(2)
        .map(|w| {
            let commit = w[1].0.last_commit.clone().unwrap();
            LightBlock::new(
                SignedHeader::new(w[0].0.header.clone(), commit).unwrap(),
                vals.clone(),
                vals.clone(),
                tendermint::node::Id::new([0; 20]),
            )
        })
        .collect()
}

pub fn light_block(sh: SignedHeader, vals: &validator::Set) -> LightBlock {
    LightBlock::new(
        sh,
        vals.clone(),
        vals.clone(),
        tendermint::node::Id::new([0; 20]),
    )
}
