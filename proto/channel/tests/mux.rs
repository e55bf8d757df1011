//! The channel multiplexer over a real Unix socket pair: relayed party connections in both
//! directions carry bytes unchanged and independently; oversized and malformed frames are
//! refused before allocation and end the channel.

use kms_channel::mux::{BoxIo, Dialer, EnclaveChannel, Handler, HostChannel};
use kms_channel::wire::Destination;
use kms_channel::wire::{self, HostRequest, HostResponse, WireError, MAX_FRAME_BYTES};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP echo server standing in for another party's host.
async fn echo_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn relayed_connections_carry_bytes_both_ways() {
    let (host_io, enclave_io) = tokio::net::UnixStream::pair().unwrap();
    let echo = echo_server().await;
    let dial: Dialer = Arc::new(move |to| {
        Box::pin(async move {
            assert_eq!(to, Destination::Party(3));
            let s = tokio::net::TcpStream::connect(echo).await?;
            Ok(Box::new(s) as BoxIo)
        })
    });
    let handle: Handler = Arc::new(|req| {
        Box::pin(async move {
            match req {
                HostRequest::Fetch { digest } => HostResponse::Blob(Some(digest.to_vec())),
                _ => HostResponse::Failed("no storage here".into()),
            }
        })
    });
    let host = HostChannel::start(Box::new(host_io), dial, handle);
    let (enclave, _jobs, mut accepted) = EnclaveChannel::start(Box::new(enclave_io));

    // Requests to the host, answered by its handler.
    assert_eq!(
        enclave
            .request(HostRequest::Fetch { digest: [5; 32] })
            .await
            .unwrap(),
        HostResponse::Blob(Some(vec![5; 32]))
    );
    assert!(matches!(
        enclave
            .request(HostRequest::GetSealed { name: "x".into() })
            .await
            .unwrap(),
        HostResponse::Failed(_)
    ));

    // Enclave → party 3 (echo): two connections at once, large payloads, in chunks.
    let mut a = enclave.dial(3).await.unwrap();
    let mut b = enclave.dial(3).await.unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    a.write_all(&big).await.unwrap();
    b.write_all(b"second").await.unwrap();
    let mut got = vec![0u8; big.len()];
    a.read_exact(&mut got).await.unwrap();
    assert_eq!(got, big);
    let mut got = [0u8; 6];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"second");

    // Another party → host → enclave.
    let (outside, inside) = tokio::io::duplex(1024);
    host.relay_incoming(Box::new(inside)).await.unwrap();
    let mut conn = accepted.recv().await.unwrap();
    let mut outside = outside;
    outside.write_all(b"hello enclave").await.unwrap();
    let mut got = [0u8; 13];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello enclave");
    conn.write_all(b"hello party").await.unwrap();
    let mut got = [0u8; 11];
    outside.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello party");
}

#[tokio::test]
async fn oversized_and_malformed_frames_are_refused() {
    let (mut w, mut r) = tokio::io::duplex(64);
    let len = (MAX_FRAME_BYTES as u32 + 1).to_be_bytes();
    w.write_all(&len).await.unwrap();
    let e = wire::read::<kms_channel::wire::ToEnclave, _>(&mut r)
        .await
        .unwrap_err();
    assert!(matches!(e, WireError::TooLarge(n) if n == MAX_FRAME_BYTES + 1));

    let (mut w, mut r) = tokio::io::duplex(64);
    w.write_all(&3u32.to_be_bytes()).await.unwrap();
    w.write_all(&[0xff, 0xff, 0xff]).await.unwrap();
    let e = wire::read::<kms_channel::wire::ToEnclave, _>(&mut r)
        .await
        .unwrap_err();
    assert!(matches!(e, WireError::Malformed(_)));
}

