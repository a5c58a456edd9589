//! `devbox self-update` on a copy of the real binary, against a release feed on 127.0.0.1.

use std::path::PathBuf;
use std::process::Command;

use crate::release_feed::{ReleaseFeed, Sums, fake_devbox};
use crate::testbed::{Test, copy_executable};

const CURRENT: &str = env!("CARGO_PKG_VERSION");

/// A copy of the built devbox in a temp dir of its own, configured to update from `feed`.
struct Copy {
    dir: tempfile::TempDir,
    original: Vec<u8>,
}

impl Copy {
    fn new(feed: &ReleaseFeed) -> Copy {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = std::fs::read(env!("CARGO_BIN_EXE_devbox")).expect("read devbox");
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir");
        copy_executable(env!("CARGO_BIN_EXE_devbox").as_ref(), &dir.path().join("bin/devbox"));
        let config = format!(
            "[update]\nurl = \"{}/\"\ngithub = \"nobody/never-contacted\"\npublic_key = \"{}\"\n",
            feed.url, feed.key.public
        );
        std::fs::write(dir.path().join("devbox.toml"), config).expect("write config");
        Copy { dir, original }
    }

    fn exe(&self) -> PathBuf {
        self.dir.path().join("bin/devbox")
    }

    /// The copy run with `args`, as a sentence of expectations: see `Test`.
    fn test(&self, args: &[&str]) -> Test {
        self.test_with(args, &[])
    }

    /// The same, with `env` in its environment.
    fn test_with(&self, args: &[&str], env: &[(&str, &str)]) -> Test {
        let mut cmd = Command::new(self.exe());
        cmd.envs(env.iter().copied())
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("devbox.toml"))
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("DEVBOX_CONFIG")
            .env_remove("DEVBOX_DOWNLOAD_URL");
        Test::new(assert_cmd::Command::from_std(cmd))
    }

    fn unchanged(&self) -> bool {
        std::fs::read(self.exe()).expect("read") == self.original
    }

    /// Only the binary is in its directory: no temp file or backup left behind.
    fn bin_dir_entries(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("bin"))
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

#[test]
fn self_update_replaces_the_binary_with_a_verified_release() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.set_latest("0.2.0");
    let copy = Copy::new(&feed);

    copy.test(&["self-update"])
        .output_has(format!("updating devbox {CURRENT} → 0.2.0 from {}/", feed.url))
        .output_has(format!("updated to devbox 0.2.0 at {}", copy.exe().display()))
        .output_has(format!("SHA256SUMS signed by key {}", feed.key.public))
        .run();
    assert_eq!(std::fs::read(copy.exe()).expect("read"), fake_devbox("0.2.0"));
    let ran = Command::new(copy.exe()).arg("--version").output().expect("run the new binary");
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), "devbox 0.2.0");
    assert_eq!(copy.bin_dir_entries(), vec!["devbox".to_string()]);
    let requested = feed.requested();
    assert!(requested.contains(&"v0.2.0/SHA256SUMS".to_string()), "{requested:?}");
}

#[test]
fn self_update_with_a_bad_checksum_leaves_the_old_binary_byte_for_byte() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Bad);
    feed.set_latest("0.2.0");
    let copy = Copy::new(&feed);

    let said = copy
        .test(&["self-update"])
        .code(1)
        .output_has(format!("cannot update {} to devbox 0.2.0", copy.exe().display()))
        .output_has(format!("Nothing was replaced: {} is still devbox {CURRENT}", copy.exe().display()))
        .text();
    assert!(said.to_lowercase().contains("checksum"), "{said}");
    assert!(copy.unchanged(), "the old binary must stay byte for byte");
    assert_eq!(copy.bin_dir_entries(), vec!["devbox".to_string()]);
    // It still works.
    let ran = copy.test(&["--version"]).any_code().run();
    assert_eq!(String::from_utf8_lossy(&ran.stdout).trim(), format!("devbox {CURRENT}"));
}

