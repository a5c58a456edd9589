//! CI's signer, played by a real, independent one: Debian trixie's skopeo in the testbed image
//! `devbox-testbed/skopeo` (`tests/testbed/skopeo/build.sh`). It makes cosign-format key pairs
//! (`skopeo generate-sigstore-key`) and signs what CI pushed (`skopeo copy
//! --sign-by-sigstore-private-key`), writing the `sha256-<digest>.sig` tag into CI's registry, as
//! cosign would. Attackers' artifacts (copied signatures, corrupt manifests) are written through
//! the registry's HTTP API with curl.

use std::path::Path;
use std::process::Command;

use crate::testbed::docker_try;

pub const SKOPEO_IMAGE: &str = "devbox-testbed/skopeo";

/// Makes sure the signer image is there, building it with its script when it is not.
fn ensure_image() {
    if docker_try(&["image", "inspect", SKOPEO_IMAGE]).0 {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/skopeo/build.sh");
    let built = Command::new("sh").arg(&script).status().expect("run skopeo/build.sh");
    assert!(built.success(), "building {SKOPEO_IMAGE} failed (see above); run tests/testbed/up.sh");
}

/// Two key pairs, made by skopeo in a directory of the test's own: `trusted` and `other`.
pub struct Signer {
    dir: tempfile::TempDir,
}

impl Signer {
    pub fn new() -> Signer {
        ensure_image();
        let signer = Signer { dir: tempfile::tempdir().expect("tempdir") };
        std::fs::write(signer.dir.path().join("passphrase"), "devbox-test-passphrase\n").expect("passphrase");
        signer.skopeo_sh(
            "skopeo generate-sigstore-key --output-prefix trusted --passphrase-file passphrase >/dev/null && \
             skopeo generate-sigstore-key --output-prefix other --passphrase-file passphrase >/dev/null",
        );
        signer
    }

    /// The public key `name` ("trusted" or "other"), PEM, as cosign.pub holds it.
    pub fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.pub"))).expect("read the public key")
    }

    /// Where the public key `name` is, for a config that names it by path.
    pub fn public_key_path(&self, name: &str) -> String {
        self.dir.path().join(format!("{name}.pub")).display().to_string()
    }

    /// Signs `from` with key `key`, copying it to `to` (both `127.0.0.1:PORT/repo:tag` in CI's
    /// registry; the same reference signs in place), its digest preserved.
    pub fn sign(&self, key: &str, from: &str, to: &str) {
        self.skopeo_sh(&format!(
            "skopeo copy --quiet --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
             --sign-by-sigstore-private-key {key}.private --sign-passphrase-file passphrase \
             docker://{from} docker://{to}"
        ));
    }

    /// Runs `script` in the signer's image, in the key directory, on the host's network (so that
    /// CI's registry on 127.0.0.1 is reachable).
    fn skopeo_sh(&self, script: &str) {
        let mount = format!("{}:/work", self.dir.path().display());
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "host", "-v", &mount, "--entrypoint", "sh", SKOPEO_IMAGE, "-c", script])
            .output()
            .expect("run docker");
        assert!(
            out.status.success(),
            "skopeo failed ({script}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// CI's registry's HTTP API, for the artifacts an attacker writes.
pub struct Api {
    pub base: String,
}

fn curl(args: &[&str]) -> (String, Vec<u8>) {
    // No `Expect: 100-continue`: its interim answer would come first.
    let out =
        Command::new("curl").args(["-s", "-S", "-D", "-", "-H", "Expect:"]).args(args).output().expect("run curl");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    // Headers, a blank line, then the body.
    let text = out.stdout;
    let split = text.windows(4).position(|w| w == b"\r\n\r\n").map_or(text.len(), |p| p + 4);
    (String::from_utf8_lossy(&text[..split]).to_string(), text[split..].to_vec())
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn status(headers: &str) -> u16 {
    headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api { base: format!("http://127.0.0.1:{port}") }
    }

    /// Uploads `bytes` as a blob of `repo`; returns its digest.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let (headers, _) = curl(&["-X", "POST", &format!("{}/v2/{repo}/blobs/uploads/", self.base)]);
        assert_eq!(status(&headers), 202, "{headers}");
        let location = header(&headers, "location").expect("an upload location");
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location.into() };
        let sep = if location.contains('?') { '&' } else { '?' };
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), bytes).expect("write blob");
        let (headers, _) = curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.path().display()),
            &format!("{location}{sep}digest={digest}"),
        ]);
        assert_eq!(status(&headers), 201, "{headers}");
        digest
    }

    /// Makes blob `digest` of repository `from` one of `repo`'s too (a cross-repository mount).
    pub fn mount_blob(&self, repo: &str, from: &str, digest: &str) {
        let url = format!("{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}", self.base);
        let (headers, _) = curl(&["-X", "POST", &url]);
        assert_eq!(status(&headers), 201, "{headers}");
    }

    /// The manifest `repo:reference`, with its media type.
    pub fn manifest(&self, repo: &str, reference: &str) -> (String, Vec<u8>) {
        let accept =
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
        let (headers, body) = curl(&["-H", accept, &format!("{}/v2/{repo}/manifests/{reference}", self.base)]);
        assert_eq!(status(&headers), 200, "{headers}");
        (header(&headers, "content-type").unwrap_or_default().to_string(), body)
    }

    /// Writes `body` as the manifest `repo:tag`, of type `media_type`.
    pub fn put_manifest(&self, repo: &str, tag: &str, media_type: &str, body: &[u8]) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), body).expect("write manifest");
        let (headers, answer) = curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", file.path().display()),
            &format!("{}/v2/{repo}/manifests/{tag}", self.base),
        ]);
        assert_eq!(status(&headers), 201, "{headers}{}", String::from_utf8_lossy(&answer));
    }

    /// An OCI artifact at `repo:tag` with one layer of `layer_type` holding `layer`, annotated with
    /// a signature that is not one (base64 of "forged").
    pub fn put_artifact(&self, repo: &str, tag: &str, layer_type: &str, layer: &[u8]) {
        let config = b"{}";
        let config_digest = self.put_blob(repo, config);
        let layer_digest = self.put_blob(repo, layer);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
            "layers": [{
                "mediaType": layer_type, "digest": layer_digest, "size": layer.len(),
                "annotations": { "dev.cosignproject.cosign/signature": "Zm9yZ2Vk" }
            }]
        });
        let body = serde_json::to_vec(&manifest).expect("json");
        self.put_manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &body);
    }

    /// Copies the signature artifact of `digest` in `from` to the signature tag of `as_digest` in
    /// `repo`: what an attacker who can write the bucket does with a signature of something else.
    pub fn copy_signature(&self, from: &str, digest: &str, repo: &str, as_digest: &str) {
        let (media_type, body) = self.manifest(from, &signature_tag(digest));
        if from != repo {
            let manifest: serde_json::Value = serde_json::from_slice(&body).expect("a manifest");
            let config = manifest["config"]["digest"].as_str().expect("config digest").to_string();
            let layers = manifest["layers"].as_array().expect("layers").iter();
            for blob in std::iter::once(config).chain(layers.map(|l| l["digest"].as_str().expect("digest").to_string()))
            {
                self.mount_blob(repo, from, &blob);
            }
        }
        self.put_manifest(repo, &signature_tag(as_digest), &media_type, &body);
    }
}

/// `sha256:<hex>` → `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}
