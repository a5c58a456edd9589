use base64::Engine as _;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::Signer;

use super::*;
use crate::config::keys::tests::{public_pem, signing_key};
use crate::config::keys::{TrustedKeys, parse_pem};

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn trusted(seeds: &[u8]) -> TrustedKeys {
    TrustedKeys(seeds.iter().map(|s| parse_pem(&public_pem(&signing_key(*s))).expect("key")).collect())
}

/// A payload as skopeo writes it (the tag kept in the reference, as containers/image does).
fn payload_json(digest: &str, reference: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":{{"creator":"containers/image"}}}}"#
    )
    .into_bytes()
}

fn signed(key: &SigningKey, bytes: &[u8]) -> Candidate {
    let signature: p256::ecdsa::Signature = key.sign(bytes);
    let signature = signature.to_der();
    Candidate {
        digest: format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
        size: bytes.len() as u64,
        signature: base64::engine::general_purpose::STANDARD.encode(signature.as_bytes()),
    }
}

fn judged(keys: &TrustedKeys, key: &SigningKey, bytes: &[u8]) -> Result<String, BadSignature> {
    payload(keys, &signed(key, bytes), bytes, DIGEST, "base/python")
}

#[test]
fn a_payload_signed_by_a_trusted_key_for_this_digest_and_repository_verifies() {
    let keys = trusted(&[3, 7]);
    let bytes = payload_json(DIGEST, "127.0.0.1:41234/base/python:3.12");
    assert_eq!(judged(&keys, &signing_key(7), &bytes), Ok(keys.0[1].fingerprint.clone()));
    // cosign names the repository without a tag.
    let bytes = payload_json(DIGEST, "123456789012.dkr.ecr.us-east-1.amazonaws.com/base/python");
    assert_eq!(judged(&keys, &signing_key(3), &bytes), Ok(keys.0[0].fingerprint.clone()));
}

#[test]
fn another_key_another_digest_or_another_repository_is_refused() {
    let keys = trusted(&[3]);
    let good = payload_json(DIGEST, "ci.example:5000/base/python:3.12");
    assert_eq!(judged(&keys, &signing_key(9), &good), Err(BadSignature::UnknownKey));
    let other_digest = payload_json(OTHER, "ci.example:5000/base/python:3.12");
    assert_eq!(judged(&keys, &signing_key(3), &other_digest), Err(BadSignature::OtherDigest(OTHER.into())));
    let other_repo = payload_json(DIGEST, "ci.example:5000/base/python-evil:3.12");
    assert_eq!(
        judged(&keys, &signing_key(3), &other_repo),
        Err(BadSignature::OtherRepository("ci.example:5000/base/python-evil:3.12".into()))
    );
    // Bytes changed after signing: the signature no longer covers them.
    let mut candidate = signed(&signing_key(3), &good);
    let tampered = payload_json(DIGEST, "ci.example:5000/base/python:3.13");
    candidate.digest = format!("sha256:{}", hex::encode(Sha256::digest(&tampered)));
    assert_eq!(payload(&keys, &candidate, &tampered, DIGEST, "base/python"), Err(BadSignature::UnknownKey));
    // Bytes that are not the layer the manifest names.
    let candidate = signed(&signing_key(3), &good);
    assert!(matches!(
        payload(&keys, &candidate, &tampered, DIGEST, "base/python"),
        Err(BadSignature::PayloadDigest(_))
    ));
}

#[test]
fn a_signed_payload_that_is_not_simple_signing_is_refused() {
    let keys = trusted(&[3]);
    assert!(matches!(judged(&keys, &signing_key(3), b"not json"), Err(BadSignature::Payload(_))));
    let wrong_type = String::from_utf8(payload_json(DIGEST, "x/base/python"))
        .expect("utf-8")
        .replace("cosign container image signature", "atomic container signature");
    assert!(matches!(judged(&keys, &signing_key(3), wrong_type.as_bytes()), Err(BadSignature::Payload(_))));
    let mut candidate = signed(&signing_key(3), b"{}");
    candidate.signature = "not base64!".into();
    assert_eq!(payload(&keys, &candidate, b"{}", DIGEST, "base/python"), Err(BadSignature::UnknownKey));
}

