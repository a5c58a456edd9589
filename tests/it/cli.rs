//! The command line itself: config errors, `config path|show`, completions, exit codes.

use crate::testbed::Bed;

/// Each bad config exits 2, names file, line, column and key, and creates nothing.
#[test]
fn bad_config_exits_2_with_its_location_and_changes_nothing() {
    let bed = Bed::new("badconfig");
    let path = bed.config_path().display().to_string();
    let cases: [(&str, String); 5] = [
        ("[registry]\nport = \n", format!("{path}:2:8: string values must be quoted")),
        ("[registry]\ncolour = \"blue\"\n", format!("{path}:2:1: registry.colour: unknown field `colour`")),
        ("[cleanup]\nolder_than = \"-1h\"\n", format!("{path}:2:14: cleanup.older_than:")),
        (
            "[registry]\nstorage = \"s3\"\n",
            format!("{path}:2:11: registry.storage: is \"s3\" but registry.s3.bucket is empty"),
        ),
        (
            "[registry.s3]\nbucket = \"Bad_Bucket\"\n",
            format!("{path}:2:10: registry.s3.bucket: \"Bad_Bucket\" is not a valid S3 bucket name"),
        ),
    ];
    for (text, expected) in cases {
        bed.write_raw_config(text);
        bed.test(&["registry", "up"]).code(2).stderr_has(expected.clone()).stderr_has("hint: Fix that key in").run();
    }
    // None of those runs created the default container.
    let (exists, _) = crate::testbed::docker_try(&["inspect", "devbox-registry"]);
    assert!(!exists, "a registry container was created from a bad config");
}

#[test]
fn config_path_and_show_name_the_source() {
    let bed = Bed::new("cfgshow");
    bed.test(&["config", "path"]).stdout_is(format!("{}\n", bed.config_path().display())).run();
    bed.test(&["config", "show"])
        .stdout_has(format!("# source: {}", bed.config_path().display()))
        .stdout_has(format!("container = \"{}\"", bed.name))
        .stdout_has("max_skew = \"2s\"")
        .run();

    // --config wins over DEVBOX_CONFIG, which wins over the default location.
    let other = bed.home.path().join("team.toml");
    std::fs::write(&other, "[registry]\nport = 5050\n").expect("write");
    bed.test(&["config", "show", "--json"])
        .env("DEVBOX_CONFIG", &other)
        .stdout_has("\"kind\": \"env\"")
        .stdout_has("\"port\": 5050")
        .run();
    bed.test(&["--config", other.to_str().expect("utf-8"), "config", "show"])
        .env("DEVBOX_CONFIG", "/nonexistent.toml")
        .stdout_has("(from --config)")
        .run();

    // A missing explicit file is a configuration error; a missing default file means the defaults.
    bed.test(&["config", "show"]).env("DEVBOX_CONFIG", "/nonexistent.toml").code(2).run();
    std::fs::remove_file(bed.config_path()).expect("remove");
    bed.test(&["config", "show"]).stdout_has("built-in defaults").stdout_has("storage = \"auto\"").run();
}

/// `config show` prints each value as it was written (or as the defaults write it), and its output,
/// loaded as a config file, is the same config.
#[test]
fn config_show_prints_what_a_person_would_write_and_loads_back_the_same() {
    let bed = Bed::new("cfground");
    let stdout = |out: std::process::Output| String::from_utf8(out.stdout).expect("utf-8");
    let body = |shown: &str| shown.lines().filter(|l| !l.starts_with("# ")).collect::<Vec<_>>().join("\n");
    std::fs::remove_file(bed.config_path()).expect("remove");
    let defaults = stdout(
        bed.test(&["config", "show"])
            .stdout_has("memory = \"512MiB\"")
            .stdout_has("older_than = \"24h\"")
            .stdout_has("stale_after = \"3d\"")
            .run(),
    );

    bed.write_raw_config(
        "[registry]\nmemory = \"1GiB\"\n[cleanup]\nolder_than = \"90m\"\nmax_disk = \"40GB\"\n\
         [fleet]\nstale_after = \"1week\"\n",
    );
    let mine = stdout(
        bed.test(&["config", "show"])
            .stdout_has("memory = \"1GiB\"")
            .stdout_has("older_than = \"90m\"")
            .stdout_has("max_disk = \"40GB\"")
            .stdout_has("stale_after = \"1week\"")
            .stdout_has("session_duration = \"12h\"")
            .run(),
    );
    for shown in [defaults, mine] {
        let file = bed.home.path().join("shown.toml");
        std::fs::write(&file, &shown).expect("write");
        let again = stdout(bed.test(&["--config", file.to_str().expect("utf-8"), "config", "show"]).run());
        assert_eq!(body(&again), body(&shown), "config show's output loads as another config");
    }
}

#[test]
fn config_path_works_even_when_the_file_is_broken() {
    let bed = Bed::new("cfgpath");
    bed.write_raw_config("this is not toml");
    bed.test(&["config", "path"]).run();
    bed.test(&["config", "show"]).code(2).run();
}

#[test]
fn usage_errors_exit_2_and_help_lists_only_working_commands() {
    let bed = Bed::new("usage");
    let usage_errors: [&[&str]; 2] = [&["no-such-command"], &["registry", "up", "--bogus"]];
    for args in usage_errors {
        bed.test(args).code(2).run();
    }
    bed.test(&["--help"])
        .stdout_has("registry")
        .stdout_has("Exit codes: 0 success, 1 failure, 2 usage or configuration error")
        .run();
    bed.test(&["--version"]).stdout_matches("^devbox ").run();
}

#[test]
fn completions_are_printed_for_each_shell() {
    let bed = Bed::new("completions");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        bed.test(&["completions", shell]).stdout_has("registry").run();
    }
}

#[test]
fn output_without_a_tty_has_no_escape_codes() {
    let bed = Bed::new("plain");
    bed.test(&["registry", "status"])
        .env_remove("NO_COLOR")
        .code(1)
        .stdout_lacks("\u{1b}[")
        .stderr_lacks("\u{1b}[")
        .run();
    bed.test(&["--color", "always", "registry", "status"]).code(1).stdout_has("\u{1b}[").run();
}
