//! The files devbox renders from `templates/`, embedded at build time.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, default_auto_escape_callback};
use serde::Serialize;

/// Renders one embedded template with `context`. Templates are part of the binary and covered by
/// snapshot tests, so a failure here is a bug in devbox, reported with the template's name.
pub fn render(name: &str, source: &str, context: impl Serialize) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true).build()?);
    env.set_auto_escape_callback(auto_escape);
    env.add_template(name, source)?;
    let rendered = env.get_template(name)?.render(Value::from(Serde(context)))?;
    Ok(rendered)
}

/// The scheduler's XML files (`.xml`, `.plist`) get their values escaped once, for XML, by their
/// renderer (`schedule::xml_escape`): minijinja's HTML escaping on top would escape them twice.
/// HTML (`fleet.html`) keeps minijinja's own escaping.
fn auto_escape(name: &str) -> AutoEscape {
    match name.rsplit('.').next() {
        Some("xml" | "plist") => AutoEscape::None,
        _ => default_auto_escape_callback(name),
    }
}
