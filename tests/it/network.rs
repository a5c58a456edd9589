//! The company network (issue 28): S3 over TLS with a private CA, reachable only through a proxy
//! (the direct path closed by an iptables rule for the test's duration), a plain proxy
//! (tinyproxy) and a TLS-inspecting one (mitmproxy, re-signing with a CA of its own). With the
//! proxy and CAs set, `init --yes` sets up the registry and pulls a base image through it, doctor
//! is green, and the proxy's log shows the traffic, devbox's and the registry container's. Without
//! the inspecting CA, doctor names its issuer and the fix; the faults (a proxy that is not a URL, a
//! CA that is not PEM, a proxy that refuses or wants credentials, NO_PROXY) each have a test.

use crate::testbed::corp::{Corp, Proxy};
use crate::testbed::{Bed, REGISTRY_IMAGE, S3Server, Test, free_port, output_text};

/// The checks that judge the network and what goes through it (`schedules`, `disk` and `clock`
/// judge this machine, as in the other doctor tests).
const CHECKS: [&str; 10] = [
    "--check",
    "network",
    "--check",
    "aws-credentials",
    "--check",
    "registry-container",
    "--check",
    "registry-api",
    "--check",
    "base-images",
];

fn doctor(bed: &Bed) -> Test {
    let mut args = vec!["doctor"];
    args.extend_from_slice(&CHECKS);
    bed.test(&args)
}

/// A bed whose bucket holds a base image CI pushed, on S3 over TLS with a private CA, the direct
/// path to which is closed.
fn corp_bed(test: &str) -> (Bed, Corp) {
    let mut bed = Bed::on_s3(test, S3Server::moto().host_as_host().start());
    let mut corp = Corp::new(test, bed.s3().port());
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/tool:1", 100_000);
    bed.remove_image_later(&format!("127.0.0.1:{}/base/tool:1", bed.port));
    bed.remove_image_later(&format!("{}/base/tool:1", bed.name));
    corp.close_direct_path();
    (bed, corp)
}

/// The bed's devbox.toml, on the company's S3, with `network` as its `[network]` table.
fn write_config(bed: &Bed, corp: &Corp, network: &str) {
    write_config_s3(bed, corp, "", network);
}

/// Garage has no STS, and the corporate S3 is named (`devbox-corp.test`), not an address on this
/// machine: devbox hands such a store the long-lived key only when the config says so.
const KEY_TO_GARAGE: &str = "session = \"off\"\n";

/// As `write_config`, with `s3` added to `[registry.s3]`.
fn write_config_s3(bed: &Bed, corp: &Corp, s3: &str, network: &str) {
    bed.write_raw_config(&format!(
        "[registry]\nimage = \"{REGISTRY_IMAGE}\"\npull = \"never\"\ncontainer = \"{name}\"\nport = {port}\n\
         [registry.s3]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\npath_style = true\nregion = \"us-east-1\"\n{s3}\
         [images]\nbase = [\"base/tool:1\"]\nalias = \"{name}/{{name}}\"\n[network]\n{network}\n",
        name = bed.name,
        port = bed.port,
        bucket = bed.bucket,
        endpoint = corp.endpoint(),
    ));
}