#[test]
fn self_update_refuses_a_release_whose_binary_is_not_that_version() {
    let feed = ReleaseFeed::start();
    // The checksum matches, but the archive holds some other build.
    feed.publish("0.2.0", &fake_devbox("0.9.9"), Sums::Good);
    feed.set_latest("0.2.0");
    let copy = Copy::new(&feed);

    copy.test(&["self-update"]).code(1).output_has("printed \"devbox 0.9.9\", not \"devbox 0.2.0\"").run();
    assert!(copy.unchanged());
}

#[test]
fn self_update_missing_release_or_sums_changes_nothing() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    std::fs::remove_file(feed.root.path().join("v0.2.0/SHA256SUMS")).expect("rm sums");
    feed.set_latest("0.2.0");
    let copy = Copy::new(&feed);

    copy.test(&["self-update"]).code(1).run();
    assert!(copy.unchanged());
    assert!(!feed.requested().iter().any(|p| p.ends_with(".tar.gz")), "no sums, no download: {:?}", feed.requested());

    copy.test(&["self-update", "--version", "7.7.7"]).code(1).run();
    assert!(copy.unchanged());

    // A feed that serves garbage as `latest` is refused before anything is downloaded.
    std::fs::write(feed.root.path().join("latest"), "<html>oops</html>").expect("write");
    copy.test(&["self-update"]).code(1).output_has("is not a version such as 0.2.0").run();
    assert!(copy.unchanged());
}

#[test]
fn self_update_check_reports_and_changes_nothing() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.set_latest("0.2.0");
    let copy = Copy::new(&feed);

    copy.test(&["self-update", "--check"])
        .output_has(format!("this binary: devbox {CURRENT}"))
        .output_has(format!("newest:      devbox 0.2.0 ({}/)", feed.url))
        .output_has("an update is available: run `devbox self-update`")
        .output_has("--check changes nothing and exits 0")
        .run();
    assert!(copy.unchanged());
    assert_eq!(feed.requested(), vec!["latest".to_string()]);

    feed.set_latest(CURRENT);
    copy.test(&["self-update", "--check"]).output_has("up to date").run();

    // Without --check, an up-to-date binary is left alone too.
    copy.test(&["self-update"]).output_has(format!("devbox {CURRENT} is up to date")).run();
    assert!(copy.unchanged());
}

#[test]
fn self_update_version_pins_a_release_and_an_older_one_only_when_allowed() {
    let feed = ReleaseFeed::start();
    feed.publish("0.0.9", &fake_devbox("0.0.9"), Sums::Good);
    feed.publish("0.3.0", &fake_devbox("0.3.0"), Sums::Good);
    feed.set_latest("0.3.0");
    let copy = Copy::new(&feed);

    copy.test(&["self-update", "--version", "latest-please"])
        .code(2)
        .output_has("\"latest-please\" is not a version such as 0.2.0")
        .run();
    assert!(copy.unchanged());

    // An older version is a downgrade: refused unless asked for by name.
    copy.test(&["self-update", "--version", "v0.0.9"])
        .code(2)
        .output_has(format!("devbox 0.0.9 is older than this devbox {CURRENT}"))
        .output_has("--allow-downgrade")
        .run();
    assert!(copy.unchanged());
    assert!(feed.requested().is_empty(), "refused before any request: {:?}", feed.requested());

    copy.test(&["self-update", "--version", "v0.0.9", "--allow-downgrade"]).output_has("updated to devbox 0.0.9").run();
    assert_eq!(std::fs::read(copy.exe()).expect("read"), fake_devbox("0.0.9"));
    assert!(!feed.requested().contains(&"latest".to_string()));
}

#[test]
fn self_update_is_disabled_for_a_package_managed_binary() {
    let feed = ReleaseFeed::start();
    feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Good);
    feed.set_latest("0.2.0");
    let copy = Copy::new(&feed);
    let marker = copy.dir.path().join("share/devbox/package-manager");
    std::fs::create_dir_all(marker.parent().expect("parent")).expect("mkdir");
    std::fs::write(&marker, "brew\n").expect("write marker");

    copy.test(&["self-update"])
        .code(2)
        .output_has(format!("{} was installed by brew, so devbox does not replace it itself", copy.exe().display()))
        .output_has("Update devbox with brew")
        .run();
    assert!(copy.unchanged());
    assert!(!feed.requested().iter().any(|p| p.ends_with(".tar.gz")));

    // --check still reports, and says how to update.
    copy.test(&["self-update", "--check"]).output_has("an update is available: update it with brew").run();
}