/// When the enclave's end goes away, every connection the host relays to it is closed (a peer
/// sees EOF at once instead of waiting on a connection nobody answers), and the host refuses
/// to relay new ones.
#[tokio::test]
async fn relayed_connections_close_when_the_enclave_goes_away() {
    let (host_io, enclave_io) = tokio::net::UnixStream::pair().unwrap();
    let dial: Dialer = Arc::new(|_| Box::pin(async { Err(std::io::Error::other("no peers")) }));
    let handle: Handler = Arc::new(|_| Box::pin(async { HostResponse::Failed("none".into()) }));
    let host = HostChannel::start(Box::new(host_io), dial, handle);
    let (mut outside, inside) = tokio::io::duplex(1024);
    host.relay_incoming(Box::new(inside)).await.unwrap();
    // The enclave's side reads the announcement, then the enclave process dies: its end of the
    // socket closes.
    let mut enclave_io = enclave_io;
    let first = wire::read::<kms_channel::wire::ToEnclave, _>(&mut enclave_io)
        .await
        .unwrap();
    assert!(matches!(
        first,
        Some(kms_channel::wire::ToEnclave::PeerAccepted { .. })
    ));
    drop(enclave_io);
    tokio::time::timeout(std::time::Duration::from_secs(5), host.closed())
        .await
        .expect("the host noticed");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), outside.read(&mut buf))
        .await
        .expect("the relayed connection closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let (_, another) = tokio::io::duplex(1024);
    assert!(host.relay_incoming(Box::new(another)).await.is_err());
}

/// A hostile host pushes relayed bytes into many connections its enclave never reads. Each
/// stays under its own queue bound (3 MiB of 64 KiB chunks), but together they exceed the
/// shared inbound budget: the enclave closes connections instead of buffering 96 MiB, and a
/// closed connection drops what it had queued (its budget returns at once; its reader gets at
/// most what already sat in the pipe, then end-of-stream).
#[tokio::test]
async fn relayed_bytes_nobody_reads_stay_within_the_inbound_budget() {
    use kms_channel::mux::INBOUND_BUDGET_BYTES;
    use kms_channel::wire::{PeerFrame, ToEnclave, PEER_CHUNK_BYTES};
    const CONNS: u64 = 32;
    const CHUNKS: usize = 48;
    let (mut host_io, enclave_io) = tokio::net::UnixStream::pair().unwrap();
    let (_enclave, _jobs, mut accepted) = EnclaveChannel::start(Box::new(enclave_io));
    let frame = |m: &ToEnclave| wire::encode(m).unwrap();
    let writer = tokio::spawn(async move {
        for c in 0..CONNS {
            host_io
                .write_all(&frame(&ToEnclave::PeerAccepted { conn: 2 * c + 2 }))
                .await
                .unwrap();
        }
        for _ in 0..CHUNKS {
            for c in 0..CONNS {
                let data = ToEnclave::Peer(PeerFrame::Data {
                    conn: 2 * c + 2,
                    bytes: vec![7u8; PEER_CHUNK_BYTES],
                });
                host_io.write_all(&frame(&data)).await.unwrap();
            }
        }
        // A last connection: once it is announced, every frame before it was handled.
        host_io
            .write_all(&frame(&ToEnclave::PeerAccepted { conn: 10_000 }))
            .await
            .unwrap();
        host_io
    });
    let mut conns = Vec::new();
    for _ in 0..=CONNS {
        conns.push(accepted.recv().await.unwrap());
    }
    let _host_io = writer.await.unwrap();
    conns.pop();
    // What each connection delivers: a closed one ends early, an open one blocks after all.
    let (mut total, mut closed) = (0usize, 0usize);
    let pipe = 256 << 10;
    for mut io in conns {
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match tokio::time::timeout(std::time::Duration::from_millis(300), io.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    assert!(
                        got <= pipe + PEER_CHUNK_BYTES,
                        "a closed connection delivered {got} bytes"
                    );
                    break;
                }
                Ok(Ok(n)) => got += n,
                Err(_) => break,
            }
        }
        total += got;
    }
    assert!(closed > 0, "no connection was closed");
    let sent = CONNS as usize * CHUNKS * PEER_CHUNK_BYTES;
    assert!(total < sent);
    // The budget, plus what sits in each connection's pipe.
    assert!(total <= INBOUND_BUDGET_BYTES + CONNS as usize * pipe + PEER_CHUNK_BYTES);
}
