//! Docs that describe the code are checked here, or they drift: ARCHITECTURE.md names every file
//! under `src/` (and every path it names exists), the README and CONTRIBUTING.md show the test
//! command `.ci/run` runs, word for word, and the links between the docs lead somewhere.
//! These read files only: no testbed needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

/// Every file under `dir`, as paths relative to `base`, with `/` between parts.
fn files_under(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files_under(base, &path, out);
        } else {
            let relative = path.strip_prefix(base).expect("under base");
            out.push(relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
        }
    }
}

/// The path-like words of a text (`clock/setter.rs`, `src/init/`, `tests/it/docs.rs`), with a
/// leading `src/` taken off, so both spellings name the same file.
fn path_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "_./-*".contains(c)))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| word.contains('/') || word.ends_with(".rs"))
        .map(|word| word.strip_prefix("src/").unwrap_or(word).to_string())
        .collect()
}

#[test]
fn architecture_names_every_file_under_src() {
    let words = path_words(&read("ARCHITECTURE.md"));
    let src = root().join("src");
    let mut files = Vec::new();
    files_under(&src, &src, &mut files);
    files.sort();
    // A file is named by its path under src/; insta's snapshots by their directory (`registry/snapshots/`).
    let unnamed: Vec<&String> = files
        .iter()
        .filter(|file| {
            let dir = file.rsplit_once('/').map(|(dir, _)| format!("{dir}/"));
            let snapshot = dir.as_deref().is_some_and(|d| d.ends_with("snapshots/") && words.contains(d));
            !words.contains(file.as_str()) && !snapshot
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "ARCHITECTURE.md does not name these files under src/ (name each by its path under src/, \
         e.g. `clock/setter.rs`, where its behaviour lives):\n  {}",
        unnamed.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn every_path_architecture_names_exists() {
    let words = path_words(&read("ARCHITECTURE.md"));
    let missing: Vec<&String> = words
        .iter()
        // Files and directories: `clock/setter.rs`, `templates/schedule/` (not `up/down/status`).
        .filter(|word| word.ends_with(".rs") || word.ends_with('/'))
        .filter(|word| word.starts_with(|c: char| c.is_ascii_alphanumeric()) && !word.contains('*'))
        .filter(|word| {
            // A path is under src/ unless it starts at the repository's root (tests/, templates/, …).
            let top = ["tests/", "templates/", "bench/", "docs/", ".ci/"];
            let path = if top.iter().any(|t| word.starts_with(t)) {
                root().join(word.as_str())
            } else {
                root().join("src").join(word.as_str())
            };
            !path.exists()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist (renamed or removed? paths are under src/ \
         unless they start with tests/, templates/, bench/, docs/ or .ci/):\n  {}",
        missing.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n  ")
    );
}

/// The command `.ci/run` runs after "== the README's test command": its one line of shell.
fn ci_test_command() -> String {
    let ci = read(".ci/run");
    let lines: Vec<&str> = ci.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("== the README's test command"))
        .expect(".ci/run echoes \"== the README's test command\" before running it");
    let commands: Vec<&str> =
        lines[start + 1..].iter().map(|l| l.trim()).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(commands.len(), 1, ".ci/run runs one command line after its heading, found: {commands:?}");
    commands[0].to_string()
}

/// The lines of each fenced ```sh block in `text`.
fn sh_blocks(text: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => block.push(line.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_and_contributing_show_the_test_command_ci_runs_word_for_word() {
    let command = ci_test_command();
    assert!(command.starts_with("sh tests/testbed/up.sh && "), "the test command starts the testbed: {command}");
    for doc in ["README.md", "CONTRIBUTING.md"] {
        let blocks = sh_blocks(&read(doc));
        assert!(
            blocks.iter().any(|block| block.len() == 1 && block[0] == command),
            "{doc} has no ```sh block holding exactly the test command .ci/run runs:\n  {command}\n\
             Its sh blocks: {blocks:#?}"
        );
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix('#')).map(|l| anchor(l.trim_start_matches('#'))).collect()
}

#[test]
fn links_between_the_docs_lead_somewhere() {
    let mut docs: Vec<String> = vec!["README.md".into(), "CONTRIBUTING.md".into(), "ARCHITECTURE.md".into()];
    let mut under_docs = Vec::new();
    files_under(root(), &root().join("docs"), &mut under_docs);
    docs.extend(under_docs.into_iter().filter(|f| f.ends_with(".md")));
    let mut broken = Vec::new();
    for doc in &docs {
        let text = read(doc);
        let dir: PathBuf = Path::new(doc).parent().map(Path::to_path_buf).unwrap_or_default();
        for (_, rest) in text.match_indices("](").map(|(i, _)| text.split_at(i + 2)) {
            let Some(target) = rest.split(')').next() else { continue };
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let file_text = if file.is_empty() {
                Some(text.clone())
            } else {
                std::fs::read_to_string(root().join(&dir).join(file))
                    .ok()
                    .or_else(|| root().join(&dir).join(file).is_dir().then(String::new))
            };
            match file_text {
                None => broken.push(format!("{doc}: ({target}): no such file")),
                Some(linked) if !fragment.is_empty() && !anchors(&linked).contains(fragment) => {
                    broken.push(format!("{doc}: ({target}): no heading with that anchor"))
                }
                Some(_) => {}
            }
        }
    }
    assert!(broken.is_empty(), "links that lead nowhere:\n  {}", broken.join("\n  "));
}

#[test]
fn the_path_words_of_a_text_are_its_paths() {
    let words = path_words("`clock/setter.rs` (`src/disk.rs`), see tests/it/docs.rs. Not: a/b is fine");
    assert!(words.contains("clock/setter.rs") && words.contains("disk.rs") && words.contains("tests/it/docs.rs"));
    assert_eq!(anchor("Base images: `devbox pull`"), "base-images-devbox-pull");
    assert_eq!(anchor("Short-lived credentials"), "short-lived-credentials");
}

/// A source file as the checks below read it: comments and everything from `#[cfg(test)]` on left
/// out (tests may reach anywhere), with its path under `src/`.
struct Source {
    path: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = root().join("src");
    let mut files = Vec::new();
    files_under(&src, &src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|path| path.ends_with(".rs") && !path.ends_with("/tests.rs") && !path.ends_with("_tests.rs"))
        .map(|path| {
            let text = read(&format!("src/{path}"));
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code =
                text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
            Source { path, code }
        })
        .collect()
}

/// The top-level module a file under `src/` belongs to: `registry/converge.rs` → `registry`.
fn top_module(path: &str) -> &str {
    path.split('/').next().unwrap_or(path).trim_end_matches(".rs")
}

/// The top-level modules a file's code names through `crate::` (`use crate::{a, b::c}` included).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of each path in the group, at the group's own depth.
            let (mut depth, mut segment, mut start) = (0, String::new(), true);
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphanumeric() || c == '_') => segment.push(c),
                    _ if start && !segment.is_empty() => {
                        names.insert(std::mem::take(&mut segment));
                        start = false;
                    }
                    _ => {}
                }
            }
            names.extend(Some(segment).filter(|s| !s.is_empty()));
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            names.extend(Some(name).filter(|s| !s.is_empty()));
        }
    }
    names
}

