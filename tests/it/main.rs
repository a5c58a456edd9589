//! Integration tests: the real `devbox` binary against the real testbed (Docker engine, a registry
//! image built from Debian's docker-registry, moto's S3 server, Garage, an S3 server that expires
//! keys, and a VM engine). Every test runs in a `Bed` (`testbed.rs`) and runs devbox through the
//! `Test` builder: `bed.test(&["registry", "up"]).code(1).stderr_has("…").run()`. `garage_bed.rs`,
//! `vm_bed.rs` and `podman_bed.rs` make `Bed`s on Garage, on the VM's engine and on podman's.

// Test code: a failed expectation is the test failing, and what it prints is the test's log.
#![allow(clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]
// A `Test` or an S3 server builder left without its `.run()` or `.start()` is a test that checks
// nothing: it does not compile.
#![deny(unused_must_use)]

mod cleanup;
mod cli;
mod clock;
mod credentials;
mod credentials_narrowed;
mod docs;
mod doctor;
mod fleet;
mod fleet_trust;
mod garage_bed;
mod init;
mod install;
mod lifecycle;
mod network;
mod podman;
mod podman_bed;
mod private_engine;
mod pull;
mod registry;
mod registry_lines;
mod release;
mod release_feed;
mod schedule;
mod security;
mod self_update;
mod signatures;
mod signer;
mod speed;
mod testbed;
mod trust;
mod vm;
mod vm_bed;
mod vm_systemd;
