//! What CI does in production, played here: its writable registry on a bucket (the only writer),
//! and the images it pushes through it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Key, REGISTRY_IMAGE, docker, free_port, wait_until};

/// Starts CI's writable registry as container `name` on this host's engine, storing in `bucket` on
/// the S3 server at `endpoint` (as this host reaches it), signing with `key`. `scratch` is a
/// directory of the test's own for its config and env file. Returns the registry's port.
pub fn start_ci_registry(name: &str, endpoint: &str, key: &Key, bucket: &str, scratch: &Path) -> u16 {
    let port = free_port();
    // Containers reach a server on this host's loopback through the docker bridge gateway.
    let endpoint = endpoint.replace("127.0.0.1", "host.docker.internal");
    let config = format!(
        "version: 0.1\nstorage:\n  s3:\n    region: us-east-1\n    bucket: {bucket}\n    regionendpoint: {endpoint}\n    \
         forcepathstyle: true\n    rootdirectory: /registry\n    v4auth: true\n  redirect:\n    disable: true\n\
         http:\n  addr: :5000\n"
    );
    // The key goes to docker through a file of the test's own, never on a command line.
    let env_file = scratch.join(format!("{name}.env"));
    std::fs::write(&env_file, format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", key.id, key.secret))
        .expect("write the CI registry's env file");
    docker(&[
        "create",
        "--name",
        name,
        "-p",
        &format!("127.0.0.1:{port}:5000"),
        "--add-host",
        "host.docker.internal:host-gateway",
        "--env-file",
        env_file.to_str().expect("utf-8"),
        REGISTRY_IMAGE,
    ]);
    let file = scratch.join(format!("{name}.yml"));
    std::fs::write(&file, config).expect("write CI registry config");
    docker(&["cp", file.to_str().expect("utf-8"), &format!("{name}:/etc/docker/registry/config.yml")]);
    docker(&["start", name]);
    wait_http_ok(&format!("http://127.0.0.1:{port}/v2/"));
    port
}

/// Builds an image of `bytes` random bytes and pushes it as CI would, to `registry_port`.
/// The local copies are removed, so a later pull really pulls. Returns the pushed digest.
pub fn push_image(registry_port: u16, name: &str, bytes: usize) -> String {
    let reference = format!("127.0.0.1:{registry_port}/{name}");
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = layer_tar(dir.path(), "data.bin", &random_bytes(bytes));
    docker(&["import", tarball.to_str().expect("utf-8"), &reference]);
    let pushed = docker(&["push", &reference]);
    docker(&["rmi", &reference]);
    pushed
        .lines()
        .find_map(|l| l.split("digest: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("push prints a digest")
        .to_string()
}

/// Waits until `url` answers 200.
pub fn wait_http_ok(url: &str) {
    wait_until(format!("{url} to answer 200"), Duration::from_secs(30), || {
        let out =
            std::process::Command::new("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).output();
        out.is_ok_and(|o| o.stdout == b"200")
    });
}

/// Writes `dir/layer.tar`: one file, `name`, holding `data`; `docker import` makes it an image.
pub fn layer_tar(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let tarball = dir.join("layer.tar");
    let mut builder = tar::Builder::new(std::fs::File::create(&tarball).expect("create tar"));
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, data).expect("append");
    builder.finish().expect("finish tar");
    tarball
}

/// Incompressible bytes, so image sizes mean what they say (xorshift; no crate needed).
fn random_bytes(len: usize) -> Vec<u8> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut state = now ^ (u64::from(std::process::id()) << 32) ^ call.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
