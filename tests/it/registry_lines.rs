//! Both lines of distribution (issue 12): the same scenarios against the 2.8 image layout and the
//! official v3 layout, and the faults that devbox must catch by the registry's behaviour.

use std::path::Path;
use std::process::Command;

use crate::testbed::{Bed, docker, docker_try};

/// The official v3 layout (`/etc/distribution/config.yml`, `/entrypoint.sh`), built by
/// `tests/testbed/registry-image.sh devbox-testbed/registry:3 3`.
const REGISTRY_V3_IMAGE: &str = "devbox-testbed/registry:3";
/// An image that runs and never answers, built by `tests/testbed/not-a-registry-image.sh`.
const NOT_A_REGISTRY_IMAGE: &str = "devbox-testbed/not-a-registry";

/// Makes sure a testbed image is there, building it with its script when it is not.
fn ensure_image(tag: &str, script: &str, args: &[&str]) {
    if docker_try(&["image", "inspect", tag]).0 {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed").join(script);
    assert!(script.exists(), "{tag} is missing and {} does not exist: run tests/testbed/up.sh", script.display());
    let built = Command::new("sh").arg(&script).args(args).status().expect("run the image script");
    assert!(built.success(), "building {tag} failed (see above)");
}

/// The v3 image, pinned by digest as every bed's image is (an unpinned tag is a doctor warning).
fn v3_image() -> &'static str {
    static PINNED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PINNED.get_or_init(|| {
        ensure_image(REGISTRY_V3_IMAGE, "registry-image.sh", &[REGISTRY_V3_IMAGE, "3"]);
        crate::testbed::pin_by_digest(REGISTRY_V3_IMAGE)
    })
}

fn v2_image() -> &'static str {
    crate::testbed::registry_image_pinned()
}

fn not_a_registry_image() -> &'static str {
    ensure_image(NOT_A_REGISTRY_IMAGE, "not-a-registry-image.sh", &[NOT_A_REGISTRY_IMAGE]);
    NOT_A_REGISTRY_IMAGE
}

/// This bed's devbox.toml, on `image`, with `extra` TOML lines at the end.
fn use_image(bed: &Bed, image: &str, extra: &str) {
    bed.write_config(extra);
    let text = std::fs::read_to_string(bed.config_path()).expect("read config");
    let pinned = crate::testbed::registry_image_pinned();
    bed.write_raw_config(&text.replacen(&format!("image = \"{pinned}\""), &format!("image = \"{image}\""), 1));
}

/// A copy of the v3 test image whose entrypoint ignores its command and always serves the image's
/// own default config (filesystem, writable, deletes on): how v3 met devbox before the fix.
fn image_that_ignores_its_command(bed: &mut Bed) -> String {
    let tag = format!("{}-ignores:1", bed.name);
    let builder = format!("{}-build", bed.name);
    docker(&["create", "--name", &builder, v3_image()]);
    let script = bed.home.path().join("entrypoint.sh");
    std::fs::write(&script, "#!/bin/sh\nexec registry serve /etc/distribution/config.yml\n").expect("write");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    docker(&["cp", script.to_str().expect("utf-8"), &format!("{builder}:/entrypoint.sh")]);
    docker(&[
        "commit",
        "--change",
        "ENTRYPOINT [\"/entrypoint.sh\"]",
        "--change",
        "CMD [\"/etc/distribution/config.yml\"]",
        &builder,
        &tag,
    ]);
    docker(&["rm", "-f", "-v", &builder]);
    bed.remove_image_later(&tag);
    tag
}

/// Up on S3, read-only; what CI pushed pulls through it; a push is refused with 405; a second up
/// recreates nothing; doctor's registry checks pass and say what they proved.
fn serves_the_bucket_read_only_and_converges(test: &str, image: &str) {
    let mut bed = Bed::new(test);
    let ci = bed.ci_registry();
    let digest = bed.push_image(ci, "base/python:3.12", 100_000);
    use_image(&bed, image, "");

    bed.test(&["registry", "up"])
        .stdout_has(format!("registry {} at http://127.0.0.1:{} created", bed.name, bed.port))
        .stdout_has(format!("s3://{}/registry, read-only", bed.bucket))
        .run();

    // devbox's config is handed over as the container's command, at devbox's own path.
    assert_eq!(docker(&["inspect", "--format", "{{json .Config.Cmd}}", &bed.name]), r#"["/etc/devbox/registry.yml"]"#);
    serves_read_only(&mut bed, &digest);

    let first = bed.container_identity().expect("container exists");
    bed.test(&["registry", "up"]).stdout_has("is already up").run();
    assert_eq!(bed.container_identity(), Some(first), "the second up changed the container");

    let json = bed.test(&["doctor", "--json", "--check", "registry-container", "--check", "registry-api"]).json();
    for check in json["checks"].as_array().expect("checks") {
        assert_eq!(check["status"], "ok", "{check}");
    }
    let api = json["checks"].as_array().expect("checks").iter().find(|c| c["id"] == "registry-api").expect("api");
    let summary = api["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("a write is refused (405)"), "{api}");
    assert!(summary.contains(&format!("read base/python:3.12 from s3://{}/registry", bed.bucket)), "{api}");
}

#[test]
fn line_2_8_serves_the_bucket_read_only_and_converges() {
    serves_the_bucket_read_only_and_converges("l28s3", v2_image());
}

#[test]
fn line_3_serves_the_bucket_read_only_and_converges() {
    serves_the_bucket_read_only_and_converges("l3s3", v3_image());
}

/// The embedded default: no bucket, no AWS, a named volume, writable.
fn the_embedded_default_serves_a_volume(test: &str, image: &str) {
    let bed = Bed::new(test);
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{image}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n",
        bed.name, bed.port
    ));
    bed.test(&["registry", "up"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdout_has(format!("volume {}-data, writable", bed.name))
        .run();
    let first = bed.container_identity().expect("container exists");
    bed.test(&["registry", "up"]).stdout_has("is already up").run();
    assert_eq!(bed.container_identity(), Some(first));
    bed.test(&["doctor", "--check", "registry-api"]).run();
}

#[test]
fn line_2_8_embedded_default_serves_a_volume() {
    the_embedded_default_serves_a_volume("l28fs", v2_image());
}

#[test]
fn line_3_embedded_default_serves_a_volume() {
    the_embedded_default_serves_a_volume("l3fs", v3_image());
}

#[test]
fn switching_the_line_under_the_same_config_recreates() {
    let mut bed = Bed::new("lswitch");
    // One local tag, moved from a 2.8 image to a v3 one: only the image itself tells them apart.
    let tag = format!("{}-registry:moving", bed.name);
    bed.remove_image_later(&tag);
    docker(&["tag", v2_image(), &tag]);
    use_image(&bed, &tag, "");
    bed.test(&["registry", "up"]).run();
    docker(&["tag", v3_image(), &tag]);
    bed.test(&["registry", "up"]).stdout_has("recreated: the configuration changed").run();
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &bed.name]);
    assert!(env.contains("OTEL_TRACES_EXPORTER=none"), "{env}");
}

