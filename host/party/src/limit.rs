//! Caps on the party connections relayed to the enclave at once: per remote address (an IPv6
//! address counts by its /64, which one host usually holds whole) and in total.
//!
//! The enclave's channel holds at most [`kms_channel::mux::MAX_CONNS`] relayed connections,
//! incoming and outgoing (peers, AWS KMS) together, and its TLS layer at most 32 handshakes in
//! flight. Anyone reaching the port could otherwise fill them and keep the honest parties'
//! connections out, or leave the enclave no room to dial. The mesh needs one or two per peer;
//! in developer mode every party is 127.0.0.1.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most relayed connections from one remote address (below the enclave's 32 handshakes in
/// flight, so one address cannot hold them all).
pub const MAX_PER_ADDRESS: usize = 8;
/// Most incoming relayed connections in all (half the channel's, so outgoing ones have room).
pub const MAX_INCOMING: usize = kms_channel::mux::MAX_CONNS / 2;

/// Counts live relayed connections by remote address.
#[derive(Clone, Debug, Default)]
pub struct PeerLimiter {
    live: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max: usize,
    max_total: usize,
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
    /// At most `max` live connections per address and `max_total` in all.
    pub fn new(max: usize, max_total: usize) -> Self {
        Self {
            live: Arc::default(),
            max,
            max_total,
        }
    }

    /// A place for a connection from `ip`, if its address (an IPv6 address's /64) has fewer
    /// than the maximum and the total is below its cap.
    pub fn admit(&self, ip: IpAddr) -> Option<Permit> {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut o = v6.octets();
                    o.iter_mut().skip(8).for_each(|b| *b = 0);
                    IpAddr::V6(o.into())
                }
            },
            v4 => v4,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.values().sum::<usize>() >= self.max_total {
            return None;
        }
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
        let limiter = PeerLimiter::new(2, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert!(limiter.admit(a).is_none());
        // Another party is not affected.
        assert!(limiter.admit(b).is_some());
        // A closed connection frees its place.
        drop(first);
        let _third = limiter.admit(a).unwrap();
        // The total cap of 3: two from a and this one.
        let _fourth = limiter.admit("10.0.0.3".parse().unwrap()).unwrap();
        assert!(limiter.admit("10.0.0.4".parse().unwrap()).is_none());
    }

    #[test]
    fn an_ipv6_host_counts_by_its_slash_64() {
        let limiter = PeerLimiter::new(2, 100);
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = limiter.admit(x).unwrap();
        let _b = limiter.admit(y).unwrap();
        assert!(limiter.admit(x).is_none());
        assert!(limiter.admit(z).is_some());
    }
}
