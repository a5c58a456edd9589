//! `devbox registry …` against the real engine and S3 server.

use std::net::TcpListener;

use crate::testbed::{Bed, docker, free_port, hold_port};

#[test]
fn up_serves_what_ci_pushed_read_only_on_loopback() {
    let mut bed = Bed::new("serve");
    let ci = bed.ci_registry();
    let digest = bed.push_image(ci, "base/python:3.12", 200_000);

    bed.test(&["registry", "up"])
        .stdout_has(format!("registry {} at http://127.0.0.1:{} created", bed.name, bed.port))
        .stdout_has(format!("s3://{}/registry, read-only", bed.bucket))
        .run();

    // Bound to loopback only, restart policy and devbox's labels in place.
    let bindings = docker(&["inspect", "--format", "{{json .HostConfig.PortBindings}}", &bed.name]);
    assert_eq!(bindings, format!(r#"{{"5000/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{}"}}]}}"#, bed.port));
    assert_eq!(docker(&["inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", &bed.name]), "unless-stopped");
    assert_eq!(docker(&["inspect", "--format", "{{index .Config.Labels \"devbox.readonly\"}}", &bed.name]), "true");
    // One storage driver (S3, read-only, redirects off); what CI pushed pulls; a push is refused.
    crate::registry_lines::serves_read_only(&mut bed, &digest);
}

#[test]
fn a_second_up_recreates_nothing_and_a_changed_config_recreates() {
    let bed = Bed::new("converge");
    bed.test(&["registry", "up"]).run();
    let first = bed.container_identity().expect("container exists");

    bed.test(&["registry", "up"]).stdout_has("is already up").run();
    assert_eq!(bed.container_identity(), Some(first.clone()), "the second up changed the container");

    // Stopped: started again, same container.
    docker(&["stop", "-t", "1", &bed.name]);
    bed.test(&["registry", "up"]).stdout_has("started").run();
    assert_eq!(bed.container_identity(), Some(first.clone()));

    // A changed config: a new container.
    bed.write_config("root_directory = \"/elsewhere\"\n");
    bed.test(&["registry", "up"]).stdout_has("recreated: the configuration changed").run();
    let second = bed.container_identity().expect("container exists");
    assert_ne!(second.0, first.0);
}

#[test]
fn without_a_bucket_the_registry_uses_a_named_volume_that_down_keeps() {
    let bed = Bed::new("volume");
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n",
        crate::testbed::registry_image_pinned(),
        bed.name,
        bed.port
    ));
    bed.test(&["registry", "up"]).stdout_has(format!("volume {}-data, writable", bed.name)).run();
    // The data volume, and the config's own anonymous volume (the root filesystem is read-only).
    let mounts =
        docker(&["inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Name}}:{{.Destination}}\n{{end}}", &bed.name]);
    let mut mounts: Vec<&str> = mounts.lines().map(|m| m.split(':').next_back().unwrap_or(m)).collect();
    mounts.sort();
    assert_eq!(mounts, ["/etc/devbox", "/var/lib/registry"]);
    assert_eq!(
        docker(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{if eq .Destination \"/var/lib/registry\"}}{{.Name}}{{end}}{{end}}",
            &bed.name
        ]),
        format!("{}-data", bed.name)
    );

    bed.test(&["registry", "down"]).stdout_has(format!("removed; volume {}-data kept", bed.name)).run();
    assert!(bed.container_identity().is_none());
    docker(&["volume", "inspect", &format!("{}-data", bed.name)]);

    bed.test(&["registry", "down"]).stdout_has("is not there").run();
}

#[test]
fn status_reports_state_health_storage_and_json() {
    let bed = Bed::new("status");
    bed.test(&["registry", "status"]).code(1).stdout_has("missing").run();
    bed.test(&["registry", "up"]).run();

    bed.test(&["registry", "status"])
        .stdout_has("running, healthy")
        .stdout_has(format!("127.0.0.1:{}", bed.port))
        .stdout_has("read-only    yes")
        // The host's key is long-lived; the registry's are a session from STS.
        .stdout_has("credentials  expire at")
        .stdout_lacks("long-lived")
        .run();

    // No credential ever reaches the output.
    let json = bed.test(&["registry", "status", "--json"]).stdout_lacks("testing-secret").json();
    assert_eq!(json["state"], "running");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["storage"], "s3");
    assert_eq!(json["readonly"], true);
    assert_eq!(json["config_current"], true);
    assert_eq!(json["bound_to"][0], format!("127.0.0.1:{}", bed.port));

    docker(&["stop", "-t", "1", &bed.name]);
    bed.test(&["registry", "status"]).code(1).stdout_has("exited").stdout_has("devbox registry up").run();
}

