//! Party-to-party transport over the network: each party serves `Party.Deliver` over gRPC and
//! sends to its peers, over mutually attested TLS ([`tls`]) whose connections the hosts relay.
//! The [`Transport`] trait, sessions, inboxes and the in-process network are `kms-party-net`'s
//! (re-exported here).
//!
//! * [`grpc`]: the gRPC party (plain TCP for developer tests only, attested TLS otherwise).
//! * [`tls`]: the attested-TLS mesh of one party and the relayed-connection plumbing.

#![forbid(unsafe_code)]

pub mod grpc;
pub mod tls;

pub use kms_party_net::*;
