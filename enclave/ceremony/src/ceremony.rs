//! The ceremony's turn-taking, as every party runs it: contributions are taken in a fixed order,
//! each checked before the next; a bad one is rejected and skipped, a silent party is skipped.
//!
//! What this type does not do, and its driver must: make the honest parties agree on what each
//! contributor sent. A contributor that sends different contributions to different parties, or
//! one to some and nothing to others, or a deadline that passes for some parties and not for
//! others, would otherwise leave honest parties on different transcripts and different CRSs.
//! So every call to [`Ceremony::receive`] and [`Ceremony::skip_silent`] must be for a decision
//! all honest parties share: the contribution's digest ordered by the KMS chain (or delivered
//! by reliable broadcast), and "silent" decided by a chain height rather than a local clock.
//! Then every honest party computes the same transcript digest, which they sign.
//!
//! The party runtime (`kms-runtime`, `party/crs.rs`) drives the ceremony through the KMS chain
//! that way, one step per job and without keeping this type between jobs: it resumes the
//! chain-decided transcript with [`CrsState::resume`] and checks proposals with
//! [`crate::verify_contribution_bytes`]. This type is the same protocol in one process (tests,
//! benchmarks).

use crate::{contribute, verify_contribution_bytes, CeremonyError, CrsShape, CrsState};
use kms_types::RequestId;
use rand_core::{CryptoRng, RngCore};
use tfhe::zk::CompactPkeCrs;

/// What a finished ceremony produced, and who took part.
#[derive(Debug)]
pub struct CeremonyOutcome {
    /// The CRS.
    pub crs: CompactPkeCrs,
    /// Parties whose contributions are in it, in order.
    pub accepted: Vec<u32>,
    /// Parties whose contributions were rejected, and why.
    pub rejected: Vec<(u32, CeremonyError)>,
    /// Parties that did not contribute in time.
    pub silent: Vec<u32>,
    /// The transcript digest the CRS's domain separators derive from.
    pub transcript_digest: [u8; 32],
}

/// One party's view of a ceremony.
#[derive(Debug)]
pub struct Ceremony {
    order: Vec<u32>,
    threshold: usize,
    next: usize,
    state: CrsState,
    accepted: Vec<u32>,
    rejected: Vec<(u32, CeremonyError)>,
    silent: Vec<u32>,
}

impl Ceremony {
    /// A ceremony for `session` over `shape`, the parties contributing in `order` (each once),
    /// at most `threshold` of them corrupt (`3·threshold < n`).
    pub fn new(
        shape: CrsShape,
        session: RequestId,
        order: Vec<u32>,
        threshold: usize,
    ) -> Result<Self, CeremonyError> {
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != order.len() || threshold.saturating_mul(3) >= order.len() {
            return Err(CeremonyError::Unsupported(format!(
                "{} distinct contributors of {}, threshold {threshold}: need n > 3t, each once",
                sorted.len(),
                order.len()
            )));
        }
        Ok(Self {
            order,
            threshold,
            next: 0,
            state: CrsState::initial(shape, session),
            accepted: Vec::new(),
            rejected: Vec::new(),
            silent: Vec::new(),
        })
    }

    /// The state after the contributions accepted so far.
    pub fn state(&self) -> &CrsState {
        &self.state
    }

    /// The party whose turn it is, or `None` once every party had its turn.
    pub fn current(&self) -> Option<u32> {
        self.order.get(self.next).copied()
    }

    /// This party's own turn: contributes on top of the current state, applies it, and returns
    /// the bytes to send to the others.
    pub fn contribute_own(
        &mut self,
        me: u32,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, CeremonyError> {
        if self.current() != Some(me) {
            return Err(CeremonyError::OutOfTurn(me));
        }
        let c = contribute(&self.state, me, rng)?;
        let bytes = c.to_bytes()?;
        self.receive(me, &bytes, rng)?;
        Ok(bytes)
    }

    /// A contribution received from party `from` (the authenticated sender, not what the bytes
    /// claim). From the party whose turn it is, it is checked and either applied or rejected;
    /// either way the turn passes. From anyone else it is refused and changes nothing.
    pub fn receive(
        &mut self,
        from: u32,
        bytes: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(), CeremonyError> {
        if self.current() != Some(from) {
            return Err(CeremonyError::OutOfTurn(from));
        }
        self.next += 1;
        match verify_contribution_bytes(&self.state, from, bytes, rng) {
            Ok(next) => {
                self.state = next;
                self.accepted.push(from);
                Ok(())
            }
            Err(e) => {
                self.rejected.push((from, e.clone()));
                Err(e)
            }
        }
    }

    /// The party whose turn it is did not contribute in time: its turn passes. Returns it.
    pub fn skip_silent(&mut self) -> Option<u32> {
        let who = self.current()?;
        self.next += 1;
        self.silent.push(who);
        Some(who)
    }

    /// Once every party had its turn: the CRS, if at least `threshold + 1` contributions were
    /// accepted (so at least one is from an honest party).
    pub fn finish(self) -> Result<CeremonyOutcome, CeremonyError> {
        if let Some(p) = self.current() {
            return Err(CeremonyError::OutOfTurn(p));
        }
        let needed = self.threshold + 1;
        if self.accepted.len() < needed {
            return Err(CeremonyError::TooFewContributions {
                accepted: self.accepted.len(),
                needed,
            });
        }
        Ok(CeremonyOutcome {
            crs: self.state.to_crs()?,
            accepted: self.accepted,
            rejected: self.rejected,
            silent: self.silent,
            transcript_digest: self.state.digest,
        })
    }
}
