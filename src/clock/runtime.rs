//! Which runtime the engine is, and whether it runs in a VM whose clock can drift apart from this
//! host's. Decided from the engine's own info and from where devbox reached it: a pure function,
//! tested on recorded `docker info` payloads (tests/fixtures/engine-info/).

use serde::Serialize;

use crate::engine::{Engine, EngineInfo};
use crate::env::Environment;

/// The environment variable that overrides the classification. A testing aid: it lets the tests
/// drive the VM path (`--dry-run` only; see `sync.rs`) against the native engine of the testbed.
pub const FORCE_VAR: &str = "DEVBOX_ENGINE_KIND";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    DockerDesktop,
    Colima,
    Lima,
    RancherDesktop,
    OrbStack,
    /// dockerd inside a WSL2 distribution.
    Wsl2,
    Boot2Docker,
    PodmanMachine,
    /// A Linux engine on a macOS or Windows host that devbox cannot name: still a VM.
    OtherVm,
    /// dockerd (or podman) on this Linux host: it shares this host's kernel and clock.
    NativeLinux,
    /// Windows containers on this Windows host: the host's own clock.
    NativeWindows,
    /// An engine on another machine (tcp:// or ssh:// to another address): its clock is that
    /// machine's, kept by its own NTP.
    Remote,
}

impl Runtime {
    /// Whether the engine runs in a VM on this host, whose clock devbox may set.
    pub fn is_vm(self) -> bool {
        !matches!(self, Runtime::NativeLinux | Runtime::NativeWindows | Runtime::Remote)
    }

    pub fn label(self) -> &'static str {
        match self {
            Runtime::DockerDesktop => "Docker Desktop",
            Runtime::Colima => "colima",
            Runtime::Lima => "lima",
            Runtime::RancherDesktop => "Rancher Desktop",
            Runtime::OrbStack => "OrbStack",
            Runtime::Wsl2 => "WSL2",
            Runtime::Boot2Docker => "boot2docker",
            Runtime::PodmanMachine => "podman machine",
            Runtime::OtherVm => "a Linux VM",
            Runtime::NativeLinux => "native Linux",
            Runtime::NativeWindows => "native Windows",
            Runtime::Remote => "a remote engine",
        }
    }

    /// `DEVBOX_ENGINE_KIND`: "vm", "native", or a runtime's kebab-case name ("docker-desktop", …).
    pub fn from_override(value: &str) -> Option<Runtime> {
        Some(match value {
            "vm" | "other-vm" => Runtime::OtherVm,
            "native" | "native-linux" => Runtime::NativeLinux,
            "docker-desktop" => Runtime::DockerDesktop,
            "colima" => Runtime::Colima,
            "lima" => Runtime::Lima,
            "rancher-desktop" => Runtime::RancherDesktop,
            "orbstack" => Runtime::OrbStack,
            "wsl2" => Runtime::Wsl2,
            "boot2docker" => Runtime::Boot2Docker,
            "podman-machine" => Runtime::PodmanMachine,
            "native-windows" => Runtime::NativeWindows,
            "remote" => Runtime::Remote,
            _ => return None,
        })
    }
}

/// The runtime, and the evidence for it in a few words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub runtime: Runtime,
    pub vm: bool,
    pub reason: String,
    /// Set by `DEVBOX_ENGINE_KIND` rather than read from the engine.
    pub forced: bool,
    /// The runtime's own name for this VM, where its CLI needs one: a colima profile, a lima
    /// instance.
    pub instance: Option<String>,
    /// The engine runs rootless: its containers' `SYS_TIME` is their user namespace's, which cannot
    /// set the VM's clock.
    pub rootless: bool,
}

impl Classification {
    pub fn new(runtime: Runtime, reason: impl Into<String>) -> Self {
        Classification {
            runtime,
            vm: runtime.is_vm(),
            reason: reason.into(),
            forced: false,
            instance: None,
            rootless: false,
        }
    }

    fn instance(mut self, name: &str) -> Self {
        self.instance = Some(name.to_string());
        self
    }
}

/// Classifies the engine from its info, the endpoint devbox reached it at, and this host's OS
/// (`std::env::consts::OS`).
pub fn classify(info: &EngineInfo, endpoint: &str, host_os: &str) -> Classification {
    Classification { rootless: info.rootless, ..classify_runtime(info, endpoint, host_os) }
}

