//! The formatting of error chains, and how an error picks the exit code.

use super::*;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Wrapped {
    message: String,
    #[source]
    source: Option<Box<Wrapped>>,
}

fn wrapped(messages: &[&str]) -> Wrapped {
    messages
        .iter()
        .rev()
        .fold(None, |source, message| Some(Wrapped { message: message.to_string(), source: source.map(Box::new) }))
        .expect("at least one message")
}

#[test]
fn a_chain_says_each_cause_once_outermost_first() {
    assert_eq!(
        chain(&wrapped(&["error sending request", "connect", "Connection refused"])),
        "error sending request: connect: Connection refused"
    );
    // A wrapper that repeats its source's words does not make them appear twice.
    assert_eq!(chain(&wrapped(&["dispatch failure: io error", "io error"])), "dispatch failure: io error");
    assert_eq!(chain(&wrapped(&["alone"])), "alone");
}

#[test]
fn anyhow_errors_are_chained_the_same_way() {
    let err = anyhow::Error::new(wrapped(&["inner"])).context("outer");
    assert_eq!(chain(&*err), "outer: inner");
    assert_eq!(causes(err.as_ref()), ["outer", "inner"]);
}

#[test]
fn exit_codes_come_from_the_first_expected_error_in_the_chain() {
    let err = anyhow::Error::new(Error::NoReleaseFeed).context("checking for a new release");
    assert_eq!(exit_status_of(&err), ExitStatus::Usage);
    assert_eq!(exit_status_of(&anyhow::anyhow!("something else")), ExitStatus::Failure);
}

#[test]
fn fleet_denials_fail_with_the_policy_that_would_allow_them() {
    let read = Error::FleetReadDenied {
        reason: "S3 refused s3:ListBucket on arn:aws:s3:::team (HTTP 403)".into(),
        bucket: "arn:aws:s3:::team".into(),
        prefix: "devbox/fleet/".into(),
        objects: "arn:aws:s3:::team/devbox/fleet/".into(),
        profile: "dev".into(),
    };
    assert_eq!(read.exit_status(), ExitStatus::Failure);
    assert_eq!(
        read.to_string(),
        "cannot read the fleet reports: S3 refused s3:ListBucket on arn:aws:s3:::team (HTTP 403)"
    );
    let hint = read.hint().unwrap_or_default();
    assert!(
        hint.contains("s3:ListBucket on arn:aws:s3:::team (for the prefix devbox/fleet/)")
            && hint.contains("s3:GetObject on arn:aws:s3:::team/devbox/fleet/*"),
        "{hint}"
    );
    let send = Error::FleetSendDenied {
        reason: "S3 refused s3:PutObject".into(),
        folders: "arn:aws:s3:::team/devbox/fleet/machines/".into(),
        profile: "dev".into(),
    };
    assert_eq!(send.exit_status(), ExitStatus::Failure);
    assert!(
        send.hint()
            .unwrap_or_default()
            .contains("Allow s3:PutObject on arn:aws:s3:::team/devbox/fleet/machines/${aws:userid}/*")
    );
    let page =
        Error::FleetWrite { what: "fleet page", path: "/nowhere/fleet.html".into(), reason: "No such file".into() };
    assert_eq!(page.to_string(), "cannot write the fleet page to /nowhere/fleet.html: No such file");
    assert!(page.hint().unwrap_or_default().contains("--html"));
    let report =
        Error::FleetWrite { what: "fleet report", path: "/state/fleet-report.json".into(), reason: "full".into() };
    assert!(report.hint().unwrap_or_default().contains("/state is writable"));
}

#[test]
fn the_io_error_kind_is_found_among_the_causes() {
    #[derive(Debug, thiserror::Error)]
    #[error("connect")]
    struct Connect(#[source] std::io::Error);
    let denied = Connect(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    assert_eq!(io_kind(&denied), Some(std::io::ErrorKind::PermissionDenied));
    assert_eq!(io_kind(&wrapped(&["no I/O error here"])), None);
}

#[test]
fn a_socket_this_user_may_not_open_gets_the_group_fix_not_start_docker() {
    let attempt =
        |denied| Attempt { place: "unix:///var/run/docker.sock (default)".into(), outcome: "…".into(), denied };
    let denied = Error::EngineUnreachable { tried: vec![attempt(false), attempt(true)] };
    assert!(denied.hint().unwrap_or_default().contains("sudo usermod -aG docker $USER"), "{:?}", denied.hint());
    let down = Error::EngineUnreachable { tried: vec![attempt(false)] };
    assert!(down.hint().unwrap_or_default().starts_with("Start Docker"), "{:?}", down.hint());
}
