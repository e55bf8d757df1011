//! The party set as the verified config contract registers it: a party is the identity key
//! registered for its index, and this enclave runs only as the party whose signer and identity
//! key the contract records.

use kms_chain_types::state::{Config, ConfigError};
use kms_chain_types::Address;

/// Why the config contract does not let this enclave run as its party.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The config breaks the contract's own rules.
    #[error("invalid config: {0}")]
    Invalid(#[from] ConfigError),
    /// Another party count or threshold than the sealed state's.
    #[error("the config contract has n = {got_n}, t = {got_t}; the sealed state n = {n}, t = {t}")]
    OtherShape {
        /// The config's party count.
        got_n: usize,
        /// The config's threshold.
        got_t: u32,
        /// The sealed party count.
        n: u32,
        /// The sealed threshold.
        t: u32,
    },
    /// The config has no such party.
    #[error("the config contract has no party {0}")]
    NoParty(u32),
    /// The party's registered signer is not this enclave's.
    #[error("the config contract registers another signer for party {0}")]
    OtherSigner(u32),
    /// The party's registered identity key is not this enclave's.
    #[error("the config contract registers another identity key for party {0}")]
    OtherIdentity(u32),
    /// A party's attestation policy is not a policy (the enclave trusts no release for it).
    #[error("party {party}'s attestation policy in the config contract: {reason}")]
    BadPolicy {
        /// The party.
        party: u32,
        /// Why it does not parse.
        reason: String,
    },
    /// A party's attestation policy trusts no release.
    #[error("party {0}'s attestation policy in the config contract trusts no release")]
    NoRelease(u32),
    /// A party's attestation policy asks for what a party policy may not.
    #[error("party {party}'s attestation policy in the config contract: {what}")]
    PolicyRefused {
        /// The party.
        party: u32,
        /// What is refused.
        what: &'static str,
    },
}

/// Longest document age a party policy may allow.
pub const MAX_POLICY_AGE_S: u64 = 3600;
/// Largest clock skew a party policy may allow.
pub const MAX_POLICY_SKEW_S: u64 = 300;

/// Checks one party policy from the contract: releases to trust, bounded freshness, no debug
/// enclaves (except in a developer build), and none of the per-connection fields (nonce, key,
/// user data), which the mesh sets itself.
fn check_policy(party: u32, policy: &kms_attestation::Policy) -> Result<(), RegistrationError> {
    let refuse = |what| Err(RegistrationError::PolicyRefused { party, what });
    if policy.releases.is_empty() {
        return Err(RegistrationError::NoRelease(party));
    }
    if policy.max_age_s == 0 || policy.max_age_s > MAX_POLICY_AGE_S {
        return refuse("max_age_s outside 1..=3600");
    }
    if policy.max_clock_skew_s > MAX_POLICY_SKEW_S {
        return refuse("max_clock_skew_s above 300");
    }
    if policy.nonce.is_some() || policy.public_key.is_some() || policy.user_data.is_some() {
        return refuse("nonce, public_key and user_data are set per connection, not by policy");
    }
    if policy.allow_debug && !cfg!(feature = "insecure-dev") {
        return refuse("debug enclaves are trusted in developer builds only");
    }
    Ok(())
}

/// The attestation policy of each party, `[p − 1]` for party p, as the config contract holds
/// it (JSON of [`kms_attestation::Policy`]): the releases a peer claiming party p must attest
/// to. A policy that does not parse, or trusts no release, is refused rather than read as
/// "anything goes".
pub fn party_policies(config: &Config) -> Result<Vec<kms_attestation::Policy>, RegistrationError> {
    config
        .parties
        .iter()
        .map(|p| {
            let policy: kms_attestation::Policy = serde_json::from_str(&p.attestation_policy)
                .map_err(|e| RegistrationError::BadPolicy {
                    party: p.index,
                    reason: e.to_string(),
                })?;
            check_policy(p.index, &policy)?;
            Ok(policy)
        })
        .collect()
}