#[test]
fn an_image_that_ignores_devbox_config_fails_the_proof_and_leaves_nothing() {
    let mut bed = Bed::new("ignores");
    let image = image_that_ignores_its_command(&mut bed);

    // Read-only on S3: the write probe is accepted, so the registry is not devbox's.
    use_image(&bed, &image, "");
    bed.test(&["registry", "up"])
        .code(1)
        .stderr_has("ignored devbox's config: it is writable")
        .stderr_has("/etc/devbox/registry.yml")
        .run();
    assert!(bed.container_identity().is_none(), "a container was left behind");

    // Writable on S3 (so no write probe), with an image in the bucket: it is empty where the
    // bucket is not.
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/go:1.23", 10_000);
    use_image(&bed, &image, "");
    let text = std::fs::read_to_string(bed.config_path()).expect("read");
    bed.write_raw_config(&text.replacen("port = ", "readonly = false\nport = ", 1));
    bed.test(&["registry", "up"])
        .code(1)
        .stderr_has("ignored devbox's config: it does not read the bucket")
        .stderr_has("base/go:1.23")
        .run();
    assert!(bed.container_identity().is_none(), "a container was left behind");
}

#[test]
fn an_image_that_is_not_a_registry_fails_within_the_ready_timeout_and_leaves_nothing() {
    let bed = Bed::new("notreg");
    use_image(&bed, not_a_registry_image(), "");
    bed.test(&["registry", "up"]).code(1).stderr_has("did not become ready").stderr_has("devbox registry logs").run();
    assert!(bed.container_identity().is_none(), "a container was left behind");
}

#[test]
fn an_image_of_unknown_layout_is_refused_before_anything_is_made() {
    let mut bed = Bed::new("unknownlayout");
    let tag = format!("{}-odd:1", bed.name);
    let builder = format!("{}-build", bed.name);
    docker(&["create", "--name", &builder, v2_image()]);
    docker(&["commit", "--change", "CMD [\"/srv/registry.yml\"]", &builder, &tag]);
    docker(&["rm", "-f", "-v", &builder]);
    bed.remove_image_later(&tag);
    use_image(&bed, &tag, "");
    bed.test(&["registry", "up"])
        .code(2)
        .stderr_has(format!("devbox cannot tell how to configure the registry image {tag}"))
        .stderr_has("/srv/registry.yml")
        .run();
    assert!(bed.container_identity().is_none());
}

#[test]
fn an_image_that_cannot_be_pulled_is_a_clear_error() {
    let bed = Bed::new("nopull");
    // A registry on loopback that is not running: nothing leaves this machine.
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"127.0.0.1:9/nope:1\"\npull = \"missing\"\ncontainer = \"{}\"\nport = {}\n",
        bed.name, bed.port
    ));
    bed.test(&["registry", "up"]).code(1).stderr_has("cannot pull the registry image 127.0.0.1:9/nope:1").run();
    assert!(bed.container_identity().is_none());
}

/// The running registry's config names one storage driver (S3, read-only, redirects off); what CI
/// pushed (`digest`) pulls through it; a push to it is refused with 405. Both lines' tests use it.
pub fn serves_read_only(bed: &mut Bed, digest: &str) {
    let copy = bed.home.path().join("registry.yml");
    docker(&["cp", &format!("{}:/etc/devbox/registry.yml", bed.name), copy.to_str().expect("utf-8")]);
    let config = std::fs::read_to_string(copy).expect("read the registry's config");
    assert!(config.contains("  s3:\n") && !config.contains("filesystem:"), "{config}");
    assert!(config.contains("readonly:\n      enabled: true") && config.contains("redirect:\n    disable: true"));

    let local = format!("127.0.0.1:{}/base/python:3.12", bed.port);
    bed.remove_image_later(&local);
    let pulled = docker(&["pull", &local]);
    assert!(pulled.contains(digest), "pulled {pulled}, CI pushed {digest}");

    let attempt = format!("127.0.0.1:{}/base/mine:1", bed.port);
    docker(&["tag", &local, &attempt]);
    bed.remove_image_later(&attempt);
    let (pushed, output) = docker_try(&["push", &attempt]);
    assert!(!pushed, "a push to the read-only registry succeeded: {output}");
    assert!(output.contains("405") || output.to_lowercase().contains("method not allowed"), "{output}");
}