#[test]
fn self_update_with_no_feed_configured_says_which_keys_to_set() {
    let feed = ReleaseFeed::start();
    let copy = Copy::new(&feed);
    std::fs::write(copy.dir.path().join("devbox.toml"), "[update]\ngithub = \"\"\n").expect("write");
    copy.test(&["self-update", "--check"])
        .code(2)
        .output_has("no release feed is configured")
        .output_has("Set update.github")
        .run();
    assert!(feed.requested().is_empty());
}

/// The same feed layout in an S3 bucket (moto's, on loopback): `latest` is read with the AWS SDK,
/// the files are downloaded through presigned URLs, and a bad checksum is refused there too.
#[test]
fn self_update_from_an_s3_release_feed() {
    let bed = crate::testbed::Bed::new("selfupdate_s3");
    let feed = ReleaseFeed::start();
    let archive = feed.publish("0.2.0", &fake_devbox("0.2.0"), Sums::Bad);
    feed.set_latest("0.2.0");
    let upload = |key: &str, file: &std::path::Path| {
        let url = format!("{}/{}/{key}", bed.s3_endpoint, bed.bucket);
        let out = Command::new("curl")
            .args(["-sS", "-f", "-m", "20", "-H", "Content-Type: application/octet-stream", "-T"])
            .arg(file)
            .arg(&url)
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "PUT {url}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let archive_key = format!("v0.2.0/{}", archive.file_name().expect("name").to_string_lossy());
    upload("latest", &feed.root.path().join("latest"));
    upload(&archive_key, &archive);
    upload("v0.2.0/SHA256SUMS", &feed.root.path().join("v0.2.0/SHA256SUMS"));
    // Everything is uploaded before devbox runs: here moto answered 403 to unsigned PUTs made
    // after devbox's signed requests.
    let good = feed.publish("0.2.1", &fake_devbox("0.2.1"), Sums::Good);
    upload(&format!("v0.2.1/{}", good.file_name().expect("name").to_string_lossy()), &good);
    upload("v0.2.1/SHA256SUMS", &feed.root.path().join("v0.2.1/SHA256SUMS"));

    upload("v0.2.0/SHA256SUMS.minisig", &feed.root.path().join("v0.2.0/SHA256SUMS.minisig"));
    upload("v0.2.1/SHA256SUMS.minisig", &feed.root.path().join("v0.2.1/SHA256SUMS.minisig"));

    let copy = Copy::new(&feed);
    let config = format!(
        "[registry.s3]\nendpoint = \"{}\"\npath_style = true\n[update]\ns3_bucket = \"{}\"\npublic_key = \"{}\"\n",
        bed.s3_endpoint, bed.bucket, feed.key.public
    );
    std::fs::write(copy.dir.path().join("devbox.toml"), config).expect("write config");
    let aws = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials"),
    ];

    copy.test_with(&["self-update", "--check"], &aws)
        .output_has(format!("newest:      devbox 0.2.0 (s3://{}/)", bed.bucket))
        .run();

    let refused = copy.test_with(&["self-update"], &aws).code(1).text();
    assert!(refused.to_lowercase().contains("checksum"), "{refused}");
    assert!(copy.unchanged());

    // A release with the right checksum: the same binary updates to it.
    copy.test_with(&["self-update", "--version", "0.2.1"], &aws).output_has("updated to devbox 0.2.1").run();
    assert_eq!(std::fs::read(copy.exe()).expect("read"), fake_devbox("0.2.1"));
    // The local feed server was never asked: everything came from the bucket.
    assert!(feed.requested().is_empty(), "{:?}", feed.requested());
}
