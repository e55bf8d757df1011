//! The enclave's trusted time. The light client's `now` comes from here, never from the host.

use tendermint::Time;

/// Why the clock cannot be read, or is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The clock reads a time CometBFT's types cannot represent.
    #[error("clock reads an unrepresentable time: {0}")]
    Unrepresentable(String),
    /// No fresh attestation document could be obtained or read.
    #[error("attestation for the time check: {0}")]
    Attestation(String),
    /// The enclave clock and the Nitro Secure Module disagree.
    #[error("enclave clock is {skew_ms} ms off the NSM's (at most {max_ms} ms allowed): refusing to act")]
    Inconsistent {
        /// Signed difference, enclave minus NSM, milliseconds.
        skew_ms: i128,
        /// The allowed difference.
        max_ms: u128,
    },
}

/// A source of trusted time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Result<Time, ClockError>;
}

/// The enclave's own clock (in a Nitro enclave: the kernel clock fed by the Nitro hypervisor's
/// PTP clock, not the parent instance).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

fn system_time() -> Result<std::time::Duration, ClockError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| ClockError::Unrepresentable(e.to_string()))
}

fn to_time(since: std::time::Duration) -> Result<Time, ClockError> {
    let nanos =
        i128::try_from(since.as_nanos()).map_err(|e| ClockError::Unrepresentable(e.to_string()))?;
    Time::from_unix_timestamp(
        i64::try_from(nanos / 1_000_000_000)
            .map_err(|e| ClockError::Unrepresentable(e.to_string()))?,
        u32::try_from(nanos % 1_000_000_000)
            .map_err(|e| ClockError::Unrepresentable(e.to_string()))?,
    )
    .map_err(|e| ClockError::Unrepresentable(e.to_string()))
}

impl Clock for SystemClock {
    fn now(&self) -> Result<Time, ClockError> {
        to_time(system_time()?)
    }
}

/// The enclave clock, cross-checked at every reading against the timestamp of a fresh
/// attestation document from the Nitro Secure Module (a random nonce in the request, checked in
/// the document, so an old document cannot stand in). The NSM is reached by an ioctl inside the
/// enclave, never through the host, so its answer needs no signature check here. If the two
/// differ by more than `max_skew`, the clock refuses to answer and the runtime acts on nothing.
pub struct AttestedClock {
    nsm: std::sync::Arc<dyn kms_nsm::Nsm>,
    max_skew: std::time::Duration,
    local: Box<dyn Fn() -> Result<std::time::Duration, ClockError> + Send + Sync>,
}

impl std::fmt::Debug for AttestedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AttestedClock({}, ±{:?})",
            self.nsm.kind(),
            self.max_skew
        )
    }
}

impl AttestedClock {
    /// The system clock checked against `nsm` within `max_skew`.
    pub fn new(nsm: std::sync::Arc<dyn kms_nsm::Nsm>, max_skew: std::time::Duration) -> Self {
        Self::with_local(nsm, max_skew, system_time)
    }

    /// The same with another local clock (tests).
    pub fn with_local(
        nsm: std::sync::Arc<dyn kms_nsm::Nsm>,
        max_skew: std::time::Duration,
        local: impl Fn() -> Result<std::time::Duration, ClockError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            nsm,
            max_skew,
            local: Box::new(local),
        }
    }
}

impl Clock for AttestedClock {
    fn now(&self) -> Result<Time, ClockError> {
        let mut nonce = vec![0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let raw = self
            .nsm
            .attest(&kms_nsm::AttestationRequest {
                user_data: None,
                nonce: Some(nonce.clone()),
                public_key: None,
            })
            .map_err(|e| ClockError::Attestation(e.to_string()))?;
        let doc = kms_attestation::document::parse_unverified(&raw)
            .map_err(|e| ClockError::Attestation(e.to_string()))?;
        if doc.nonce.as_deref() != Some(nonce.as_slice()) {
            return Err(ClockError::Attestation(
                "document is not for this request".into(),
            ));
        }
        let local = (self.local)()?;
        let skew_ms = local.as_millis() as i128 - i128::from(doc.timestamp_ms);
        let max_ms = self.max_skew.as_millis();
        if skew_ms.unsigned_abs() > max_ms {
            return Err(ClockError::Inconsistent { skew_ms, max_ms });
        }
        to_time(local)
    }
}