fn manifest(media_type: &str, body: &str) -> ManifestBody {
    ManifestBody { media_type: media_type.into(), bytes: body.as_bytes().to_vec() }
}

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn the_artifact_manifest_yields_its_signed_payload_layers() {
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2}},
        "layers":[{{"mediaType":"{SIMPLE_SIGNING}","digest":"sha256:bb","size":300,"annotations":{{"{SIGNATURE_ANNOTATION}":"MEUC"}}}},
                  {{"mediaType":"{SIMPLE_SIGNING}","digest":"sha256:cc","size":300}},
                  {{"mediaType":"application/octet-stream","digest":"sha256:dd","size":3,"annotations":{{"{SIGNATURE_ANNOTATION}":"x"}}}}]}}"#
    );
    let found = artifact(&manifest(OCI, &body)).expect("an artifact");
    assert_eq!(found, vec![Candidate { digest: "sha256:bb".into(), size: 300, signature: "MEUC".into() }]);
    assert_eq!(artifact(&manifest("", &body)).map(|c| c.len()), Ok(1), "no Content-Type: the body decides");
}

#[test]
fn a_corrupt_artifact_says_what_is_wrong() {
    assert!(matches!(artifact(&manifest(OCI, "not json")), Err(BadSignature::NotAManifest(_))));
    assert_eq!(
        artifact(&manifest("application/vnd.oci.image.index.v1+json", "{}")),
        Err(BadSignature::ManifestType("application/vnd.oci.image.index.v1+json".into()))
    );
    let wrong_layer = r#"{"schemaVersion":2,"layers":[{"mediaType":"text/plain","digest":"sha256:bb","size":3}]}"#;
    assert_eq!(artifact(&manifest(OCI, wrong_layer)), Err(BadSignature::NoPayload("text/plain".into())));
    assert_eq!(artifact(&manifest(OCI, r#"{"layers":[]}"#)), Err(BadSignature::NoPayload("none".into())));
}

#[test]
fn the_verdict_is_the_first_good_signature_or_the_reason_that_says_most() {
    assert_eq!(best(vec![]), Signature::Unsigned);
    assert_eq!(
        best(vec![Err(BadSignature::UnknownKey), Ok("sha256:k".into())]),
        Signature::Verified { signed_by: "sha256:k".into() }
    );
    assert_eq!(
        best(vec![
            Err(BadSignature::TooLarge { limit: 1 }),
            Err(BadSignature::OtherDigest(OTHER.into())),
            Err(BadSignature::UnknownKey)
        ]),
        Signature::Bad { problem: BadSignature::OtherDigest(OTHER.into()) }
    );
}

#[test]
fn repositories_compare_without_host_tag_or_digest() {
    assert_eq!(repository_path("127.0.0.1:5000/base/python:3.12"), "base/python");
    assert_eq!(repository_path("ci.acme.dev/base/python"), "base/python");
    assert_eq!(repository_path("localhost/base/python@sha256:abc"), "base/python");
    assert_eq!(repository_path("base/python:3.12"), "base/python");
    assert_eq!(repository_path("python"), "python");
}

#[test]
fn the_gate_follows_the_mode() {
    let verified = Signature::Verified { signed_by: "k".into() };
    let unsigned = Signature::Unsigned;
    assert_eq!(gate(VerifyMode::Off, None), Gate::Tag);
    assert_eq!(gate(VerifyMode::Require, Some(&verified)), Gate::Tag);
    assert_eq!(gate(VerifyMode::Warn, Some(&verified)), Gate::Tag);
    assert_eq!(gate(VerifyMode::Warn, Some(&unsigned)), Gate::TagWithWarning);
    assert_eq!(gate(VerifyMode::Require, Some(&unsigned)), Gate::Refuse);
    assert_eq!(gate(VerifyMode::Require, None), Gate::Refuse);
}

#[test]
fn signature_tags_and_words() {
    assert_eq!(signature_tag(DIGEST), Some(format!("sha256-{}.sig", "1".repeat(64))));
    assert_eq!(signature_tag("sha512:abc"), None);
    assert_eq!(signature_tag("sha256:zz"), None);
    assert_eq!(Signature::Unsigned.word(), "unsigned");
    let json = serde_json::to_value(Signature::Bad { problem: BadSignature::UnknownKey }).expect("json");
    assert_eq!(json["signature"], "bad_signature");
    assert_eq!(json["signature_problem"], "signed by no trusted key (images.public_keys)");
    let json = serde_json::to_value(Signature::Verified { signed_by: "sha256:k".into() }).expect("json");
    assert_eq!((json["signature"].as_str(), json["signed_by"].as_str()), (Some("verified"), Some("sha256:k")));
}
