//! `devbox registry …` against the real engine and S3 server.

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
        crate::testbed::REGISTRY_IMAGE,
        bed.name,
        bed.port
    ));
    bed.test(&["registry", "up"]).stdout_has(format!("volume {}-data, writable", bed.name)).run();
    let mounts = docker(&["inspect", "--format", "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}", &bed.name]);
    assert_eq!(mounts, format!("{}-data:/var/lib/registry", bed.name));

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
        .stdout_has("long-lived (no expiry)")
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

#[test]
fn a_busy_port_is_named_and_leaves_no_container() {
    let bed = Bed::new("busy");
    let _holder = hold_port(bed.port);
    bed.test(&["registry", "up"])
        .code(1)
        .stderr_has(format!("port {} on 127.0.0.1 is already in use", bed.port))
        .stderr_has("registry.port")
        .run();
    assert!(bed.container_identity().is_none(), "a container was left behind");
}

#[test]
fn an_s3_endpoint_that_refuses_connections_creates_nothing() {
    let bed = Bed::new("s3down");
    let closed = free_port();
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{}\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n\
         [registry.s3]\nbucket = \"{}\"\nendpoint = \"http://127.0.0.1:{closed}\"\npath_style = true\n",
        crate::testbed::REGISTRY_IMAGE,
        bed.name,
        bed.port,
        bed.bucket
    ));
    bed.test(&["registry", "up"])
        .code(1)
        .stderr_has(format!("S3 endpoint http://127.0.0.1:{closed} cannot be reached"))
        .stderr_has("registry.s3.endpoint")
        .run();
    assert!(bed.container_identity().is_none());
}

#[test]
fn a_missing_bucket_is_named() {
    let bed = Bed::new("nobucket");
    bed.write_config("");
    let text = std::fs::read_to_string(bed.config_path()).expect("read").replace(&bed.bucket, "no-such-bucket-here");
    bed.write_raw_config(&text);
    bed.test(&["registry", "up"])
        .code(1)
        .stderr_has("S3 bucket no-such-bucket-here")
        .stderr_has("does not exist")
        .run();
    assert!(bed.container_identity().is_none());
}

#[test]
fn a_registry_image_that_does_not_exist_creates_nothing() {
    let bed = Bed::new("noimage");
    // Never pulling: a clear error naming the key.
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"devbox-testbed/no-such-image:1\"\npull = \"never\"\ncontainer = \"{}\"\nport = {}\n",
        bed.name, bed.port
    ));
    bed.test(&["registry", "up"])
        .code(1)
        .stderr_has("devbox-testbed/no-such-image:1 is not on this engine")
        .stderr_has("registry.pull")
        .run();
    assert!(bed.container_identity().is_none());

    // Pulling from a registry that is not there (on loopback, so nothing leaves this machine).
    let image = format!("127.0.0.1:{}/nope/registry:2", free_port());
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{image}\"\npull = \"missing\"\ncontainer = \"{}\"\nport = {}\n",
        bed.name, bed.port
    ));
    bed.test(&["registry", "up"]).code(1).stderr_has(format!("cannot pull the registry image {image}")).run();
    assert!(bed.container_identity().is_none());
}

#[test]
fn an_unreachable_engine_is_named_with_how_to_start_docker() {
    let bed = Bed::new("noengine");
    bed.test(&["registry", "up"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .code(1)
        .stderr_has("Docker engine not reachable")
        .stderr_has("unix:///nonexistent.sock (DOCKER_HOST)")
        .stderr_has("Start Docker")
        .run();
    assert!(bed.container_identity().is_none());
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