fn classify_runtime(info: &EngineInfo, endpoint: &str, host_os: &str) -> Classification {
    let os = info.operating_system.to_lowercase();
    let kernel = info.kernel_version.to_lowercase();
    let name = info.name.to_lowercase();
    let endpoint_lc = endpoint.to_lowercase();
    let labels = info.labels.join(" ").to_lowercase();
    let says = |what: &str, value: &str| format!("{what} is {value:?}");

    if os.contains("docker desktop") || labels.contains("com.docker.desktop") {
        return Classification::new(Runtime::DockerDesktop, says("the engine's OS", &info.operating_system));
    }
    if os.contains("orbstack") || kernel.contains("orbstack") {
        return Classification::new(Runtime::OrbStack, says("the kernel", &info.kernel_version));
    }
    if name.contains("rancher-desktop") || endpoint_lc.contains("/.rd/") || os.contains("rancher desktop") {
        return Classification::new(Runtime::RancherDesktop, says("the engine's host name", &info.name));
    }
    if name == "colima" || name.starts_with("colima-") || endpoint_lc.contains("/.colima/") {
        let profile = name.strip_prefix("colima-").unwrap_or("default");
        return Classification::new(Runtime::Colima, says("the engine's host name", &info.name)).instance(profile);
    }
    if let Some(instance) = name.strip_prefix("lima-") {
        return Classification::new(Runtime::Lima, says("the engine's host name", &info.name)).instance(instance);
    }
    if endpoint_lc.contains("/.lima/") {
        return Classification::new(Runtime::Lima, format!("the socket {endpoint} is lima's"));
    }
    if endpoint_lc.contains("podman-machine") || endpoint_lc.contains("podman/machine") {
        return Classification::new(Runtime::PodmanMachine, format!("the socket {endpoint} is a podman machine's"));
    }
    if os.contains("boot2docker") || kernel.contains("boot2docker") {
        return Classification::new(Runtime::Boot2Docker, says("the engine's OS", &info.operating_system));
    }
    if kernel.contains("microsoft") || kernel.contains("wsl2") {
        return Classification::new(Runtime::Wsl2, says("the kernel", &info.kernel_version));
    }
    if info.os_type == "windows" && host_os == "windows" && is_local(endpoint) {
        return Classification::new(Runtime::NativeWindows, "Windows containers on this host");
    }
    if !is_local(endpoint) {
        return Classification::new(Runtime::Remote, format!("{endpoint} is another machine"));
    }
    if host_os != "linux" {
        return Classification::new(
            Runtime::OtherVm,
            format!("a {} engine on a {host_os} host runs in a VM", display_or(&info.os_type, "Linux")),
        );
    }
    Classification::new(
        Runtime::NativeLinux,
        format!("{} on this host's kernel ({})", display_or(&info.operating_system, "Linux"), info.kernel_version),
    )
}

/// The classification in force: `DEVBOX_ENGINE_KIND` when set and valid, else the engine's own.
pub fn effective(detected: Classification, env: &Environment) -> Classification {
    match env.var(FORCE_VAR).and_then(Runtime::from_override) {
        Some(runtime) => Classification {
            runtime,
            vm: runtime.is_vm(),
            reason: format!("{FORCE_VAR} says so (the engine itself looks like {})", detected.runtime.label()),
            forced: runtime != detected.runtime,
            instance: None,
            rootless: detected.rootless,
        },
        None => detected,
    }
}

/// The classification in force for a connected engine (one `GET /info`).
pub async fn of_engine(engine: &Engine, env: &Environment) -> anyhow::Result<Classification> {
    let info = engine.info().await?;
    Ok(effective(classify(&info, engine.endpoint(), std::env::consts::OS), env))
}

/// A unix socket or named pipe, or TCP to this host's loopback.
fn is_local(endpoint: &str) -> bool {
    if endpoint.starts_with("unix://") || endpoint.starts_with("npipe://") {
        return true;
    }
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "")
}