/// The registered identity-key digests, `[p − 1]` for party p, if `config` is valid, has the
/// sealed `n` and `t`, and registers `signer` and `identity` for `party`.
pub fn registered_identities(
    config: &Config,
    party: u32,
    n: u32,
    t: u32,
    signer: Address,
    identity: [u8; 32],
) -> Result<Vec<[u8; 32]>, RegistrationError> {
    // Valid means: at least 3t + 1 parties, indexed 1..=n in order, distinct signers and keys.
    config.validate()?;
    if config.parties.len() != n as usize || config.threshold != t {
        return Err(RegistrationError::OtherShape {
            got_n: config.parties.len(),
            got_t: config.threshold,
            n,
            t,
        });
    }
    let me = party
        .checked_sub(1)
        .and_then(|i| config.parties.get(i as usize))
        .ok_or(RegistrationError::NoParty(party))?;
    if me.signer != signer {
        return Err(RegistrationError::OtherSigner(party));
    }
    if me.identity_key_digest != identity {
        return Err(RegistrationError::OtherIdentity(party));
    }
    Ok(config
        .parties
        .iter()
        .map(|p| p.identity_key_digest)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_devnet::dev::DevSetup;

    fn config() -> Config {
        let digests: Vec<[u8; 32]> = (1..=4u8).map(|p| [p; 32]).collect();
        DevSetup::new("kms-registration", 4, 1, 0, tendermint::Time::now())
            .with_identity_keys(&digests)
            .genesis
            .app_config
    }

    #[test]
    fn an_enclave_runs_only_as_what_the_contract_registers() {
        let c = config();
        let signer = c.parties[1].signer;
        let ok = registered_identities(&c, 2, 4, 1, signer, [2; 32]).unwrap();
        assert_eq!(ok, vec![[1; 32], [2; 32], [3; 32], [4; 32]]);
        // A host provisioning its own identity key, or another party's signer, or an index
        // beyond the set.
        assert_eq!(
            registered_identities(&c, 2, 4, 1, signer, [9; 32]),
            Err(RegistrationError::OtherIdentity(2))
        );
        assert_eq!(
            registered_identities(&c, 2, 4, 1, c.parties[0].signer, [2; 32]),
            Err(RegistrationError::OtherSigner(2))
        );
        assert_eq!(
            registered_identities(&c, 5, 4, 1, signer, [2; 32]),
            Err(RegistrationError::NoParty(5))
        );
        // Another shape than the sealed state's.
        assert!(matches!(
            registered_identities(&c, 2, 4, 0, signer, [2; 32]),
            Err(RegistrationError::OtherShape { .. })
        ));
        // A config that breaks the contract's rules (two parties with one identity key).
        let mut dup = c.clone();
        dup.parties[3].identity_key_digest = [1; 32];
        assert!(matches!(
            registered_identities(&dup, 2, 4, 1, signer, [2; 32]),
            Err(RegistrationError::Invalid(_))
        ));
    }

    #[test]
    fn each_party_is_trusted_as_the_releases_its_policy_names() {
        let mut c = config();
        // Developer mode registers the mock NSM's release (its PCRs) for every party.
        let dev = kms_attestation::Policy::production(
            vec![kms_attestation::Release::from_image(
                "kms dev",
                [[0x4b; 48], [0x4d; 48], [0x53; 48]],
            )],
            300,
        );
        assert_eq!(party_policies(&c).unwrap(), vec![dev.clone(); 4]);
        c.parties[2].attestation_policy = "{\"mode\":\"developer\"}".into();
        assert!(matches!(
            party_policies(&c),
            Err(RegistrationError::BadPolicy { party: 3, .. })
        ));
        let refused = |f: &dyn Fn(&mut kms_attestation::Policy)| {
            let mut c = c.clone();
            let mut p = dev.clone();
            f(&mut p);
            c.parties[2].attestation_policy = serde_json::to_string(&p).unwrap();
            party_policies(&c).unwrap_err()
        };
        assert_eq!(
            refused(&|p| p.releases.clear()),
            RegistrationError::NoRelease(3)
        );
        type Edit = fn(&mut kms_attestation::Policy);
        let edits: [Edit; 6] = [
            |p| p.max_age_s = 0,
            |p| p.max_age_s = 86_400,
            |p| p.max_clock_skew_s = u64::MAX,
            |p| p.nonce = Some(vec![1]),
            |p| p.public_key = Some(vec![1]),
            |p| p.user_data = Some(b"kms-party-1".to_vec()),
        ];
        for f in edits {
            assert!(matches!(
                refused(&f),
                RegistrationError::PolicyRefused { party: 3, .. }
            ));
        }
    }
}
