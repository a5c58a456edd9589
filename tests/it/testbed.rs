//! The testbed: a real Docker engine, a real registry image built locally from Debian's
//! docker-registry, and real S3-compatible servers, made one way (`S3Server`, `testbed/s3.rs`):
//! moto, started here, and Garage, which expires keys (`testbed/garage.rs`). Nothing is mocked.
//!
//! `Bed` is what every test needs, once: its own HOME, container names, port and bucket, on the
//! moto every bed shares (`Bed::new`) or an S3 server of its own (`Bed::on_s3`), and on this host's
//! engine or another one: `Bed::on_garage` (`garage_bed.rs`: credentials from a profile that mints
//! expiring keys), `Bed::on_vm` (`vm_bed.rs`) and `Bed::on_podman` (`podman_bed.rs`). It removes the
//! containers, volumes, images and bucket it made when it is dropped, then undoes what the test
//! asked it to (`at_end`). `bed.ci_registry()` starts CI's writable registry on its bucket
//! (`testbed/ci.rs`). `bed.test(args)` runs devbox there and reads like a sentence:
//!
//! ```ignore
//! bed.test(&["doctor"]).code(1).stdout_has("is held by another process").run();
//! ```
//!
//! The other helpers every test file shares live in `testbed/util.rs`: `wait_until` and
//! `poll_until` (polling with a deadline), `hold_port`, `output_text` and `strip_ansi` (text),
//! `write_executable`; `HttpServer` (one loopback HTTP server, for files or a fixed answer) in
//! `testbed/http.rs`, and the `Test` builder in `testbed/run.rs`.

mod ci;
pub mod corp;
pub mod garage;
mod http;
mod pin;
mod run;
mod s3;
pub mod tty;
mod util;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

pub use ci::{layer_tar, push_image, start_ci_registry};
pub use garage::garage;
pub use http::HttpServer;
pub use pin::pin_by_digest;
pub use run::Test;
pub use s3::{S3Server, watched};
pub use util::*;

/// The registry image the tests use, built by `tests/testbed/registry-image.sh`.
pub const REGISTRY_IMAGE: &str = "devbox-testbed/registry:2.8";

struct Shared {
    /// REGISTRY_IMAGE pinned by its digest, as `registry.image` pins the official image.
    registry_pinned: String,
    /// The moto every bed shares, ended with this process.
    moto: S3Server,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let engine = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
        match engine {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "the tests need a running Docker engine, and `docker version` failed:\n{}\n\
                 Start one: `dockerd &` as root (Debian: apt-get install docker.io), or run `bash .ci/run`.",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("the tests need the docker CLI and a running engine ({e}); see `bash .ci/run`"),
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/registry-image.sh");
        let built = Command::new("sh").arg(&script).arg(REGISTRY_IMAGE).status().expect("run registry-image.sh");
        assert!(built.success(), "building the testbed registry image failed (see above)");
        let registry_pinned = pin_by_digest(REGISTRY_IMAGE);
        Shared { registry_pinned, moto: S3Server::moto().start() }
    })
}

/// The testbed's registry image, pinned by digest: what every bed's `registry.image` says.
pub fn registry_image_pinned() -> &'static str {
    &shared().registry_pinned
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Runs the docker CLI; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs the docker CLI and reports whether it succeeded, with its combined output.
pub fn docker_try(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("run docker");
    (out.status.success(), output_text(&out))
}

/// An S3 access key.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

impl Key {
    pub fn new(id: &str, secret: &str) -> Key {
        Key { id: id.to_string(), secret: secret.to_string() }
    }
}

/// The S3 server a bed's bucket lives in.
enum Storage {
    /// The moto every bed shares.
    Shared,
    /// A server of the bed's own: a moto ended with the bed, or the testbed's Garage.
    Own(S3Server),
}

/// One test's world: its own HOME, container names, port and bucket, and the engine devbox runs
/// on. It removes the containers, volumes, images and bucket it made when it is dropped.
pub struct Bed {
    pub name: String,
    pub home: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    /// The S3 server this bed's bucket lives in, as this host reaches it (`s3()`: the server).
    pub s3_endpoint: String,
    /// The AWS key every devbox run gets in its environment.
    pub key: Key,
    storage: Storage,
    /// The engine devbox's own container runs on, as `docker -H` takes it; `None`: this host's.
    engine_host: Option<String>,
    /// A program (and its arguments) that every devbox run goes through, devbox's path and
    /// arguments after them (the podman tests: a mount namespace of its own).
    wrapper: Vec<String>,
    /// Variables set (`Some`) or removed (`None`) for every devbox run, after the defaults.
    env: Vec<(String, Option<String>)>,
    /// How long one devbox run may take before it is killed and the test fails.
    timeout: Duration,
    /// What devbox.toml's `registry.image` says, and lines added to its `[registry.s3]`.
    registry_image: String,
    s3_lines: String,
    /// Containers and images on this host's engine, removed with the bed.
    containers: Vec<String>,
    images: Vec<String>,
    /// What the test asked to undo when the bed has removed what it made, last asked first.
    at_end: Vec<Box<dyn FnOnce()>>,
}

