//! No push credentials for production registries on this machine: only CI pushes there.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::Probe;
use crate::docker_config::{self, Stored};
use crate::doctor::{CheckId, Finding};
use crate::env::Environment;

pub fn check<'p>(probe: &'p Probe<'_>) -> BoxFuture<'p, Finding> {
    async move {
        let production = &probe.config.security.production_registries;
        // With no production registry named, there is nothing to look for.
        let found = if production.is_empty() { None } else { Some(measure(probe.env).await) };
        judge(production, found.as_ref())
    }
    .boxed()
}

/// Which registry hosts the docker CLI keeps credentials for, and how; never the secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsFound {
    /// HOME is unset: there is no docker config to read.
    NoConfig,
    /// The docker config is absent or unreadable.
    Unreadable(PathBuf),
    Read {
        path: PathBuf,
        stored: Vec<(String, Stored)>,
        /// The global credential store, when it would not list its hosts.
        unlisted_store: Option<String>,
    },
}

pub async fn measure(env: &Environment) -> CredentialsFound {
    let Some(path) = docker_config::path(env) else { return CredentialsFound::NoConfig };
    let Some(docker) = docker_config::read(&path) else { return CredentialsFound::Unreadable(path) };
    let (mut stored, store) = docker_config::stored_credentials(&docker);
    let mut unlisted_store = None;
    if let Some(store) = store {
        match docker_config::store_hosts(&store, Duration::from_secs(3)).await {
            Some(hosts) => stored.extend(hosts.into_iter().map(|h| (h, Stored::Store { store: store.clone() }))),
            None => unlisted_store = Some(store),
        }
    }
    CredentialsFound::Read { path, stored, unlisted_store }
}

/// Credentials for any of the `production` registries fail, with the `docker logout` that removes
/// the first. `found` is `None` when there was nothing to look for. Pure.
pub fn judge(production: &[String], found: Option<&CredentialsFound>) -> Finding {
    let id = CheckId::PushCredentials;
    let (path, stored, unlisted_store) = match found {
        _ if production.is_empty() => {
            return Finding::ok(id, "no production registries configured (security.production_registries)");
        }
        None | Some(CredentialsFound::NoConfig) => return Finding::ok(id, "no docker config (HOME unset)"),
        Some(CredentialsFound::Unreadable(path)) => {
            return Finding::ok(id, format!("none stored ({} absent or unreadable)", path.display()));
        }
        Some(CredentialsFound::Read { path, stored, unlisted_store }) => (path, stored, unlisted_store),
    };
    let wanted: Vec<String> = production.iter().map(|h| docker_config::normalize_host(h)).collect();
    let offending: Vec<&(String, Stored)> = stored.iter().filter(|(host, _)| wanted.contains(host)).collect();
    if let Some((host, how)) = offending.first() {
        let place = match how {
            Stored::InFile => format!("in {}", path.display()),
            Stored::Helper { helper } => format!("through the credential helper {helper}"),
            Stored::Store { store } => format!("in the credential store {store}"),
        };
        let hosts: Vec<&str> = offending.iter().map(|(h, _)| h.as_str()).collect();
        return Finding::fail(id, format!("push credentials for {} are stored {place}", hosts.join(", ")))
            .hint("Only CI pushes to production. Remove them from this machine.")
            .fix(format!("docker logout {host}"));
    }
    let summary = format!("none for the {} production registries", production.len());
    match unlisted_store {
        Some(store) => {
            Finding::ok(id, format!("{summary} in {} (credential store {store} not readable)", path.display()))
        }
        None => Finding::ok(id, summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn production() -> Vec<String> {
        vec![format!("https://{ECR}/v1/"), "ghcr.io".into()]
    }

    fn read(stored: &[(&str, Stored)], unlisted_store: Option<&str>) -> CredentialsFound {
        CredentialsFound::Read {
            path: PathBuf::from("/home/dev/.docker/config.json"),
            stored: stored.iter().map(|(host, how)| (host.to_string(), how.clone())).collect(),
            unlisted_store: unlisted_store.map(String::from),
        }
    }

    #[test]
    fn nothing_to_look_for_or_nothing_found_passes() {
        let none = judge(&[], None);
        assert_eq!(none.status, Status::Ok);
        assert_eq!(none.summary, "no production registries configured (security.production_registries)");
        assert_eq!(judge(&production(), Some(&CredentialsFound::NoConfig)).summary, "no docker config (HOME unset)");
        let unreadable = CredentialsFound::Unreadable(PathBuf::from("/home/dev/.docker/config.json"));
        assert_eq!(
            judge(&production(), Some(&unreadable)).summary,
            "none stored (/home/dev/.docker/config.json absent or unreadable)"
        );
        let others = judge(&production(), Some(&read(&[("docker.io", Stored::InFile)], None)));
        assert_eq!((others.status, others.summary.as_str()), (Status::Ok, "none for the 2 production registries"));
    }

    #[test]
    fn production_credentials_fail_with_the_logout_that_removes_them() {
        let found = read(&[("docker.io", Stored::InFile), (ECR, Stored::Helper { helper: "ecr-login".into() })], None);
        let finding = judge(&production(), Some(&found));
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(
            finding.summary,
            format!("push credentials for {ECR} are stored through the credential helper ecr-login")
        );
        assert_eq!(finding.fix, Some(format!("docker logout {ECR}")));
        assert_eq!(finding.remedy, None, "--fix never logs out on the user's behalf");

        let both = read(&[("ghcr.io", Stored::InFile), (ECR, Stored::Store { store: "desktop".into() })], None);
        let finding = judge(&production(), Some(&both));
        assert_eq!(
            finding.summary,
            format!("push credentials for ghcr.io, {ECR} are stored in /home/dev/.docker/config.json")
        );
        assert_eq!(finding.fix.as_deref(), Some("docker logout ghcr.io"));
    }

    #[test]
    fn a_store_that_would_not_list_its_hosts_is_noted() {
        let finding = judge(&production(), Some(&read(&[], Some("osxkeychain"))));
        assert_eq!(finding.status, Status::Ok);
        assert_eq!(
            finding.summary,
            "none for the 2 production registries in /home/dev/.docker/config.json (credential store osxkeychain not readable)"
        );
    }
}
