//! The enclave's trusted time. The light client's `now` comes from here, never from the host.

use tendermint::Time;

/// Why the clock cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// The clock reads a time CometBFT's types cannot represent.
    #[error("clock reads an unrepresentable time: {0}")]
    Unrepresentable(String),
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

impl Clock for SystemClock {
    fn now(&self) -> Result<Time, ClockError> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| ClockError::Unrepresentable(e.to_string()))?;
        let nanos = i128::try_from(since.as_nanos())
            .map_err(|e| ClockError::Unrepresentable(e.to_string()))?;
        Time::from_unix_timestamp(
            i64::try_from(nanos / 1_000_000_000)
                .map_err(|e| ClockError::Unrepresentable(e.to_string()))?,
            u32::try_from(nanos % 1_000_000_000)
                .map_err(|e| ClockError::Unrepresentable(e.to_string()))?,
        )
        .map_err(|e| ClockError::Unrepresentable(e.to_string()))
    }
}
