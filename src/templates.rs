//! The files devbox renders from `templates/`, embedded at build time.

use minijinja::Environment;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use serde::Serialize;

/// Renders one embedded template with `context`. Templates are part of the binary and covered by
/// snapshot tests, so a failure here is a bug in devbox, reported with the template's name.
pub fn render(name: &str, source: &str, context: impl Serialize) -> anyhow::Result<String> {
    let mut env = Environment::new();
    env.set_syntax(SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true).build()?);
    env.add_template(name, source)?;
    let rendered = env.get_template(name)?.render(Value::from(Serde(context)))?;
    Ok(rendered)
}
