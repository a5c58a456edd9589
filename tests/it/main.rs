//! Integration tests: the real `devbox` binary against the real testbed (Docker engine, a registry
//! image built from Debian's docker-registry, and moto's S3 server). See `testbed.rs`.

mod cleanup;
mod cli;
mod clock;
mod doctor;
mod init;
mod private_engine;
mod pull;
mod registry;
mod schedule;
mod testbed;
