//! Attacks on header verification, built by tampering with real CometBFT recordings. Each is
//! rejected with its own error.

mod common;
use common::*;
use kms_light_client::{Error, LightBlock, LightClient, Options};
use std::time::Duration;
use tendermint::block::signed_header::SignedHeader;
use tendermint::block::{BlockIdFlag, CommitSig};
use tendermint::validator;
use tendermint::Time;

fn options() -> Options {
    Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(14 * 24 * 3600),
        clock_drift: Duration::from_secs(10),
    }
}

fn shift(t: Time, secs: i64) -> Time {
    if secs >= 0 {
        (t + Duration::from_secs(secs as u64)).unwrap()
    } else {
        (t - Duration::from_secs((-secs) as u64)).unwrap()
    }
}

/// The v0.38 chain: light blocks for heights 2..=45.
fn chain() -> (validator::Set, Vec<LightBlock>) {
    let vals = genesis_set("v0_38/genesis.json");
    let blocks = searched_blocks("v0_38/block_search.json");
    let lbs = light_blocks(&blocks, &vals);
    (vals, lbs)
}

fn at(lbs: &[LightBlock], h: u64) -> LightBlock {
    lbs.iter()
        .find(|b| b.height().value() == h)
        .unwrap()
        .clone()
}

/// The 4-validator commit of chain-ORcSeX at height 12.
fn four() -> (validator::Set, SignedHeader) {
    let vals: Vec<validator::Info> =
        serde_json::from_value(load("cometbft-ts/validators-12.json")["validators"].clone())
            .unwrap();
    let sh: SignedHeader =
        serde_json::from_value(load("cometbft-ts/commit-12.json")["signed_header"].clone())
            .unwrap();
    (validator::Set::without_proposer(vals), sh)
}

/// A trusted state is taken as given; after editing its header, point its commit at the new hash
/// so the trusted block stays self-consistent.
fn rebind(lb: &mut LightBlock) {
    lb.signed_header.commit.block_id.hash = lb.signed_header.header.hash();
}

fn anchor_four(sh: SignedHeader, set: &validator::Set) -> Result<(), Error> {
    let chain = sh.header.chain_id.to_string();
    let now = shift(sh.header.time, 5);
    LightClient::from_genesis(&chain, 12, set, light_block(sh, set), options(), now).map(|_| ())
}

#[test]
fn untampered_inputs_verify() {
    let (set, sh) = four();
    anchor_four(sh, &set).unwrap();
    let (_, lbs) = chain();
    let now = shift(at(&lbs, 11).time(), 60);
    LightClient::from_trusted(at(&lbs, 10), options())
        .unwrap()
        .update(at(&lbs, 11), now)
        .unwrap();
}

#[test]
fn forged_signature() {
    let (_, lbs) = chain();
    let mut bad = at(&lbs, 11);
    if let CommitSig::BlockIdFlagCommit {
        signature: Some(sig),
        ..
    } = &mut bad.signed_header.commit.signatures[0]
    {
        let mut bytes = sig.as_bytes().to_vec();
        bytes[7] ^= 1;
        *sig = tendermint::Signature::new(bytes).unwrap().unwrap();
    }
    let now = shift(bad.time(), 60);
    let err = LightClient::from_trusted(at(&lbs, 10), options())
        .unwrap()
        .update(bad, now)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSignature { .. }), "{err:?}");
}

#[test]
fn duplicate_votes_of_one_validator() {
    // GHSA-6jrf-4jv4-r9mw: validator 0's vote copied over validator 1's slot must not count twice.
    let (set, mut sh) = four();
    let first = sh.commit.signatures[0].clone();
    sh.commit.signatures[1] = first.clone();
    sh.commit.signatures[2] = first;
    let err = anchor_four(sh, &set).unwrap_err();
    assert!(matches!(err, Error::DuplicateVote { .. }), "{err:?}");
}

#[test]
fn less_than_two_thirds_of_the_power() {
    let (set, mut sh) = four();
    sh.commit.signatures[1] = CommitSig::BlockIdFlagAbsent;
    sh.commit.signatures[2] = CommitSig::BlockIdFlagAbsent;
    let err = anchor_four(sh, &set).unwrap_err();
    assert!(
        matches!(err, Error::InsufficientVotingPower { .. }),
        "{err:?}"
    );
    // Exactly 2/3 is not enough either (3 of 4 is).
    let (set, mut sh) = four();
    sh.commit.signatures[3] = CommitSig::BlockIdFlagAbsent;
    anchor_four(sh, &set).unwrap();
    let _ = BlockIdFlag::Absent;
}

