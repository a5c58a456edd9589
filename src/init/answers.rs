//! What `init` asks for, and how the answers land in the user's devbox.toml. Pure: the runner
//! asks (or takes defaults and flags) and writes.

use super::header;

/// A value `init` may ask for, with its config key and its flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Bucket,
    Region,
    Profile,
    Port,
}

impl Question {
    pub fn key(self) -> &'static str {
        match self {
            Question::Bucket => "registry.s3.bucket",
            Question::Region => "registry.s3.region",
            Question::Profile => "registry.s3.profile",
            Question::Port => "registry.port",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Question::Bucket => "--bucket",
            Question::Region => "--region",
            Question::Profile => "--profile",
            Question::Port => "--port",
        }
    }
}

/// Whether the user's own file (not the defaults) sets `key` ("a.b.c").
pub fn sets(user: &toml::Table, key: &str) -> bool {
    let mut table = user;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        match (table.get(part), parts.peek()) {
            (Some(_), None) => return true,
            (Some(toml::Value::Table(inner)), Some(_)) => table = inner,
            _ => return false,
        }
    }
    false
}

/// The questions about S3: the bucket when none is set (unless filesystem storage was chosen), and
/// then the region and profile if a bucket is being set now and the file leaves them to defaults.
pub fn s3_questions(user: &toml::Table, bucket_set: bool, filesystem_chosen: bool, bucket_now: bool) -> Vec<Question> {
    let mut questions = Vec::new();
    if !bucket_set && !filesystem_chosen {
        questions.push(Question::Bucket);
    }
    if bucket_now {
        for q in [Question::Region, Question::Profile] {
            if !sets(user, q.key()) {
                questions.push(q);
            }
        }
    }
    questions
}

/// The profiles named in `~/.aws/config`, in file order: `[default]` and `[profile NAME]`.
pub fn aws_profiles(config_text: &str) -> Vec<String> {
    let mut profiles = Vec::new();
    for line in config_text.lines() {
        let line = line.trim();
        let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else { continue };
        let section = section.trim();
        let name = if section == "default" { Some("default") } else { section.strip_prefix("profile ").map(str::trim) };
        if let Some(name) = name
            && !name.is_empty()
            && !profiles.iter().any(|p| p == name)
        {
            profiles.push(name.to_string());
        }
    }
    profiles
}

/// The first free port after `busy`, by `is_free`; a busy default gets a nearby suggestion.
pub fn suggest_port(busy: u16, is_free: impl Fn(u16) -> bool) -> Option<u16> {
    (1..=200).filter_map(|step| busy.checked_add(step)).find(|port| is_free(*port))
}

/// The user's file with the answers set. `text` is the file as it stands (or will be, after a
/// team config); `None` when there is none. Without answers, the text is returned untouched, so
/// its comments survive; with answers, it is parsed and written again.
pub fn apply(text: Option<&str>, answers: &[(Question, toml::Value)]) -> anyhow::Result<Option<String>> {
    if answers.is_empty() {
        return Ok(text.map(String::from));
    }
    let header = text.map(header::header_of).unwrap_or_default().to_string();
    let mut table: toml::Table = match text {
        Some(text) => toml::from_str(text)?,
        None => toml::Table::new(),
    };
    for (question, value) in answers {
        set(&mut table, question.key(), value.clone());
    }
    let body = toml::to_string_pretty(&table)?;
    Ok(Some(format!("{header}{body}")))
}

fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    let (path, last) = key.rsplit_once('.').map_or(("", key), |(p, l)| (p, l));
    let mut current = table;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let entry = current.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        current = inner;
    }
    current.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("toml")
    }

    #[test]
    fn sets_looks_only_at_the_users_own_keys() {
        let user = table("[registry]\nport = 5001\n[registry.s3]\nregion = \"eu-west-1\"\n");
        assert!(sets(&user, "registry.port"));
        assert!(sets(&user, "registry.s3.region"));
        assert!(!sets(&user, "registry.s3.bucket"));
        assert!(!sets(&user, "images.base"));
    }

    #[test]
    fn only_what_is_missing_is_asked() {
        let empty = toml::Table::new();
        assert_eq!(s3_questions(&empty, false, false, false), vec![Question::Bucket]);
        assert_eq!(s3_questions(&empty, true, false, false), vec![]);
        assert_eq!(s3_questions(&empty, false, true, false), vec![], "filesystem storage chosen: no bucket asked");
        assert_eq!(s3_questions(&empty, true, false, true), vec![Question::Region, Question::Profile]);
        let with_region = table("[registry.s3]\nregion = \"eu-west-1\"\n");
        assert_eq!(s3_questions(&with_region, true, false, true), vec![Question::Profile]);
    }

    #[test]
    fn profiles_come_from_the_aws_config_in_order() {
        let text = "[default]\nregion = us-east-1\n[profile devbox]\nsso_session = acme\n[sso-session acme]\n\
                    sso_start_url = x\n[ profile  ci ]\n[services s3]\n[profile devbox]\n";
        assert_eq!(aws_profiles(text), vec!["default", "devbox", "ci"]);
        assert!(aws_profiles("").is_empty());
    }

    #[test]
    fn a_busy_port_gets_the_next_free_one() {
        assert_eq!(suggest_port(5000, |p| p == 5003), Some(5003));
        assert_eq!(suggest_port(65535, |_| true), None);
    }

    #[test]
    fn answers_land_under_their_keys_and_keep_the_team_source() {
        let trust = crate::init::trust::Trust::Signed("RWQkey".into());
        let keys = ["RWQkey".to_string()];
        let team =
            header::with_header("s3://acme/devbox.toml", &trust, &keys, "[images]\nbase = [\"base/python:3.12\"]\n");
        let answers = [
            (Question::Bucket, toml::Value::String("acme-registry".into())),
            (Question::Port, toml::Value::Integer(5001)),
        ];
        let text = apply(Some(&team), &answers).expect("apply").expect("text");
        assert_eq!(header::recorded_source(&text), Some("s3://acme/devbox.toml"));
        assert_eq!(header::recorded_trust(&text), Some(trust));
        assert_eq!(header::recorded_keys(&text), keys);
        let parsed = table(&text);
        assert_eq!(parsed["registry"]["s3"]["bucket"].as_str(), Some("acme-registry"));
        assert_eq!(parsed["registry"]["port"].as_integer(), Some(5001));
        assert_eq!(parsed["images"]["base"][0].as_str(), Some("base/python:3.12"));
    }

    #[test]
    fn no_answers_leave_the_text_as_it_is() {
        assert_eq!(apply(Some("# mine\n[registry]\n"), &[]).expect("apply").as_deref(), Some("# mine\n[registry]\n"));
        assert_eq!(apply(None, &[]).expect("apply"), None);
        let fresh = apply(None, &[(Question::Bucket, toml::Value::String("b".into()))]).expect("apply");
        assert_eq!(fresh.as_deref(), Some("[registry.s3]\nbucket = \"b\"\n"));
    }
}
