//! Integration tests: the real `devbox` binary against the real testbed (Docker engine, a registry
//! image built from Debian's docker-registry, and moto's S3 server). See `testbed.rs`.

mod cleanup;
mod cli;
mod private_engine;
mod registry;
mod schedule;
mod testbed;