#[test]
fn wrong_chain_id() {
    let (set, sh) = four();
    let now = shift(sh.header.time, 5);
    let err = LightClient::from_genesis(
        "another-chain",
        12,
        &set,
        light_block(sh, &set),
        options(),
        now,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ChainIdMismatch { .. }), "{err:?}");
    // On update: the trusted state is for another chain.
    let (_, lbs) = chain();
    let mut trusted = at(&lbs, 10);
    trusted.signed_header.header.chain_id = "another-chain".parse().unwrap();
    rebind(&mut trusted);
    let now = shift(at(&lbs, 11).time(), 60);
    let err = LightClient::from_trusted(trusted, options())
        .unwrap()
        .update(at(&lbs, 11), now)
        .unwrap_err();
    assert!(matches!(err, Error::ChainIdMismatch { .. }), "{err:?}");
}

#[test]
fn header_from_the_future() {
    // Anchor: a header an hour ahead of the caller's clock.
    let (set, sh) = four();
    let chain_id = sh.header.chain_id.to_string();
    let now = shift(sh.header.time, -3600);
    let err = LightClient::from_genesis(&chain_id, 12, &set, light_block(sh, &set), options(), now)
        .unwrap_err();
    assert!(matches!(err, Error::HeaderFromFuture { .. }), "{err:?}");
    // Update: with no clock drift allowed, header 11 is ahead of a clock reading header 10's time.
    let (_, lbs) = chain();
    let (ten, eleven) = (at(&lbs, 10), at(&lbs, 11));
    assert!(eleven.time() > ten.time());
    let strict = Options {
        clock_drift: Duration::ZERO,
        ..options()
    };
    let err = LightClient::from_trusted(ten.clone(), strict)
        .unwrap()
        .verify(&eleven, ten.time())
        .unwrap_err();
    assert!(matches!(err, Error::HeaderFromFuture { .. }), "{err:?}");
    // The default 10 s drift accepts it.
    LightClient::from_trusted(ten.clone(), options())
        .unwrap()
        .verify(&eleven, ten.time())
        .unwrap();
}

#[test]
fn expired_trusting_period() {
    let (_, lbs) = chain();
    let trusted = at(&lbs, 10);
    let now = shift(trusted.time(), 14 * 24 * 3600 + 1);
    let err = LightClient::from_trusted(trusted, options())
        .unwrap()
        .verify(&at(&lbs, 11), now)
        .unwrap_err();
    assert!(
        matches!(err, Error::TrustingPeriodExpired { .. }),
        "{err:?}"
    );
}

#[test]
fn validator_set_change_beyond_the_trust_threshold() {
    // We trusted height 2 with next validators = four unrelated validators; height 45 is signed by
    // the recorded single validator, which holds none of the trusted power: skipping must refuse.
    let (_, lbs) = chain();
    let (other, _) = four();
    let mut trusted = at(&lbs, 2);
    trusted.next_validators = other.clone();
    trusted.signed_header.header.next_validators_hash = other.hash();
    rebind(&mut trusted);
    let target = at(&lbs, 45);
    let now = shift(target.time(), 60);
    let err = LightClient::from_trusted(trusted, options())
        .unwrap()
        .verify(&target, now)
        .unwrap_err();
    assert!(matches!(err, Error::NotEnoughTrust { .. }), "{err:?}");
}

#[test]
fn commit_for_another_block_and_mismatched_sets() {
    let (_, lbs) = chain();
    // Header 11 with a commit naming block 12 (tendermint-rs will not even pair them through
    // `SignedHeader::new`, so edit the fields directly).
    let mut bad = at(&lbs, 11);
    bad.signed_header.commit.block_id = at(&lbs, 12).signed_header.commit.block_id;
    let now = shift(bad.time(), 60);
    let err = LightClient::from_trusted(at(&lbs, 10), options())
        .unwrap()
        .verify(&bad, now)
        .unwrap_err();
    assert!(matches!(err, Error::CommitMismatch { .. }), "{err:?}");
    // A validator set that is not the header's.
    let (other, _) = four();
    let mut bad = at(&lbs, 11);
    bad.validators = other;
    let err = LightClient::from_trusted(at(&lbs, 10), options())
        .unwrap()
        .verify(&bad, now)
        .unwrap_err();
    assert!(matches!(err, Error::ValidatorSetMismatch(_)), "{err:?}");
}