#[test]
fn logs_print_the_registry_output() {
    let bed = Bed::new("logs");
    bed.test(&["registry", "logs", "--no-follow"])
        .code(1)
        .stderr_has("does not exist")
        .stderr_has("devbox registry up")
        .run();
    bed.test(&["registry", "up"]).run();
    bed.test(&["registry", "logs", "--no-follow", "--tail", "all"]).stdout_has("GET /v2/").run();
    bed.test(&["registry", "logs", "--tail", "lots"]).code(2).run();
}

/// One fault that `registry up` must refuse: exit 1, stderr saying what `fault` returns, and no
/// container left.
struct Refusal {
    test: &'static str,
    /// Makes the fault on the bed; returns what stderr must say, and what must stay alive while
    /// devbox runs (a held port).
    fault: fn(&Bed) -> (Vec<String>, Option<TcpListener>),
    env: &'static [(&'static str, &'static str)],
}

fn up_refuses_and_creates_nothing(refusal: Refusal) {
    let bed = Bed::new(refusal.test);
    let (says, _held) = (refusal.fault)(&bed);
    let mut run = bed.test(&["registry", "up"]).code(1);
    for (key, value) in refusal.env {
        run = run.env(key, value);
    }
    for text in says {
        run = run.stderr_has(text);
    }
    run.run();
    assert!(bed.container_identity().is_none(), "a container was left behind");
}

/// A config for `bed` on the registry `image`, pulled per `pull`, with no S3.
fn config_with_image(bed: &Bed, image: &str, pull: &str) {
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{image}\"\npull = \"{pull}\"\ncontainer = \"{}\"\nport = {}\n",
        bed.name, bed.port
    ));
}

/// The table of faults: one test per row, so each runs, passes and fails on its own.
macro_rules! up_refusals {
    ($($name:ident: $refusal:expr,)*) => {$(
        #[test]
        fn $name() {
            up_refuses_and_creates_nothing($refusal);
        }
    )*};
}

up_refusals! {
    a_busy_port_is_named_and_leaves_no_container: Refusal {
        test: "busy",
        fault: |bed| {
            let says = vec![format!("port {} on 127.0.0.1 is already in use", bed.port), "registry.port".into()];
            (says, Some(hold_port(bed.port)))
        },
        env: &[],
    },
    an_s3_endpoint_that_refuses_connections_creates_nothing: Refusal {
        test: "s3down",
        fault: |bed| {
            let closed = free_port();
            let text = std::fs::read_to_string(bed.config_path()).expect("read");
            bed.write_raw_config(&text.replace(&bed.s3_endpoint, &format!("http://127.0.0.1:{closed}")));
            let says = vec![
                format!("S3 endpoint http://127.0.0.1:{closed} cannot be reached"),
                "registry.s3.endpoint".into(),
            ];
            (says, None)
        },
        env: &[],
    },
    a_missing_bucket_is_named: Refusal {
        test: "nobucket",
        fault: |bed| {
            let text = std::fs::read_to_string(bed.config_path()).expect("read");
            bed.write_raw_config(&text.replace(&bed.bucket, "no-such-bucket-here"));
            (vec!["S3 bucket no-such-bucket-here".into(), "does not exist".into()], None)
        },
        env: &[],
    },
    // Never pulling: a clear error naming the key.
    a_registry_image_that_does_not_exist_creates_nothing: Refusal {
        test: "noimage",
        fault: |bed| {
            config_with_image(bed, "devbox-testbed/no-such-image:1", "never");
            let says = vec!["devbox-testbed/no-such-image:1 is not on this engine".into(), "registry.pull".into()];
            (says, None)
        },
        env: &[],
    },
    // Pulling from a registry that is not there (on loopback, so nothing leaves this machine).
    a_registry_image_that_cannot_be_pulled_creates_nothing: Refusal {
        test: "nopullimage",
        fault: |bed| {
            let image = format!("127.0.0.1:{}/nope/registry:2", free_port());
            config_with_image(bed, &image, "missing");
            (vec![format!("cannot pull the registry image {image}")], None)
        },
        env: &[],
    },
    an_unreachable_engine_is_named_with_how_to_start_docker: Refusal {
        test: "noengine",
        fault: |_| {
            let says = ["Docker engine not reachable", "unix:///nonexistent.sock (DOCKER_HOST)", "Start Docker"];
            (says.map(String::from).to_vec(), None)
        },
        env: &[("DOCKER_HOST", "unix:///nonexistent.sock")],
    },
}

#[test]
fn a_container_devbox_did_not_make_is_left_alone() {
    let bed = Bed::new("foreign");
    docker(&["create", "--name", &bed.name, crate::testbed::REGISTRY_IMAGE]);
    let before = bed.container_identity();
    bed.test(&["registry", "up"]).code(1).stderr_has("devbox did not make it").run();
    bed.test(&["registry", "down"]).code(1).run();
    assert_eq!(bed.container_identity(), before);
}
