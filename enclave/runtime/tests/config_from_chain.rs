//! The enclave learns the parties from the config contract through its own light client
//! (`LightClient::verify_config`), as its boot does: a party is the identity key registered on
//! chain. A host that alters the record (another identity for a party), proves another key's
//! value or serves old state is refused; the honest evidence yields exactly the registered digests. Chain: the
//! devnet, in process.

use kms_chain_types::codec;
use kms_chain_types::state::{keys, Config};
use kms_devnet::dev::{DevSetup, ManualChain};
use kms_light_client::{ConfigEvidence, Error as LcError, LightClient, Options};
use std::time::Duration;
use tendermint::Time;

const CHAIN: &str = "kms-config-from-chain";

struct World {
    m: ManualChain,
    validators: tendermint::validator::Set,
    digests: Vec<[u8; 32]>,
}

fn world() -> World {
    let digests: Vec<[u8; 32]> = (1..=4u8).map(|p| [p; 32]).collect();
    let setup = DevSetup::new(CHAIN, 4, 1, 4, Time::now()).with_identity_keys(&digests);
    let mut m = ManualChain::new(setup.genesis.clone()).unwrap();
    let validators = m.chain.validators().clone();
    for _ in 0..3 {
        m.block(vec![]).unwrap();
    }
    World {
        m,
        validators,
        digests,
    }
}

impl World {
    fn light_client(&self) -> LightClient {
        LightClient::from_genesis(
            CHAIN,
            1,
            &self.validators,
            self.m.chain.light_block(1).unwrap(),
            options(),
            self.now(),
        )
        .unwrap()
        .0
    }

    fn now(&self) -> Time {
        (self.m.clock + Duration::from_secs(1)).unwrap()
    }

    fn evidence(&self, key: &[u8], h: u64) -> ConfigEvidence {
        let q = self.m.chain.query("store", key.to_vec(), h as i64, true);
        ConfigEvidence {
            height: h,
            header: self.m.chain.light_block(h + 1).unwrap(),
            value: q.value.to_vec(),
            proof: q.proof_ops.unwrap().try_into().unwrap(),
        }
    }
}

const MAX_AGE: Duration = Duration::from_secs(300);

fn options() -> Options {
    Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(3600),
        clock_drift: Duration::from_secs(5),
    }
}

#[test]
fn the_registered_identities_come_from_proven_config_state() {
    let w = world();
    let config = w
        .light_client()
        .verify_config(&w.evidence(keys::CONFIG, 2), w.now(), MAX_AGE)
        .unwrap();
    let mut parties = config.parties.clone();
    parties.sort_by_key(|p| p.index);
    let got: Vec<[u8; 32]> = parties.iter().map(|p| p.identity_key_digest).collect();
    assert_eq!(got, w.digests);
}

#[test]
fn a_host_cannot_register_another_identity_or_prove_another_key() {
    let w = world();
    // Party 2 "registered" with the host's key: the record no longer matches the proof.
    let mut forged = w.evidence(keys::CONFIG, 2);
    let mut config: Config = codec::decode(&forged.value).unwrap();
    config.parties[1].identity_key_digest = [0xee; 32];
    forged.value = codec::encode(&config);
    assert!(w
        .light_client()
        .verify_config(&forged, w.now(), MAX_AGE)
        .is_err());

    // A proof of another key (an account) with the config value.
    let mut other = w.evidence(&keys::account(&[9u8; 20]), 2);
    other.value = w.evidence(keys::CONFIG, 2).value;
    assert!(w
        .light_client()
        .verify_config(&other, w.now(), MAX_AGE)
        .is_err());

    // Honest evidence, but old: a host that picks an early height to boot the enclave on a
    // party set from back then. Ten minutes later it is refused; the same evidence is fine
    // under a bound it meets.
    let old = w.evidence(keys::CONFIG, 2);
    let later = (w.now() + Duration::from_secs(600)).unwrap();
    assert!(matches!(
        w.light_client().verify_config(&old, later, MAX_AGE),
        Err(LcError::StaleState { .. })
    ));
    assert!(w
        .light_client()
        .verify_config(&old, later, Duration::from_secs(3600))
        .is_ok());

    // A header of another height than the state the proof is for.
    let mut shifted = w.evidence(keys::CONFIG, 2);
    shifted.header = w.m.chain.light_block(2).unwrap();
    assert!(w
        .light_client()
        .verify_config(&shifted, w.now(), MAX_AGE)
        .is_err());
}