impl Bed {
    /// A bed whose bucket is on the moto every bed shares.
    pub fn new(test: &str) -> Bed {
        Bed::with_storage("dbxt", test, Storage::Shared)
    }

    /// A bed whose bucket is on `server`, which goes with the bed (a moto stops; Garage stays).
    pub fn on_s3(test: &str, server: S3Server) -> Bed {
        Bed::named("dbxt", test, server)
    }

    /// The same, its container names and bucket starting with `prefix` ("dbxt"; the VMs' "dbxv"
    /// and "dbxp").
    pub fn named(prefix: &str, test: &str, server: S3Server) -> Bed {
        Bed::with_storage(prefix, test, Storage::Own(server))
    }

    fn with_storage(prefix: &str, test: &str, storage: Storage) -> Bed {
        let shared = shared();
        let name = format!("{prefix}-{test}-{}", std::process::id());
        let bucket = format!("{prefix}-{}-{}", test.replace('_', "-"), std::process::id());
        let s3_endpoint = match &storage {
            Storage::Shared => shared.moto.endpoint(),
            Storage::Own(server) => server.endpoint(),
        };
        let bed = Bed {
            s3_endpoint,
            storage,
            key: Key::new("testing", "testing-secret"),
            engine_host: None,
            wrapper: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(120),
            registry_image: shared.registry_pinned.clone(),
            s3_lines: String::new(),
            home: tempfile::tempdir().expect("temp HOME"),
            port: free_port(),
            containers: Vec::new(),
            images: Vec::new(),
            at_end: Vec::new(),
            bucket,
            name,
        };
        bed.s3().create_bucket(&bed.bucket);
        bed.write_config("");
        bed
    }

    /// The S3 server this bed's bucket lives in.
    pub fn s3(&self) -> &S3Server {
        match &self.storage {
            Storage::Shared => &shared().moto,
            Storage::Own(server) => server,
        }
    }

    /// devbox's own container runs on the engine at `docker_host` (as `docker -H` takes it), which
    /// devbox itself finds without DOCKER_HOST (the VM tests: a docker context in this HOME).
    pub fn on_engine(mut self, docker_host: &str) -> Bed {
        self.engine_host = Some(docker_host.to_string());
        for key in ["DOCKER_HOST", "DOCKER_CONTEXT", "DEVBOX_ENGINE_KIND"] {
            self = self.env_remove(key);
        }
        self
    }

    /// Every devbox run goes through `wrapper` (a program and its arguments), which is given
    /// devbox's path and arguments after its own.
    pub fn wrapped(mut self, wrapper: &[&str]) -> Bed {
        self.wrapper = wrapper.iter().map(|arg| arg.to_string()).collect();
        self
    }

    /// Every devbox run gets `key`=`value` in its environment.
    pub fn env(mut self, key: &str, value: &str) -> Bed {
        self.env.push((key.to_string(), Some(value.to_string())));
        self
    }

    /// Every devbox run goes without `key` in its environment.
    pub fn env_remove(mut self, key: &str) -> Bed {
        self.env.push((key.to_string(), None));
        self
    }

    /// Every devbox run may take `limit` before it is killed and the test fails.
    pub fn timeout(mut self, limit: Duration) -> Bed {
        self.timeout = limit;
        self
    }

    pub fn config_path(&self) -> PathBuf {
        self.home.path().join(".config/devbox/devbox.toml")
    }

    /// Every devbox.toml this bed writes names `image` as `registry.image` (a VM's engine got the
    /// image by `docker save` and `load`: it has no repository digest to pin it by), and has
    /// `lines` in its `[registry.s3]`.
    pub fn config_with(mut self, image: &str, lines: &str) -> Bed {
        self.registry_image = image.to_string();
        self.s3_lines = lines.to_string();
        self.write_config("");
        self
    }

    /// Writes the user's devbox.toml: this bed's registry on S3 (its image pinned by digest), plus
    /// `extra` TOML lines.
    pub fn write_config(&self, extra: &str) {
        self.write_config_with_image(&self.registry_image, extra);
    }

    /// The same with another `registry.image`.
    pub fn write_config_with_image(&self, image: &str, extra: &str) {
        let text = format!(
            "[registry]\nimage = \"{}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
             [registry.s3]\nbucket = \"{}\"\nendpoint = \"{}\"\npath_style = true\n{}{extra}",
            image, self.name, self.port, self.bucket, self.s3_endpoint, self.s3_lines
        );
        self.write_raw_config(&text);
    }

    /// Writes devbox.toml exactly as given.
    pub fn write_raw_config(&self, text: &str) {
        let path = self.config_path();
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write config");
    }