fn display_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::info_from_json;

    fn fixture(name: &str) -> EngineInfo {
        let path = format!("{}/tests/fixtures/engine-info/{name}.json", env!("CARGO_MANIFEST_DIR"));
        info_from_json(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    fn runtime(name: &str, endpoint: &str, host_os: &str) -> Runtime {
        classify(&fixture(name), endpoint, host_os).runtime
    }

    #[test]
    fn the_testbed_engine_is_native_linux_despite_its_host_name() {
        // Recorded on the testbed: dockerd 20.10 on Debian 12, whose host name happens to be "vm".
        let c = classify(&fixture("testbed-debian-native"), "unix:///var/run/docker.sock", "linux");
        assert_eq!(c.runtime, Runtime::NativeLinux);
        assert!(!c.vm);
        assert!(c.reason.contains("Debian GNU/Linux 12"), "{}", c.reason);
    }

    #[test]
    fn docker_desktop_is_a_vm_on_every_host_and_backend() {
        let mac = "unix:///Users/ann/.docker/run/docker.sock";
        assert_eq!(runtime("docker-desktop-mac", mac, "macos"), Runtime::DockerDesktop);
        assert_eq!(runtime("docker-desktop-wsl2", "npipe:////./pipe/docker_engine", "windows"), Runtime::DockerDesktop);
        // Docker Desktop for Linux runs a VM too, though the host is Linux.
        assert_eq!(
            runtime("docker-desktop-mac", "unix:///home/ann/.docker/desktop/docker.sock", "linux"),
            Runtime::DockerDesktop
        );
    }

    #[test]
    fn lima_family_is_told_apart() {
        assert_eq!(runtime("colima", "unix:///Users/ann/.colima/default/docker.sock", "macos"), Runtime::Colima);
        assert_eq!(runtime("rancher-desktop", "unix:///Users/ann/.rd/docker.sock", "macos"), Runtime::RancherDesktop);
        assert_eq!(runtime("lima-docker", "unix:///Users/ann/.lima/docker/sock/docker.sock", "macos"), Runtime::Lima);
        // A colima profile's host name is "colima-<profile>".
        let mut info = fixture("colima");
        assert_eq!(classify(&info, "unix:///tmp/x.sock", "macos").instance.as_deref(), Some("default"));
        info.name = "colima-work".into();
        let work = classify(&info, "unix:///tmp/x.sock", "macos");
        assert_eq!((work.runtime, work.instance.as_deref()), (Runtime::Colima, Some("work")));
        let lima = classify(&fixture("lima-docker"), "unix:///tmp/x.sock", "macos");
        assert_eq!((lima.runtime, lima.instance.as_deref()), (Runtime::Lima, Some("docker")));
    }

    #[test]
    fn orbstack_wsl2_boot2docker_and_podman_machine() {
        assert_eq!(runtime("orbstack", "unix:///Users/ann/.orbstack/run/docker.sock", "macos"), Runtime::OrbStack);
        assert_eq!(runtime("wsl2-dockerd", "unix:///var/run/docker.sock", "linux"), Runtime::Wsl2);
        assert_eq!(runtime("boot2docker", "tcp://192.168.99.100:2376", "macos"), Runtime::Boot2Docker);
        let podman = "unix:///var/folders/x1/T/podman/podman-machine-default-api.sock";
        assert_eq!(runtime("podman-machine", podman, "macos"), Runtime::PodmanMachine);
        // The same podman payload over its Linux user socket is podman on this host.
        assert_eq!(
            runtime("podman-machine", "unix:///run/user/1000/podman/podman.sock", "linux"),
            Runtime::NativeLinux
        );
    }

    #[test]
    fn a_plain_linux_engine_elsewhere_is_remote_or_a_vm() {
        assert_eq!(runtime("testbed-debian-native", "tcp://10.0.0.5:2375", "linux"), Runtime::Remote);
        assert_eq!(runtime("testbed-debian-native", "tcp://127.0.0.1:2375", "linux"), Runtime::NativeLinux);
        // A Linux engine that a Mac reaches on its own socket can only be in a VM.
        assert_eq!(
            runtime("testbed-debian-native", "unix:///Users/ann/.docker/run/docker.sock", "macos"),
            Runtime::OtherVm
        );
    }

    #[test]
    fn only_vms_may_have_their_clock_set() {
        assert!(Runtime::DockerDesktop.is_vm() && Runtime::PodmanMachine.is_vm() && Runtime::OtherVm.is_vm());
        assert!(!Runtime::NativeLinux.is_vm() && !Runtime::Remote.is_vm() && !Runtime::NativeWindows.is_vm());
    }

    #[test]
    fn the_override_is_marked_as_forced() {
        let detected = classify(&fixture("testbed-debian-native"), "unix:///var/run/docker.sock", "linux");
        let forced = effective(detected.clone(), &Environment::default().with(FORCE_VAR, "vm"));
        assert_eq!(forced.runtime, Runtime::OtherVm);
        assert!(forced.vm && forced.forced);
        let same = effective(detected.clone(), &Environment::default().with(FORCE_VAR, "native"));
        assert!(!same.forced && !same.vm);
        // An unknown value is ignored rather than guessed at.
        assert_eq!(effective(detected.clone(), &Environment::default().with(FORCE_VAR, "vmm")), detected);
    }
}