/// ARCHITECTURE.md's layers, lowest first: each row of its "## Layers" table names its modules.
fn layers() -> Vec<Vec<String>> {
    let architecture = read("ARCHITECTURE.md");
    let section = architecture.split("\n## Layers").nth(1).expect("ARCHITECTURE.md has a \"## Layers\" section");
    let section = section.split("\n## ").next().unwrap_or_default();
    section
        .lines()
        .filter(|line| line.starts_with("| ") && line.chars().nth(2).is_some_and(|c| c.is_ascii_digit()))
        .map(|row| {
            let modules = row.split('|').nth(2).unwrap_or_default();
            modules.split('`').skip(1).step_by(2).map(String::from).collect()
        })
        .collect()
}

/// Whether `graph` has a cycle; the first one found, as a path.
fn a_cycle(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_from_a_layer_above_its_own_nor_round_a_cycle() {
    let layers = layers();
    let layer_of = |module: &str| layers.iter().position(|layer| layer.iter().any(|m| m == module));
    let sources = sources();
    let modules: BTreeSet<&str> = sources.iter().map(|s| top_module(&s.path)).filter(|m| *m != "main").collect();
    let unplaced: Vec<&&str> = modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(unplaced.is_empty(), "ARCHITECTURE.md's \"## Layers\" table does not place these modules: {unplaced:?}");
    let mut graph: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut upward = Vec::new();
    for source in &sources {
        let from = top_module(&source.path);
        if from == "main" {
            continue;
        }
        for to in crate_imports(&source.code) {
            let Some(to_layer) = layer_of(&to) else { continue };
            if to != from {
                graph.entry(from.to_string()).or_default().insert(to.clone());
            }
            if layer_of(from).is_some_and(|own| to_layer > own) {
                upward.push(format!("{} imports crate::{to}, a layer above its own", source.path));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up a layer (ARCHITECTURE.md, \"## Layers\"):\n  {}",
        upward.join("\n  ")
    );
    assert_eq!(a_cycle(&graph), None, "the modules import each other round a cycle");
    // Within a module, its files (not the `mod.rs` that declares them) do not import round a cycle.
    let mut siblings: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for source in &sources {
        let Some((dir, file)) = source.path.rsplit_once('/') else { continue };
        let file = file.trim_end_matches(".rs");
        if file == "mod" {
            continue;
        }
        let own = format!("crate::{}::", dir.replace('/', "::"));
        for other in sources.iter().filter_map(|s| s.path.strip_prefix(&format!("{dir}/"))) {
            let other = other.trim_end_matches(".rs");
            if other == file || other == "mod" || other.contains('/') {
                continue;
            }
            let named = [format!("super::{other}"), format!("{own}{other}")]
                .iter()
                .any(|path| source.code.contains(&format!("{path}::")) || source.code.contains(&format!("{path};")))
                || ["super::{".to_string(), format!("{own}{{")].iter().any(|group| {
                    source.code.match_indices(group.as_str()).any(|(at, _)| {
                        let inside = &source.code[at + group.len()..];
                        let inside = inside.split('}').next().unwrap_or_default();
                        inside.split(',').any(|item| item.trim().split("::").next() == Some(other))
                    })
                });
            if named {
                siblings.entry(format!("{dir}/{file}")).or_default().insert(format!("{dir}/{other}"));
            }
        }
    }
    assert_eq!(a_cycle(&siblings), None, "files of one module import each other round a cycle");
}

#[test]
fn the_import_checks_read_paths_as_rust_does() {
    let code = "use crate::{config::{self, Config}, engine::Engine, ui};\nlet x = crate::http::loopback();";
    let found: Vec<String> = crate_imports(code).into_iter().collect();
    assert_eq!(found, ["config", "engine", "http", "ui"]);
    let graph = |edges: &[(&str, &str)]| {
        let mut g: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert_eq!(a_cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(a_cycle(&graph(&[("a", "b"), ("b", "a")])), Some(vec!["a".into(), "b".into(), "a".into()]));
}

/// Each outside system's crates and the files that may import them (ARCHITECTURE.md, "## Outside
/// systems": `dir/` is every file under it). A crate is named as Rust names it (`aws_sdk_s3`).
const HOMES: &[(&str, &[&str])] = &[
    ("bollard", &["engine/"]),
    ("aws_config", &["aws.rs", "aws/"]),
    // http.rs builds the SDK's HTTP client, and names its type.
    ("aws_sdk_s3", &["aws.rs", "aws/", "http.rs"]),
    ("aws_sdk_sts", &["aws.rs", "aws/"]),
    // Clients are built only in http.rs (clippy.toml); the registry's API and S3's `Date` use them.
    ("reqwest", &["http.rs", "http/", "registry/api.rs", "clock/measure.rs"]),
    ("aws_smithy_http_client", &["http.rs"]),
    ("rustls", &["http.rs"]),
    ("tokio_rustls", &["http.rs"]),
    ("webpki_roots", &["http.rs"]),
    ("self_update", &["update/"]),
    ("minisign_verify", &["signature.rs"]),
    ("minijinja", &["templates.rs"]),
    ("console", &["ui/"]),
    ("indicatif", &["ui/"]),
    ("dialoguer", &["ui/"]),
    // init writes its answers into the user's file and diffs a team's; `config show` prints TOML.
    ("toml", &["config/", "init/", "cli/config.rs"]),
    ("serde_path_to_error", &["config/load.rs"]),
    ("fs4", &["lock.rs", "disk.rs"]),
];

/// Whether `code` names the crate `name` in a path (`name::…`, `::name::…`), not a module of its
/// own by that name (`mod self_update;` in `cli/mod.rs`) nor a field or method (`.name::<T>`).
fn imports_crate(code: &str, name: &str) -> bool {
    if code.contains(&format!("mod {name};")) {
        return false;
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    code.match_indices(&format!("{name}::")).any(|(at, _)| {
        let before = &code[..at];
        match before.strip_suffix("::") {
            // `::name::…` is the crate; `crate::name::…` or `a::name::…` a module.
            Some(outer) => !outer.ends_with(ident),
            None => !before.ends_with(|c: char| ident(c) || c == '.'),
        }
    })
}

#[test]
fn each_outside_systems_crate_is_imported_only_by_its_home() {
    let architecture = read("ARCHITECTURE.md");
    let section = architecture.split("\n## Outside systems").nth(1).expect("a \"## Outside systems\" section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let named = path_words(section);
    let manifest = read("Cargo.toml");
    for (name, homes) in HOMES {
        // Cargo.toml's spelling: `aws-sdk-s3`, but `self_update`.
        let spelled = [name.replace('_', "-"), name.to_string()]
            .into_iter()
            .find(|spelled| manifest.contains(&format!("\n{spelled} = ")))
            .unwrap_or_else(|| panic!("{name} is not a dependency in Cargo.toml"));
        assert!(section.contains(&format!("`{spelled}`")), "ARCHITECTURE.md's outside systems do not name `{spelled}`");
        for home in *homes {
            assert!(named.iter().any(|w| w.starts_with(home)), "ARCHITECTURE.md's outside systems do not name {home}");
        }
    }
    let strays: Vec<String> = sources()
        .iter()
        .flat_map(|source| {
            HOMES
                .iter()
                .filter(|(name, homes)| {
                    imports_crate(&source.code, name) && !homes.iter().any(|home| source.path.starts_with(home))
                })
                .map(|(name, homes)| format!("src/{} imports {name}, whose home is {}", source.path, homes.join(", ")))
        })
        .collect();
    assert!(
        strays.is_empty(),
        "these files import an outside system's crate outside its home (ARCHITECTURE.md, \"## Outside \
         systems\"): go through the home, or make the file part of it there and in HOMES here:\n  {}",
        strays.join("\n  ")
    );
}

#[test]
fn the_crate_check_reads_paths_as_rust_does() {
    assert!(imports_crate("use bollard::Docker;", "bollard"));
    assert!(imports_crate("let e: ::bollard::errors::Error;", "bollard"));
    assert!(imports_crate("fn f() -> Result<(), bollard::errors::Error>", "bollard"));
    assert!(!imports_crate("use crate::toml::x; mybollard::y; s.bollard::z", "bollard"));
    assert!(!imports_crate("mod self_update;\nSelfUpdate(self_update::Args)", "self_update"));
}

/// The line count ARCHITECTURE.md's habits allow a source file.
const MOST_LINES: usize = 500;

#[test]
fn no_rust_file_is_over_500_lines() {
    let mut long = Vec::new();
    for dir in ["src", "tests"] {
        let mut files = Vec::new();
        files_under(root(), &root().join(dir), &mut files);
        for file in files.iter().filter(|f| f.ends_with(".rs")) {
            let lines = read(file).lines().count();
            if lines > MOST_LINES {
                long.push(format!("{file}: {lines} lines"));
            }
        }
    }
    long.sort();
    assert!(
        long.is_empty(),
        "files over {MOST_LINES} lines (ARCHITECTURE.md, \"## Habits\"): split each where its parts \
         already separate, and name the new files in ARCHITECTURE.md:\n  {}",
        long.join("\n  ")
    );
}