/// The registry container's environment, one `NAME=value` per line, from its engine.
fn container_env(bed: &Bed) -> String {
    let out = bed.engine_docker(&["inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", &bed.name]);
    assert!(out.status.success(), "inspecting the registry: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn network_init_pull_and_doctor_go_through_the_proxy_only() {
    let (bed, mut corp) = corp_bed("netproxy");
    let proxy = corp.tinyproxy(free_port(), None);
    write_config(&bed, &corp, &format!("ca_certificates = [{:?}]", corp.s3_ca.display().to_string()));
    // The proxy comes from the environment, as curl reads it.
    let bed = bed.env("HTTPS_PROXY", &proxy.url()).env("DEVBOX_SCHEDULER", "none");
    bed.test(&["init", "--yes"]).output_has("✓ pull      1 updated").run();
    let env = container_env(&bed);
    assert!(env.contains(&format!("HTTPS_PROXY=http://host.docker.internal:{}", proxy.port)), "{env}");
    assert!(env.contains("SSL_CERT_DIR=/etc/devbox"), "{env}");
    doctor(&bed)
        .code(0)
        .stdout_has(format!("S3 through proxy http://127.0.0.1:{} (HTTPS_PROXY)", proxy.port))
        .stdout_has("issued by CN=Devbox Corp S3 CA")
        .run();
    let log = proxy.log_text();
    assert!(log.contains(&format!("CONNECT {}:{}", corp.s3_name, corp.s3_port)), "the proxy's log:\n{log}");
    // The registry container's own requests came through it too, from the docker bridge.
    assert!(log.lines().any(|l| l.contains("Connect (file descriptor") && !l.contains("127.0.0.1")), "{log}");

    // The company CAs are part of the registry's config hash: one more, and it is made again.
    let before = bed.container_identity().expect("the registry");
    let another = format!("{}/tests/fixtures/network/ca.pem", env!("CARGO_MANIFEST_DIR"));
    write_config(&bed, &corp, &format!("ca_certificates = [{:?}, {another:?}]", corp.s3_ca.display().to_string()));
    bed.test(&["registry", "up"]).output_has("recreated: the configuration changed").run();
    assert_ne!(bed.container_identity(), Some(before), "changing the CAs must recreate the registry");
}

/// With TLS inspection: the same, once the inspecting CA is configured; without it, doctor names
/// the CA that issued what devbox saw, and the fix.
#[test]
fn network_tls_inspection_with_and_without_the_company_ca() {
    let (bed, mut corp) = corp_bed("netinspect");
    let mitm = corp.mitmproxy(free_port());
    let inspect_ca = mitm.ca.clone().expect("mitmproxy's CA").display().to_string();
    let bed = bed.env("DEVBOX_SCHEDULER", "none");
    write_config(&bed, &corp, &format!("proxy = {:?}\nca_certificates = [{inspect_ca:?}]", mitm.url()));
    bed.test(&["init", "--yes"]).output_has("✓ pull      1 updated").run();
    doctor(&bed)
        .code(0)
        .stdout_has("issued by CN=Devbox Corp Inspection CA, O=Devbox Corp, a CA outside the public roots")
        .run();
    let log = mitm.log_text();
    assert!(log.contains(&corp.s3_name), "mitmproxy's log:\n{log}");

    write_config(&bed, &corp, &format!("proxy = {:?}", mitm.url()));
    bed.test(&["doctor", "--check", "network"])
        .code(1)
        .stdout_has("issued by CN=Devbox Corp Inspection CA, O=Devbox Corp, a CA this machine does not trust")
        .stdout_has("[network] ca_certificates = [")
        .run();
}

#[test]
fn network_bad_input_exits_2_and_changes_nothing() {
    let bed = Bed::new("netbad");
    bed.write_config("[network]\nproxy = \"not a url\"\n");
    bed.test(&["registry", "up"]).code(2).stderr_has("network.proxy").stderr_has("not a proxy URL").run();
    let notes = bed.home.path().join("company-ca.pem");
    std::fs::write(&notes, "ask IT for the real one\n").expect("write");
    bed.write_config(&format!("[network]\nca_certificates = [{:?}]\n", notes.display().to_string()));
    bed.test(&["registry", "up"]).code(2).stderr_has("company-ca.pem is not a PEM certificate").run();
    bed.write_config("");
    bed.test(&["registry", "up"])
        .env("HTTPS_PROXY", "http://alice:hunter2@proxy:notaport")
        .code(2)
        .stderr_has("HTTPS_PROXY: ")
        .output_lacks("hunter2")
        .run();
    assert_eq!(bed.container_identity(), None, "nothing may be created on bad input");
}

#[test]
fn network_a_proxy_that_refuses_or_wants_credentials_is_named() {
    let (bed, mut corp) = corp_bed("netauth");
    write_config(&bed, &corp, &format!("ca_certificates = [{:?}]", corp.s3_ca.display().to_string()));
    let nobody = free_port();
    let checks = ["doctor", "--check", "network", "--check", "aws-credentials"];
    bed.test(&checks)
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{nobody}"))
        .code(1)
        .stdout_has(format!("the proxy http://127.0.0.1:{nobody} (HTTPS_PROXY) does not answer"))
        .stdout_has(format!("cannot reach S3 through the proxy http://127.0.0.1:{nobody} (HTTPS_PROXY)"))
        .run();

    let proxy: Proxy = corp.tinyproxy(free_port(), Some(("alice", "s3cret-pw")));
    let at = |userinfo: &str| format!("http://{userinfo}127.0.0.1:{}", proxy.port);
    bed.test(&checks)
        .env("HTTPS_PROXY", at(""))
        .code(1)
        .stdout_has("asks for credentials (HTTP 407 Proxy Authentication Required)")
        .stdout_has("Put your proxy user and password in HTTPS_PROXY")
        .run();
    bed.test(&checks)
        .env("HTTPS_PROXY", at("alice:wrong-hunter2@"))
        .code(1)
        .stdout_has(format!("the proxy http://***@127.0.0.1:{} (HTTPS_PROXY) asks for credentials", proxy.port))
        .stdout_has("It refused the user and password in HTTPS_PROXY")
        .output_lacks("wrong-hunter2")
        .run();
    bed.test(&checks).env("HTTPS_PROXY", at("alice:s3cret-pw@")).code(0).output_lacks("s3cret-pw").run();
}

#[test]
fn network_no_proxy_with_a_cidr_and_a_leading_dot() {
    let (bed, mut corp) = corp_bed("netnoproxy");
    let proxy = corp.tinyproxy(free_port(), None);
    write_config(&bed, &corp, &format!("ca_certificates = [{:?}]", corp.s3_ca.display().to_string()));
    let checks = ["doctor", "--check", "network", "--check", "aws-credentials"];
    // Neither rule covers S3's name: through the proxy.
    bed.test(&checks)
        .env("HTTPS_PROXY", proxy.url())
        .env("NO_PROXY", "10.0.0.0/8,.example.com")
        .code(0)
        .stdout_has("S3 through proxy")
        .run();
    // A leading dot covers every name under it: S3 is then reached directly, which the company
    // network does not allow, and doctor says so.
    bed.test(&checks)
        .env("https_proxy", proxy.url())
        .env("no_proxy", "10.0.0.0/8,.devbox-corp.test")
        .code(1)
        .stdout_has("directly (NO_PROXY sends it around the proxy)")
        .run();
}

/// A port of this host that the VM's containers reach at host.docker.internal: the VM forwards
/// 3910-3919 (tests/testbed/vm/vm.sh) to this host's loopback. The VM tests run one at a time.
fn vm_forwarded_port() -> u16 {
    (3910..=3919).find(|p| !crate::testbed::port_open(*p)).expect("a free port among 3910-3919")
}

/// On the VM engine (a Debian VM under QEMU, reached as colima's, that reaches this host only
/// through QEMU's explicit forwards): S3 only through the proxy, then through a TLS-inspecting one.
#[test]
fn vm_network_through_the_proxy_and_through_tls_inspection() {
    let mut bed = Bed::on_vm("network");
    let ci = bed.ci_registry();
    bed.push_image(ci, "base/tool:1", 1_000);
    // S3 over TLS in front of the testbed's Garage, where the bed's bucket is.
    let mut corp = Corp::new("vmnet", bed.s3().port());
    corp.close_direct_path();
    let proxy = corp.tinyproxy(vm_forwarded_port(), None);
    let s3_ca = corp.s3_ca.display().to_string();
    write_config_s3(&bed, &corp, KEY_TO_GARAGE, &format!("proxy = {:?}\nca_certificates = [{s3_ca:?}]", proxy.url()));
    // init's own doctor step judges the VM's disk too, which is the testbed's, not this test's
    // (the doctor tests leave it out): the checks that judge the network run right after.
    bed.test(&["init", "--yes", "--skip", "doctor"]).output_has("✓ pull      1 updated").run();
    let env = container_env(&bed);
    assert!(env.contains(&format!("HTTPS_PROXY=http://host.docker.internal:{}", proxy.port)), "{env}");
    doctor(&bed).code(0).stdout_has(format!("S3 through proxy {} (network.proxy)", proxy.url())).run();
    let log = proxy.log_text();
    assert!(log.contains(&format!("CONNECT {}:{}", corp.s3_name, corp.s3_port)), "the proxy's log:\n{log}");

    let mitm = corp.mitmproxy(vm_forwarded_port());
    let inspect_ca = mitm.ca.clone().expect("mitmproxy's CA").display().to_string();
    write_config_s3(
        &bed,
        &corp,
        KEY_TO_GARAGE,
        &format!("proxy = {:?}\nca_certificates = [{inspect_ca:?}]", mitm.url()),
    );
    bed.test(&["registry", "up"]).output_has("recreated").run();
    bed.test(&["pull"]).output_has("base/tool:1").run();
    doctor(&bed).code(0).stdout_has("issued by CN=Devbox Corp Inspection CA, O=Devbox Corp").run();
    assert!(mitm.log_text().contains(&corp.s3_name), "mitmproxy's log:\n{}", mitm.log_text());
    write_config_s3(&bed, &corp, KEY_TO_GARAGE, &format!("proxy = {:?}", mitm.url()));
    bed.test(&["doctor", "--check", "network"]).code(1).stdout_has("Devbox Corp Inspection CA").run();
}

/// The company's CA in this machine's own trust store (IT installed it; here `SSL_CERT_FILE`, which
/// the OS store's loader reads) but not in `[network] ca_certificates`: devbox trusts S3, the
/// registry container would not, and doctor says so before it matters.
#[test]
fn network_a_ca_only_this_machine_trusts_is_named_for_the_registry() {
    let (bed, mut corp) = corp_bed("netosca");
    let proxy = corp.tinyproxy(free_port(), None);
    write_config(&bed, &corp, "");
    bed.test(&["doctor", "--check", "network"])
        .env("HTTPS_PROXY", proxy.url())
        .env("SSL_CERT_FILE", &corp.s3_ca)
        .code(1)
        .stdout_has("issued by CN=Devbox Corp S3 CA, O=Devbox Corp, a CA outside the public roots")
        .stdout_has("the registry container will not trust it")
        .stdout_has("[network] ca_certificates = [")
        .run();
}
