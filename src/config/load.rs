//! Finding the config file, laying it over the embedded defaults, and turning every mistake in it
//! into an error that names the file, line, column and key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_path_to_error::Segment;
use toml::de::{DeTable, DeValue};

use super::{Config, DEFAULTS};
use crate::error::{ConfigError, Location};

/// Where the effective config came from, as `config show` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConfigSource {
    /// `--config PATH`
    Flag { path: PathBuf },
    /// `DEVBOX_CONFIG`
    Env { path: PathBuf },
    /// The user's config directory.
    UserFile { path: PathBuf },
    /// No file yet: the defaults embedded in devbox.
    Defaults { would_be: PathBuf },
}

impl ConfigSource {
    /// The file that holds (or would hold) the config.
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::Flag { path } | ConfigSource::Env { path } | ConfigSource::UserFile { path } => path,
            ConfigSource::Defaults { would_be } => would_be,
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Flag { path } => write!(f, "{} (from --config)", path.display()),
            ConfigSource::Env { path } => write!(f, "{} (from DEVBOX_CONFIG)", path.display()),
            ConfigSource::UserFile { path } => write!(f, "{}", path.display()),
            ConfigSource::Defaults { would_be } => {
                write!(f, "built-in defaults ({} does not exist yet)", would_be.display())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub source: ConfigSource,
}

/// The config in the words it was written in: the user's file laid over the defaults, each value
/// as the file (or the defaults) gave it, "512MiB" and "24h" rather than 536870912 bytes and a
/// `Duration` (whose own formats would say "536.9MB" and "1day"). It serializes with the keys in
/// the defaults' order: that is what `config show` prints, and loading it again gives the same
/// config.
#[derive(Debug, Clone)]
pub struct Written {
    /// The validated config these words parse to.
    pub config: Config,
    table: toml::Table,
}

/// Loads the config named by `source`. A file named explicitly must exist; the user's default file
/// may be absent, and then the embedded defaults apply.
pub fn load(source: ConfigSource) -> Result<LoadedConfig, ConfigError> {
    load_written(source).map(|(loaded, _)| loaded)
}

/// `load`, with the config as it was written (see `Written`).
pub fn load_written(source: ConfigSource) -> Result<(LoadedConfig, Written), ConfigError> {
    let written = match &source {
        ConfigSource::Defaults { .. } => parse_written(DEFAULTS, Path::new("<built-in defaults>"))?,
        ConfigSource::Flag { path } | ConfigSource::Env { path } | ConfigSource::UserFile { path } => {
            let text = std::fs::read_to_string(path)
                .map_err(|err| ConfigError::Read { source_desc: source.to_string(), err })?;
            parse_written(&text, path)?
        }
    };
    Ok((LoadedConfig { config: written.config.clone(), source }, written))
}

/// The built-in defaults (`templates/devbox.toml`, embedded), as a config: what applies when there
/// is no file. The one place they are parsed into a `Config`; a unit test holds that they do parse.
pub fn defaults() -> Result<Config, ConfigError> {
    parse_str(DEFAULTS, Path::new("<built-in defaults>"))
}

/// Parses `text` (the contents of `path`) over the embedded defaults, then validates it.
pub(crate) fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_written(text, path).map(|written| written.config)
}

/// `parse_str`, keeping the merged text beside the config.
fn parse_written(text: &str, path: &Path) -> Result<Written, ConfigError> {
    let at = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| ConfigError::Invalid {
        location: Location { path: path.to_path_buf(), line_col: span.map(|s| line_col(text, s.start)) },
        key,
        message,
    };

    let user: toml::Table = toml::from_str(text).map_err(|e| at(e.span(), None, e.message().to_string()))?;
    // The built-in defaults are tested to parse; should they not, say so rather than panic.
    let mut merged: toml::Table = toml::from_str(DEFAULTS)
        .map_err(|e| at(None, None, format!("devbox's built-in defaults do not parse: {}", e.message())))?;
    merge(&mut merged, user);

    let config: Config = serde_path_to_error::deserialize(toml::Value::Table(merged.clone())).map_err(|e| {
        let segments = key_segments(e.path());
        let message = e.inner().message().to_string();
        // An unknown key is best shown by the key itself; any other mistake by its value.
        let span = find_span(text, &segments, message.starts_with("unknown field"));
        at(span, Some(segments.join(".")), message)
    })?;

    config.validate().map_err(|invalid| {
        let segments: Vec<String> = invalid.key.split('.').map(String::from).collect();
        at(find_span(text, &segments, false), Some(invalid.key.to_string()), invalid.message)
    })?;
    Ok(Written { config, table: merged })
}

impl Serialize for Written {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let order = DeTable::parse(DEFAULTS).map_err(serde::ser::Error::custom)?;
        InOrder { table: &self.table, order: Some(order.get_ref()) }.serialize(serializer)
    }
}

/// A table whose keys serialize in the order `order` (the defaults' text) has them; a key it does
/// not have goes last.
struct InOrder<'a, 'i> {
    table: &'a toml::Table,
    order: Option<&'a DeTable<'i>>,
}

