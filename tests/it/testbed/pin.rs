//! The testbed's registry images pinned by digest, as devbox's default `registry.image` is.

use std::path::Path;
use std::process::Command;

/// `image` pushed to a local registry and pulled back by `tests/testbed/pin-images.sh` (idempotent),
/// as `127.0.0.1:5990/<name>:<tag>@sha256:<its digest>`: a reference pinned by digest, the way
/// devbox's default `registry.image` is.
pub fn pin_by_digest(image: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/pin-images.sh");
    let pinned = Command::new("sh").arg(&script).arg(image).status().expect("run pin-images.sh");
    assert!(pinned.success(), "pinning the testbed registry image by digest failed (see above)");
    let pulled = format!("127.0.0.1:5990/{image}");
    let repo = format!("{}@", pulled.rsplit_once(':').map_or(pulled.as_str(), |(repo, _)| repo));
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", &pulled])
        .output()
        .expect("docker image inspect");
    let digests = String::from_utf8_lossy(&out.stdout).into_owned();
    let digest = digests.lines().find_map(|l| l.strip_prefix(&repo)).unwrap_or_else(|| panic!("{pulled}: {digests}"));
    format!("{pulled}@{digest}")
}
