//! The installed team config's header: its first lines, comments that say where it came from, how
//! it was trusted and the team's recorded signing keys, so `config show` can name them and nothing
//! else has to be kept in step with the file.

use crate::init::trust::Trust;

const HEADER_PREFIX: &str = "# devbox: team config from ";
/// Every header line starts so; a team's own text never keeps such lines.
const HEADER_MARK: &str = "# devbox: ";
const TRUST_PREFIX: &str = "# devbox: trusted: ";
const KEY_PREFIX: &str = "# devbox: team key ";
const HEADER_NOTE: &str =
    "# Installed by `devbox init --from`; change it at its source, then run `devbox init --from` again.\n";
/// The file as installed: the source line, how it was trusted, the team's recorded keys, a note,
/// then the team's text (without any header lines it carried: re-publishing an installed file
/// does not stack them, and a team's text cannot record a key of its own).
pub fn with_header(source: &str, trust: &Trust, keys: &[String], text: &str) -> String {
    let keys: String = keys.iter().map(|k| format!("{KEY_PREFIX}{k}\n")).collect();
    format!("{HEADER_PREFIX}{source}\n{TRUST_PREFIX}{trust}\n{keys}{HEADER_NOTE}{}", strip_header(text))
}

/// The source recorded in an installed file's first line, if it has one.
pub fn recorded_source(text: &str) -> Option<&str> {
    text.lines().next()?.strip_prefix(HEADER_PREFIX).map(str::trim)
}

/// The header's lines: the leading lines devbox wrote.
fn header_lines(text: &str) -> impl Iterator<Item = &str> {
    let installed = recorded_source(text).is_some();
    text.lines().take_while(move |l| installed && l.starts_with(HEADER_MARK))
}

/// How an installed team config was trusted, as its header says.
pub fn recorded_trust(text: &str) -> Option<Trust> {
    header_lines(text).find_map(|l| l.strip_prefix(TRUST_PREFIX)).and_then(|t| Trust::parse(t.trim()))
}

/// The team's signing keys recorded in an installed file's header.
pub fn recorded_keys(text: &str) -> Vec<String> {
    header_lines(text).filter_map(|l| l.strip_prefix(KEY_PREFIX)).map(|k| k.trim().to_string()).collect()
}

/// An installed file's whole header (source, trust, keys and the note), to keep when the file is
/// written again; empty when it has none.
pub fn header_of(text: &str) -> &str {
    if recorded_source(text).is_none() {
        return "";
    }
    &text[..text.len() - strip_header(text).len()]
}

fn strip_header(text: &str) -> &str {
    let mut rest = text;
    while rest.starts_with(HEADER_MARK) {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest.strip_prefix(HEADER_NOTE).unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_never_stacks() {
        let keys = vec!["RWQkey1".to_string()];
        let installed =
            with_header("s3://acme/devbox.toml", &Trust::Signed("RWQkey1".into()), &keys, "[images]\nbase = []\n");
        assert_eq!(recorded_source(&installed), Some("s3://acme/devbox.toml"));
        assert_eq!(recorded_trust(&installed), Some(Trust::Signed("RWQkey1".into())));
        assert_eq!(recorded_keys(&installed), keys);
        assert!(installed.ends_with(&format!("{HEADER_NOTE}[images]\nbase = []\n")), "{installed}");
        let again = with_header("https://example.com/devbox.toml", &Trust::Accepted, &[], &installed);
        assert_eq!(again.matches(HEADER_PREFIX).count(), 1, "{again}");
        assert_eq!(recorded_source(&again), Some("https://example.com/devbox.toml"));
        assert_eq!(recorded_keys(&again), Vec::<String>::new(), "a team's text cannot carry keys: {again}");
        assert_eq!(recorded_source("[registry]\n"), None);
        assert_eq!(recorded_keys("# devbox: team key RWQx\n[registry]\n"), Vec::<String>::new());
    }
}