    /// `devbox ARGS` as a sentence of expectations, checked by `run`: see `Test`.
    pub fn test(&self, args: &[&str]) -> Test {
        Test::new(self.devbox(args))
    }

    /// `devbox` with this bed's HOME, its AWS key and no way to reach AWS itself.
    pub fn devbox(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::from_std(self.devbox_std(args));
        cmd.timeout(self.timeout);
        cmd
    }

    /// The same, as a plain process, for tests that signal it or read it while it runs.
    pub fn devbox_std(&self, args: &[&str]) -> Command {
        let devbox = env!("CARGO_BIN_EXE_devbox");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, before)) => {
                let mut cmd = Command::new(program);
                cmd.args(before).arg(devbox);
                cmd
            }
            None => Command::new(devbox),
        };
        cmd.args(args)
            .env_remove("DEVBOX_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            // No proxy but the one a test sets: the network tests' own (tests/it/network.rs).
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env("HOME", self.home.path())
            .env("AWS_ACCESS_KEY_ID", &self.key.id)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.secret)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.home.path().join(".aws/config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.path().join(".aws/credentials"))
            .env("NO_COLOR", "1")
            // The release feed (self-update, doctor's version check): a closed port on loopback,
            // never GitHub. Tests that need a feed serve one and set it themselves.
            .env("DEVBOX_DOWNLOAD_URL", "http://127.0.0.1:9/");
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// The docker CLI on the engine devbox's container runs on.
    pub fn engine_docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        if let Some(host) = &self.engine_host {
            cmd.arg("-H").arg(host);
        }
        cmd.args(args).output().expect("run docker")
    }

    /// The devbox container's ID and creation time, or `None` when there is no such container.
    pub fn container_identity(&self) -> Option<(String, String)> {
        let out = self.engine_docker(&["inspect", "--format", "{{.Id}} {{.Created}}", &self.name]);
        out.status.success().then(|| {
            let text = String::from_utf8_lossy(&out.stdout);
            let (id, created) = text.trim().split_once(' ').expect("id and created");
            (id.to_string(), created.to_string())
        })
    }

    /// Starts CI's writable registry on this bed's bucket, and returns its port. It is the only
    /// writer, as in production: on moto with any key, on Garage with a key minted to write.
    pub fn ci_registry(&mut self) -> u16 {
        let key = if self.s3().is_garage() {
            garage().mint_key(&self.bucket, true, "3h")
        } else {
            Key::new("ci", "ci-secret")
        };
        self.ci_registry_with(&key)
    }

    /// CI's writable registry on this bed's bucket, signing with `key`; returns its port.
    pub fn ci_registry_with(&mut self, key: &Key) -> u16 {
        let name = format!("{}-ci", self.name);
        self.remove_container_later(&name);
        start_ci_registry(&name, &self.s3_endpoint, key, &self.bucket, self.home.path())
    }

    /// Builds an image of `bytes` random bytes and pushes it as CI would, to `registry_port`.
    /// The local copies are removed, so a later pull really pulls. Returns the pushed digest.
    pub fn push_image(&mut self, registry_port: u16, name: &str, bytes: usize) -> String {
        push_image(registry_port, name, bytes)
    }

    /// Runs `undo` when the bed has removed what it made (the VM tests' clock set back, then
    /// their lock released): what was asked last runs first.
    pub fn at_end(&mut self, undo: impl FnOnce() + 'static) {
        self.at_end.push(Box::new(undo));
    }

    /// Remembers a container on this host's engine to remove when the test ends.
    pub fn remove_container_later(&mut self, name: &str) {
        self.containers.push(name.to_string());
    }

    /// Remembers an image on this host's engine to remove when the test ends.
    pub fn remove_image_later(&mut self, reference: &str) {
        self.images.push(reference.to_string());
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        // devbox's own container, volume and images, on its engine.
        let _ = self.engine_docker(&["rm", "-f", "-v", &self.name]);
        let _ = self.engine_docker(&["volume", "rm", "-f", &format!("{}-data", self.name)]);
        // Images that lost their tag to a newer pull still carry this bed's repository names.
        let mine = [format!("127.0.0.1:{}/", self.port), format!("{}/", self.name)];
        let listed = self.engine_docker(&["image", "ls", "--format", "{{.Repository}} {{.ID}}"]);
        for line in String::from_utf8_lossy(&listed.stdout).lines() {
            if let Some((repo, id)) = line.split_once(' ')
                && mine.iter().any(|prefix| repo.starts_with(prefix.as_str()))
            {
                let _ = self.engine_docker(&["rmi", "-f", id]);
            }
        }
        // What the test made on this host's engine (CI's registry, builders, images).
        for container in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", container]).output();
        }
        for image in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", image]).output();
        }
        // The registries are gone, so none holds a key while the bucket goes (a moto of the bed's
        // own goes after this, with its buckets).
        self.s3().remove_bucket(&self.bucket);
        while let Some(undo) = self.at_end.pop() {
            undo();
        }
    }
}
