//! Signed base images (issue 26): `images.verify` against cosign signatures that a real,
//! independent signer (trixie's skopeo, `signer.rs`) wrote into CI's registry, read back through
//! devbox's registry on both registry lines and on Garage. Every bad case is refused under
//! `require` with the alias where it was and nothing removed; `warn` tags with a warning; doctor's
//! `image-signatures` check follows.

use crate::signer::{Api, Signer, signature_tag};
use crate::testbed::{Bed, docker, docker_try, pin_by_digest, registry_image_pinned};

const IMAGE: &str = "base/python:3.12";

/// The digests the image `reference` carries, one line each (empty when it is not there).
fn digests_of(reference: &str) -> String {
    let (_, text) =
        docker_try(&["image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", reference]);
    text
}

/// This bed's config: its registry on `image` (pinned by digest), the base image with an alias, `verify` and `keys`.
fn configure(bed: &Bed, image: &str, verify: &str, keys: &[String]) {
    let keys = keys.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
    bed.write_config_with_image(
        image,
        &format!(
            "[images]\nbase = [\"{IMAGE}\"]\nalias = \"{}/{{name}}\"\nverify = \"{verify}\"\npublic_keys = [{keys}]\n",
            bed.name
        ),
    );
}

fn pull_json(bed: &Bed, code: i32) -> serde_json::Value {
    let out = bed.test(&["pull", "--json"]).code(code).run();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// What a bed's pulls go through: CI's registry, the signer, the alias and local names.
struct World {
    ci: u16,
    api: Api,
    signer: Signer,
    alias: String,
    local: String,
}

impl World {
    fn new(bed: &mut Bed) -> World {
        let ci = bed.ci_registry();
        let alias = format!("{}/{IMAGE}", bed.name);
        let local = format!("127.0.0.1:{}/{IMAGE}", bed.port);
        bed.remove_image_later(&alias);
        bed.remove_image_later(&local);
        World { ci, api: Api::new(ci), signer: Signer::new(), alias, local }
    }

    fn ci_ref(&self, name: &str) -> String {
        format!("127.0.0.1:{}/{name}", self.ci)
    }

    /// CI pushes a new build of the image, unsigned; returns its digest.
    fn push(&self, bed: &mut Bed) -> String {
        bed.push_image(self.ci, IMAGE, 50_000)
    }

    /// CI pushes a new build and signs it with `key`.
    fn push_signed(&self, bed: &mut Bed, key: &str) -> String {
        let digest = self.push(bed);
        self.signer.sign(key, &self.ci_ref(IMAGE), &self.ci_ref(IMAGE));
        digest
    }
}

/// Under `require`, the pull of what CI pushed last fails, naming the image and `reason`, and
/// neither the alias nor the local image moves from `verified`.
fn refused(bed: &Bed, world: &World, verified: &str, signature: &str, reason: &str) {
    let json = pull_json(bed, 1);
    let entry = &json["images"][0];
    assert_eq!((entry["name"].as_str(), entry["status"].as_str()), (Some(IMAGE), Some("failed")), "{json}");
    assert_eq!(entry["signature"], signature, "{json}");
    let said = entry["reason"].as_str().unwrap_or_default();
    assert!(said.contains(reason) && said.contains("nothing was tagged or removed"), "{json}");
    assert!(digests_of(&world.alias).contains(verified), "the alias moved: {}", digests_of(&world.alias));
    assert!(digests_of(&world.local).contains(verified), "the local image moved: {}", digests_of(&world.local));
}

/// Signed pulls and tags; each bad case is refused with the alias intact; a bad key is a config
/// error that changes nothing; `warn` tags with a warning; doctor follows.
fn signed_base_images(test: &str, registry_image: &str) {
    let mut bed = Bed::new(test);
    let world = World::new(&mut bed);
    let trusted = world.signer.public_key("trusted");
    configure(&bed, registry_image, "require", std::slice::from_ref(&trusted));
    bed.test(&["registry", "up"]).run();

    // A signed image pulls, is tagged, and says so.
    let verified = world.push_signed(&mut bed, "trusted");
    let json = pull_json(&bed, 0);
    let entry = &json["images"][0];
    assert_eq!((entry["status"].as_str(), entry["signature"].as_str()), (Some("updated"), Some("verified")), "{json}");
    assert!(entry["signed_by"].as_str().is_some_and(|k| k.starts_with("sha256:")), "{json}");
    assert!(digests_of(&world.alias).contains(&verified));
    bed.test(&["pull"])
        .stdout_has(format!("{IMAGE}: unchanged"))
        .stdout_has("(verified)")
        .stdout_has("1 verified")
        .run();
    bed.test(&["doctor", "--check", "image-signatures"]).stdout_has("1 of 1 pulled verified").run();

    // An attacker's push, unsigned.
    let unsigned = world.push(&mut bed);
    refused(&bed, &world, &verified, "unsigned", &format!("unsigned (no signature {}", signature_tag(&unsigned)));
    bed.test(&["pull"]).code(1).stdout_has(format!("{IMAGE}: failed: refused")).stdout_has("1 unsigned").run();

    // Signed, but by another key.
    world.push_signed(&mut bed, "other");
    refused(&bed, &world, &verified, "bad_signature", "signed by no trusted key");

    // A trusted signature of another digest, copied beside this one.
    let attack = world.push(&mut bed);
    world.api.copy_signature("base/python", &verified, "base/python", &attack);
    refused(&bed, &world, &verified, "bad_signature", &format!("for another digest, {verified}"));

    // A trusted signature of this very digest, made for another repository.
    let attack = world.push(&mut bed);
    world.signer.sign("trusted", &world.ci_ref(IMAGE), &world.ci_ref("base/other:1"));
    world.api.copy_signature("base/other", &attack, "base/python", &attack);
    refused(&bed, &world, &verified, "bad_signature", "for another repository");

    // Corrupt artifacts: a payload that is not JSON (and signed by nobody), one of the wrong
    // media type, and a 10 MB one.
    let attack = world.push(&mut bed);
    let tag = signature_tag(&attack);
    let simple = "application/vnd.dev.cosign.simplesigning.v1+json";
    world.api.put_artifact("base/python", &tag, simple, b"not json {");
    refused(&bed, &world, &verified, "bad_signature", "signed by no trusted key");
    world.api.put_artifact("base/python", &tag, "application/octet-stream", b"{}");
    refused(&bed, &world, &verified, "bad_signature", "no simple-signing payload");
    world.api.put_artifact("base/python", &tag, simple, &vec![b' '; 10 * 1024 * 1024]);
    refused(&bed, &world, &verified, "bad_signature", "larger than devbox reads");
    bed.test(&["doctor", "--check", "image-signatures"]).stdout_has("1 of 1 pulled verified").run();

    // A public key that is not P-256 is a config error: exit 2, nothing changes.
    let config = std::fs::read_to_string(bed.config_path()).expect("config");
    let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    configure(&bed, registry_image, "require", &[ed25519.to_string()]);
    bed.test(&["pull"])
        .code(2)
        .stderr_has("images.public_keys: entry 0 (counting from 0): not an ECDSA P-256 public key")
        .run();
    assert!(digests_of(&world.alias).contains(&verified));
    bed.write_raw_config(&config);

    // warn: tagged, with a warning; doctor warns. Back under require, doctor fails and says whom to ask.
    configure(&bed, registry_image, "warn", std::slice::from_ref(&world.signer.public_key_path("trusted")));
    bed.test(&["pull"])
        .stdout_has(format!("! {IMAGE}: tagged, but bad signature: the signature artifact or its payload is larger"))
        .stdout_has("(images.verify = \"warn\")")
        .stdout_has("1 updated")
        .run();
    assert!(digests_of(&world.alias).contains(&attack), "warn did not tag");
    let json = bed.test(&["doctor", "--json", "--check", "image-signatures"]).json();
    let check = json["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "image-signatures").cloned();
    assert_eq!(check.as_ref().map(|c| c["status"].clone()), Some("warn".into()), "{json}");
    configure(&bed, registry_image, "require", &[trusted]);
    bed.test(&["doctor", "--check", "image-signatures"])
        .code(1)
        .stdout_has(format!("not signed by a trusted key: {IMAGE}"))
        .stdout_has("Ask the platform team")
        .run();

    // CI signs a new build: the pull verifies it, and doctor passes again.
    let fixed = world.push_signed(&mut bed, "trusted");
    let json = pull_json(&bed, 0);
    assert_eq!(json["images"][0]["signature"], "verified", "{json}");
    assert!(digests_of(&world.alias).contains(&fixed));
    bed.test(&["doctor", "--check", "image-signatures"]).stdout_has("1 of 1 pulled verified").run();
}

#[test]
fn signatures_on_line_2_8() {
    signed_base_images("sig28", registry_image_pinned());
}

#[test]
fn signatures_on_line_3() {
    let v3 = "devbox-testbed/registry:3";
    let built = std::process::Command::new("sh")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/registry-image.sh"))
        .args([v3, "3"])
        .status()
        .expect("run registry-image.sh");
    assert!(built.success(), "building {v3} failed");
    signed_base_images("sig3", &pin_by_digest(v3));
}

/// On Garage, the S3 server that checks signatures and dates as AWS does: a signed image is
/// verified and tagged, an unsigned one refused with the alias intact.
#[test]
fn signatures_on_garage() {
    let mut garage = Bed::on_garage("siggarage", "60m");
    let world = World::new(&mut garage);
    let trusted = world.signer.public_key("trusted");
    configure(&garage, registry_image_pinned(), "require", &[trusted]);
    garage.test(&["registry", "up"]).run();
    let verified = world.push_signed(&mut garage, "trusted");
    let json = pull_json(&garage, 0);
    assert_eq!(json["images"][0]["signature"], "verified", "{json}");
    assert!(digests_of(&world.alias).contains(&verified));
    world.push(&mut garage);
    refused(&garage, &world, &verified, "unsigned", "unsigned");
    assert_eq!(docker(&["image", "inspect", "--format", "{{.Id}}", &world.alias]).len(), 71);
}
