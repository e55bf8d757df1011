use crate::Error;
use tendermint::block::Height;
use tendermint::chain;
use tendermint::validator;
use tendermint::{Hash, Time};
use tendermint_light_client_verifier::options::Options;
use tendermint_light_client_verifier::types::{LightBlock, TrustedBlockState};
use tendermint_light_client_verifier::{ProdVerifier, Verdict, Verifier};

/// A header this light client verified: the only source of `app_hash` and `data_hash` the
/// proof checks accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedHeader {
    chain_id: String,
    height: u64,
    time: Time,
    hash: Hash,
    app_hash: Vec<u8>,
    data_hash: Option<Hash>,
}

impl VerifiedHeader {
    fn of(block: &LightBlock) -> Self {
        let h = &block.signed_header.header;
        Self {
            chain_id: h.chain_id.to_string(),
            height: h.height.value(),
            time: h.time,
            hash: h.hash(),
            app_hash: h.app_hash.as_bytes().to_vec(),
            data_hash: h.data_hash,
        }
    }

    /// Chain ID.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
    /// Height.
    pub fn height(&self) -> u64 {
        self.height
    }
    /// Block time.
    pub fn time(&self) -> Time {
        self.time
    }
    /// Block hash (the block ID hash).
    pub fn hash(&self) -> Hash {
        self.hash
    }
    /// The app hash: the state root after executing block `height - 1`.
    pub fn app_hash(&self) -> &[u8] {
        &self.app_hash
    }
    /// The Merkle root of this block's transactions.
    pub fn data_hash(&self) -> Option<Hash> {
        self.data_hash
    }
}

/// A light client: the latest trusted light block and the verification options.
#[derive(Clone, Debug)]
pub struct LightClient {
    options: Options,
    trusted: LightBlock,
}

fn verdict(v: Verdict) -> Result<(), Error> {
    match v {
        Verdict::Success => Ok(()),
        Verdict::NotEnoughTrust(tally) => Err(Error::NotEnoughTrust {
            tally: tally.to_string(),
        }),
        Verdict::Invalid(d) => Err(Error::from_verification(d)),
    }
}

impl LightClient {
    /// Starts from the chain's genesis: `first` must be the light block at `initial_height`,
    /// signed by more than 2/3 of the genesis validator set, for `chain_id`, and not from the
    /// future. The genesis file (chain ID, initial height, validators) is the root of trust and is
    /// pinned by the operator, like the enclave's PCR policy.
    pub fn from_genesis(
        chain_id: &str,
        initial_height: u64,
        genesis_validators: &validator::Set,
        first: LightBlock,
        options: Options,
        now: Time,
    ) -> Result<(Self, VerifiedHeader), Error> {
        let header = &first.signed_header.header;
        if header.chain_id.as_str() != chain_id {
            return Err(Error::ChainIdMismatch {
                got: header.chain_id.to_string(),
                expected: chain_id.to_string(),
            });
        }
        if header.height.value() != initial_height {
            return Err(Error::WrongInitialHeight {
                got: header.height.value(),
                expected: initial_height,
            });
        }
        if header.validators_hash != genesis_validators.hash() {
            return Err(Error::ValidatorSetMismatch(
                "first header is not signed by the genesis validator set".into(),
            ));
        }
        let verifier = ProdVerifier::default();
        let untrusted = first.as_untrusted_state();
        verdict(verifier.verify_validator_sets(&untrusted))?;
        verdict(verifier.check_header_is_from_past(&untrusted, &options, now))?;
        verdict(verifier.verify_commit(&untrusted))?;
        let expires = (header.time + options.trusting_period)
            .map_err(|e| Error::MalformedCommit(format!("header time out of range: {e}")))?;
        if expires <= now {
            return Err(Error::TrustingPeriodExpired {
                expires_at: expires.to_string(),
                now: now.to_string(),
            });
        }
        let verified = VerifiedHeader::of(&first);
        Ok((
            Self {
                options,
                trusted: first,
            },
            verified,
        ))
    }

    /// Starts from a light block trusted out of band (e.g. sealed by this enclave earlier).
    /// Its validator sets must hash to the header's fields.
    pub fn from_trusted(trusted: LightBlock, options: Options) -> Result<Self, Error> {
        let verifier = ProdVerifier::default();
        verdict(verifier.verify_validator_sets(&trusted.as_untrusted_state()))?;
        Ok(Self { options, trusted })
    }

    /// The trusted light block.
    pub fn trusted(&self) -> &LightBlock {
        &self.trusted
    }

    /// The trusted header as a [`VerifiedHeader`].
    pub fn trusted_header(&self) -> VerifiedHeader {
        VerifiedHeader::of(&self.trusted)
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Verifies `untrusted` against the trusted state as of `now` (adjacent or skipping) without
    /// moving the trusted state.
    pub fn verify(&self, untrusted: &LightBlock, now: Time) -> Result<VerifiedHeader, Error> {
        let trusted = &self.trusted;
        let chain_id: &chain::Id = &trusted.signed_header.header.chain_id;
        let state = TrustedBlockState {
            chain_id,
            header_time: trusted.signed_header.header.time,
            height: trusted.signed_header.header.height,
            next_validators: &trusted.next_validators,
            next_validators_hash: trusted.signed_header.header.next_validators_hash,
        };
        verdict(ProdVerifier::default().verify_update_header(
            untrusted.as_untrusted_state(),
            state,
            &self.options,
            now,
        ))?;
        Ok(VerifiedHeader::of(untrusted))
    }

    /// Refuses once the trusted header is older than the trusting period (a light client that
    /// was not advanced in time must be re-anchored, never trusted on).
    pub fn check_not_expired(&self, now: Time) -> Result<(), Error> {
        let header = &self.trusted.signed_header.header;
        let expires = (header.time + self.options.trusting_period)
            .map_err(|e| Error::MalformedCommit(format!("header time out of range: {e}")))?;
        if expires <= now {
            return Err(Error::TrustingPeriodExpired {
                expires_at: expires.to_string(),
                now: now.to_string(),
            });
        }
        Ok(())
    }

    /// Verifies `untrusted` and makes it the trusted state.
    pub fn update(&mut self, untrusted: LightBlock, now: Time) -> Result<VerifiedHeader, Error> {
        let verified = self.verify(&untrusted, now)?;
        self.trusted = untrusted;
        Ok(verified)
    }

    /// The trusted height.
    pub fn height(&self) -> Height {
        self.trusted.signed_header.header.height
    }
}