impl Serialize for InOrder<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let in_order = |key: &str| self.order?.iter().find(|(name, _)| name.get_ref().as_ref() == key);
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(key, _)| in_order(key).map_or(usize::MAX, |(name, _)| name.span().start));
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in entries {
            match value {
                toml::Value::Table(table) => {
                    let order = in_order(key).and_then(|(_, value)| match value.get_ref() {
                        DeValue::Table(inner) => Some(inner),
                        _ => None,
                    });
                    map.serialize_entry(key, &InOrder { table, order })?;
                }
                value => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// Lays `over` onto `base`, table by table; `over` wins for every key it sets.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(over_table)) => merge(base_table, over_table),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn key_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    path.iter()
        .filter_map(|segment| match segment {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { .. } | Segment::Unknown => None,
        })
        .collect()
}

/// The span of the value (or the key) at `segments` in the user's file, or of the deepest table on
/// the way there.
fn find_span(text: &str, segments: &[String], key: bool) -> Option<std::ops::Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut best = None;
    for (i, segment) in segments.iter().enumerate() {
        let (name, value) = table.iter().find(|(name, _)| name.get_ref().as_ref() == segment.as_str())?;
        let last = i + 1 == segments.len();
        best = Some(if last && !key { value.span() } else { name.span() });
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            DeValue::Array(items) => {
                let index: usize = segments.get(i + 1)?.parse().ok()?;
                return items.get(index).map(|item| item.span()).or(best);
            }
            _ => break,
        }
    }
    best
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_str(text, Path::new("devbox.toml")).expect_err("must fail").to_string()
    }

    #[test]
    fn a_user_file_overrides_only_what_it_sets() {
        let config = parse_str("[registry]\nport = 5050\n", Path::new("devbox.toml")).expect("valid");
        assert_eq!(config.registry.port, 5050);
        assert!(config.registry.image.starts_with("registry:3.0.0@sha256:"), "pinned by digest");
        assert_eq!(config.clock.max_skew, std::time::Duration::from_secs(2));
    }

    #[test]
    fn malformed_toml_names_line_and_column() {
        assert_eq!(
            error("[registry]\nport = \n"),
            "devbox.toml:2:8: string values must be quoted, expected literal string"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_where_it_is() {
        let err = error("[registry]\nport = 5000\ncolour = \"blue\"\n");
        assert!(err.starts_with("devbox.toml:3:1: registry.colour: unknown field `colour`"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let err = error("[registry]\nport = \"five\"\n");
        assert!(err.starts_with("devbox.toml:2:8: registry.port: invalid type: string \"five\""), "{err}");
    }

    #[test]
    fn bad_durations_name_the_key() {
        let err = error("[cleanup]\nolder_than = \"-1h\"\n");
        assert!(err.starts_with("devbox.toml:2:14: cleanup.older_than: "), "{err}");
        let err = error("[clock]\nmax_skew = \"soon\"\n");
        assert!(err.starts_with("devbox.toml:2:12: clock.max_skew: "), "{err}");
    }

    #[test]
    fn invalid_bucket_names_name_the_key() {
        let err = error("[registry.s3]\nbucket = \"Acme_Registry\"\n");
        assert!(
            err.starts_with("devbox.toml:2:10: registry.s3.bucket: \"Acme_Registry\" is not a valid S3 bucket name"),
            "{err}"
        );
    }

    #[test]
    fn s3_storage_without_a_bucket_names_the_key() {
        let err = error("[registry]\nstorage = \"s3\"\n");
        assert!(
            err.starts_with("devbox.toml:2:11: registry.storage: is \"s3\" but registry.s3.bucket is empty"),
            "{err}"
        );
    }

    #[test]
    fn errors_in_arrays_point_at_the_item() {
        let err = error("[cleanup]\nkeep_labels = [\"ok\", \"=x\"]\n");
        assert!(err.starts_with("devbox.toml:2:22: cleanup.keep_labels.1: "), "{err}");
    }

    /// What `config show` prints: each value as written, the defaults' own words where the file
    /// says nothing, in the defaults' order; read back, it is the same config.
    #[test]
    fn config_show_prints_values_as_written_and_reads_back_the_same() {
        let show = |text: &str| {
            let written = parse_written(text, Path::new("devbox.toml")).expect("valid");
            let shown = toml::to_string_pretty(&written).expect("serializes");
            let again = parse_written(&shown, Path::new("shown.toml")).expect("config show's output loads");
            assert_eq!(again.config, written.config, "config show's output is another config:\n{shown}");
            assert_eq!(toml::to_string_pretty(&again).expect("serializes"), shown, "shown twice, it changes");
            shown
        };
        let has = |shown: &str, line: &str| assert!(shown.lines().any(|l| l == line), "no `{line}` in:\n{shown}");

        let defaults = show("");
        for line in [
            "memory = \"512MiB\"",
            "older_than = \"24h\"",
            "stale_after = \"3d\"",
            "session_duration = \"12h\"",
            "max_skew = \"2s\"",
            "refresh = \"weekly\"",
            "max_disk = \"\"",
        ] {
            has(&defaults, line);
        }
        // The sections in the defaults' own order.
        let sections = |text: &str| text.lines().filter(|l| l.starts_with('[')).map(String::from).collect::<Vec<_>>();
        assert_eq!(sections(&defaults), sections(DEFAULTS));
        assert_eq!(sections(&defaults)[..2], ["[registry]", "[registry.s3]"]);

        let mine = show(
            "[registry]\nmemory = \"1.5 GiB\"\n[cleanup]\nolder_than = \"90m\"\nmax_disk = \"40GB\"\nschedule = \"12h\"\n\
             [fleet]\nstale_after = \"1week\"\n[clock]\ninterval = \"600s\"\n",
        );
        for line in [
            "memory = \"1.5 GiB\"",
            "older_than = \"90m\"",
            "max_disk = \"40GB\"",
            "schedule = \"12h\"",
            "stale_after = \"1week\"",
            "interval = \"600s\"",
            "max_skew = \"2s\"",
        ] {
            has(&mine, line);
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé=", 6), (2, 3));
    }
}
