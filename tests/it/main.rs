//! Integration tests: the real `devbox` binary against the real testbed (Docker engine, a registry
//! image built from Debian's docker-registry, moto's S3 server, and Garage, an S3 server that
//! expires keys). See `testbed.rs` and `garage_bed.rs`.

// Test code: a failed expectation is the test failing, and what it prints is the test's log.
#![allow(clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod cleanup;
mod cli;
mod clock;
mod credentials;
mod doctor;
mod garage_bed;
mod init;
mod install;
mod private_engine;
mod pull;
mod registry;
mod registry_lines;
mod release;
mod release_feed;
mod schedule;
mod security;
mod self_update;
mod speed;
mod testbed;
mod vm;
mod vm_bed;
