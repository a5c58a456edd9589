//! Integration tests: the real `devbox` binary against the real testbed (Docker engine, a registry
//! image built from Debian's docker-registry, and moto's S3 server). See `testbed.rs`.

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
mod vm;
