//! Integration tests: the real `devbox` binary against the real testbed (Docker engine, a registry
//! image built from Debian's docker-registry, and moto's S3 server). See `testbed.rs`.

// Test code: a failed expectation is the test failing, and what it prints is the test's log.
#![allow(clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

mod cleanup;
mod cli;
mod clock;
mod doctor;
mod init;
mod install;
mod private_engine;
mod pull;
mod registry;
mod registry_lines;
mod release_feed;
mod schedule;
mod self_update;
mod testbed;
