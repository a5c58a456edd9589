//! moto's S3 server: the shared one every bed's bucket lives in, or one of a bed's own.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, port_open, wait_until};

/// Starts `command` (a shell line, its output redirected by itself) under a watcher that ends it
/// when this test process ends, however it ends; writes the command's PID to `pid_file` if given.
/// The returned child is the watcher.
pub fn watched(command: String, pid_file: Option<&std::path::Path>) -> std::io::Result<Child> {
    let record = pid_file.map(|p| format!("echo $c >{}; ", p.display())).unwrap_or_default();
    let watcher = format!(
        "{command} & c=$!; {record}\
         while kill -0 {parent} 2>/dev/null && kill -0 $c 2>/dev/null; do sleep 1; done; kill $c 2>/dev/null",
        parent = std::process::id()
    );
    Command::new("sh").args(["-c", &watcher]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
}

/// Starts moto's S3 server on all addresses (containers reach it through the docker bridge
/// gateway as host.docker.internal), and ends it when this test process ends.
pub fn start_moto() -> (u16, Child) {
    let port = free_port();
    let child =
        watched(format!("python3 -m moto.server -H 0.0.0.0 -p {port} >/dev/null 2>&1"), None).expect("start moto");
    wait_until(
        format!("moto's S3 server to start on port {port} (install it: pip install 'moto[server]')"),
        Duration::from_secs(30),
        || port_open(port),
    );
    (port, child)
}

/// Stops the moto started on `port` by `start_moto`.
pub fn stop_moto(port: u16) {
    let _ = Command::new("pkill").args(["-f", &format!("moto.server -H 0.0.0.0 -p {port}$")]).status();
    wait_until(format!("moto on port {port} to stop"), Duration::from_secs(10), || !port_open(port));
}

/// An S3 request to moto. moto does not check signatures, so plain HTTP is enough here.
pub fn s3(endpoint: &str, method: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}", "-X", method, &format!("{endpoint}{path}")])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

pub fn create_bucket(endpoint: &str, bucket: &str) {
    let (status, body) = s3(endpoint, "PUT", &format!("/{bucket}"));
    assert_eq!(status, 200, "creating bucket {bucket} in moto: {body}");
}

pub fn empty_and_delete_bucket(endpoint: &str, bucket: &str) {
    let (_, listing) = s3(endpoint, "GET", &format!("/{bucket}?list-type=2&max-keys=1000"));
    for key in listing.split("<Key>").skip(1).filter_map(|rest| rest.split("</Key>").next()) {
        let _ = s3(endpoint, "DELETE", &format!("/{bucket}/{key}"));
    }
    let _ = s3(endpoint, "DELETE", &format!("/{bucket}"));
}
