//! A cap on the party connections one remote address may have relayed to the enclave at once.
//!
//! The enclave's channel holds at most [`kms_channel::mux::MAX_CONNS`] relayed connections; a
//! single other party's host (or anyone reaching the port) could otherwise fill them and keep
//! the honest parties' connections out. The mesh needs a handful per peer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most relayed connections from one remote address.
pub const MAX_PER_ADDRESS: usize = 32;

/// Counts live relayed connections by remote address.
#[derive(Clone, Debug, Default)]
pub struct PeerLimiter {
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
}

/// One admitted connection's place; released when dropped.
#[derive(Debug)]
pub struct Permit {
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.ip);
            }
        }
    }
}

impl PeerLimiter {
    /// At most `max` live connections per address.
    pub fn new(max: usize) -> Self {
        Self {
            live: Arc::default(),
            max,
        }
    }

    /// A place for a connection from `ip`, if it has fewer than the maximum.
    pub fn admit(&self, ip: IpAddr) -> Option<Permit> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let n = live.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Permit {
            live: self.live.clone(),
            ip,
        })
    }
}

/// A stream that holds its [`Permit`] for as long as it lives.
pub struct Counted<T> {
    inner: T,
    _permit: Permit,
}

impl<T> Counted<T> {
    /// `inner`, counted under `permit`.
    pub fn new(inner: T, permit: Permit) -> Self {
        Self {
            inner,
            _permit: permit,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_place() {
        let limiter = PeerLimiter::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert!(limiter.admit(a).is_none());
        // Another party is not affected.
        assert!(limiter.admit(b).is_some());
        // A closed connection frees its place.
        drop(first);
        assert!(limiter.admit(a).is_some());
    }
}
