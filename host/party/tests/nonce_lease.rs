//! The party account's nonce, leased to one job at a time across a party's enclaves, against a
//! devnet's RPC: a nonce only for a job in hand, advanced by a broadcast, resynced to what a
//! bad-nonce refusal names, and never left held by a job that ended while it waited.

use kms_channel::NonceSource;
use kms_connector::ChainRpc;
use kms_devnet::dev::DevSetup;
use kms_devnet::{Node, PersistentChain};
use kms_host::{Nonces, Settled};
use std::sync::Arc;
use std::time::Duration;
use tendermint::Time;

async fn devnet(dir: &std::path::Path) -> (ChainRpc, Vec<tokio::task::JoinHandle<()>>) {
    let setup = DevSetup::new("kms-nonces", 4, 1, 4, Time::now());
    let genesis = setup.genesis.clone();
    let chain = PersistentChain::open_or_create(dir, || genesis).unwrap();
    let node = Node::new(chain);
    let (addr, server) = node
        .serve_rpc("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let producer = node.spawn_producer(Duration::from_millis(200));
    (
        ChainRpc::new(&format!("http://{addr}")).unwrap(),
        vec![server, producer],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_is_for_the_job_in_hand_and_follows_what_became_of_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, _tasks) = devnet(dir.path()).await;
    let nonces = Nonces::new(rpc, [7; 20]);
    let lease = nonces.lease();
    // No job, no nonce.
    assert!(lease.next_nonce().await.is_err());
    lease.begin();
    assert_eq!(lease.next_nonce().await.unwrap(), 0);
    // Asked twice within one job: the same.
    assert_eq!(lease.next_nonce().await.unwrap(), 0);
    lease.settle(Settled::Broadcast);
    assert!(!lease.is_held());
    lease.begin();
    assert_eq!(lease.next_nonce().await.unwrap(), 1);
    // Refused for another reason: the nonce is still free.
    lease.settle(Settled::Unused);
    lease.begin();
    assert_eq!(lease.next_nonce().await.unwrap(), 1);
    // Refused for its nonce: the next one is what the refusal named (pending included).
    lease.settle(Settled::Stale(Some(9)));
    lease.begin();
    assert_eq!(lease.next_nonce().await.unwrap(), 9);
    // Unknown: back to the chain's committed nonce.
    lease.settle(Settled::Stale(None));
    lease.begin();
    assert_eq!(lease.next_nonce().await.unwrap(), 0);
    lease.settle(Settled::Unused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_taken_for_a_job_that_ended_meanwhile_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (rpc, _tasks) = devnet(dir.path()).await;
    let nonces = Nonces::new(rpc, [8; 20]);
    let (a, b, c) = (
        Arc::new(nonces.lease()),
        Arc::new(nonces.lease()),
        Arc::new(nonces.lease()),
    );
    // Slot A holds the nonce while it broadcasts.
    a.begin();
    assert_eq!(a.next_nonce().await.unwrap(), 0);
    // Slot B's enclave asks meanwhile, and B's job ends (its enclave gave up or died) while
    // the request still waits for the nonce.
    b.begin();
    let waiting = tokio::spawn({
        let b = b.clone();
        async move { b.next_nonce().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.settle(Settled::Unused);
    a.settle(Settled::Broadcast);
    assert!(
        waiting.await.unwrap().is_err(),
        "a job that ended gets no nonce"
    );
    assert!(!b.is_held(), "nobody holds the nonce for a job that ended");
    // Slot C's next job gets the next nonce at once.
    c.begin();
    let next = tokio::time::timeout(Duration::from_secs(5), c.next_nonce())
        .await
        .expect("the nonce was left leased by a job that ended");
    assert_eq!(next.unwrap(), 1);
    c.settle(Settled::Unused);
}
