//! Which line of distribution a registry image runs (2.8 or 3), told from the image itself, and how
//! devbox hands that image its config.
//!
//! The handover is the same for both lines: devbox uploads its rendered config to [`CONFIG_PATH`]
//! and names that path as the container's command, in the place where the image's own command
//! names the image's default config. The image's default is then never read, whatever its path.
//! Both official images take a config path as their command: 2.8 runs `registry serve <cmd>` and
//! 3.x's `/entrypoint.sh` turns a `*.yml` argument into `registry serve <path>`.

use std::fmt;

use serde::Serialize;

use crate::engine::Engine;
use crate::error::Error;

/// Where devbox puts the registry's config in the container: a path no image uses for its own.
pub const CONFIG_PATH: &str = "/etc/devbox/registry.yml";

/// The default config path of the official 2.8 image.
const V2_CONFIG_DIR: &str = "/etc/docker/registry/";
/// The default config path of the official 3.x image (and of distribution's own Dockerfile).
const V3_CONFIG_DIR: &str = "/etc/distribution/";

/// A major line of distribution, as far as its config and container differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Line {
    #[serde(rename = "2.8")]
    V2,
    #[serde(rename = "3")]
    V3,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Line::V2 => "2.8",
            Line::V3 => "3",
        })
    }
}

/// How one image starts, and how devbox starts it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub line: Line,
    /// The config the image would read on its own (its command names it).
    pub image_config: String,
    /// The container's command: the image's own, with [`CONFIG_PATH`] in place of `image_config`.
    pub cmd: Vec<String>,
}

impl Layout {
    /// Tells the line from the image's `Cmd` (the config path it names), never from its tag: a tag
    /// such as `latest` or a mirror's name says nothing reliable about what is inside.
    ///
    /// - a `Cmd` naming a file under `/etc/distribution/` is distribution 3 (the official
    ///   `registry:3` image: `/entrypoint.sh` + `/etc/distribution/config.yml`; distribution's
    ///   Dockerfile: `registry` + `serve /etc/distribution/config.yml`);
    /// - one under `/etc/docker/registry/` is 2.8 (`registry:2.8`: `/etc/docker/registry/config.yml`);
    /// - anything else is an image devbox does not know how to configure, and is refused before a
    ///   container is made.
    pub fn of_image(image: &str, entrypoint: &[String], cmd: &[String]) -> Result<Layout, Error> {
        let unknown = || Error::UnknownRegistryImage {
            image: image.to_string(),
            entrypoint: entrypoint.to_vec(),
            cmd: cmd.to_vec(),
        };
        let position =
            cmd.iter().position(|arg| arg.ends_with(".yml") || arg.ends_with(".yaml")).ok_or_else(unknown)?;
        let image_config = cmd[position].clone();
        let line = if image_config.starts_with(V3_CONFIG_DIR) {
            Line::V3
        } else if image_config.starts_with(V2_CONFIG_DIR) {
            Line::V2
        } else {
            return Err(unknown());
        };
        let mut ours = cmd.to_vec();
        ours[position] = CONFIG_PATH.to_string();
        Ok(Layout { line, image_config, cmd: ours })
    }

    /// Environment the line needs besides credentials. distribution 3 exports OpenTelemetry traces
    /// (to an OTLP collector on localhost unless told otherwise); a laptop has no collector, so
    /// traces are off, as the official image's `OTEL_TRACES_EXPORTER=none` has them.
    pub fn env(&self) -> Vec<(String, String)> {
        match self.line {
            Line::V2 => Vec::new(),
            Line::V3 => vec![("OTEL_TRACES_EXPORTER".to_string(), "none".to_string())],
        }
    }
}

/// The layout of `image`, which must be on the engine (`registry up` pulls it first).
pub async fn detect(engine: &Engine, image: &str) -> anyhow::Result<Option<Layout>> {
    let Some(info) = engine.image(image).await? else { return Ok(None) };
    Ok(Some(Layout::of_image(image, &info.entrypoint, &info.cmd)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_official_v3_image_is_line_3_and_gets_devbox_config_as_its_command() {
        let layout =
            Layout::of_image("registry:3", &strings(&["/entrypoint.sh"]), &strings(&["/etc/distribution/config.yml"]))
                .expect("known");
        assert_eq!(layout.line, Line::V3);
        assert_eq!(layout.cmd, strings(&[CONFIG_PATH]));
        assert_eq!(layout.image_config, "/etc/distribution/config.yml");
        assert_eq!(layout.env(), vec![("OTEL_TRACES_EXPORTER".to_string(), "none".to_string())]);
    }

    #[test]
    fn distribution_own_dockerfile_keeps_its_serve_word() {
        let layout =
            Layout::of_image("r", &strings(&["registry"]), &strings(&["serve", "/etc/distribution/config.yml"]))
                .expect("known");
        assert_eq!(layout.line, Line::V3);
        assert_eq!(layout.cmd, strings(&["serve", CONFIG_PATH]));
    }

    #[test]
    fn the_official_2_8_layouts_are_line_2_8() {
        for entrypoint in [strings(&["/entrypoint.sh"]), strings(&["/bin/registry", "serve"])] {
            let layout =
                Layout::of_image("registry:2.8.3", &entrypoint, &strings(&["/etc/docker/registry/config.yml"]))
                    .expect("known");
            assert_eq!(layout.line, Line::V2);
            assert_eq!(layout.cmd, strings(&[CONFIG_PATH]));
            assert!(layout.env().is_empty());
        }
    }

    #[test]
    fn the_tag_says_nothing() {
        // Named "registry:3", laid out as 2.8: the layout wins.
        let layout = Layout::of_image(
            "registry:3",
            &strings(&["/entrypoint.sh"]),
            &strings(&["/etc/docker/registry/config.yml"]),
        )
        .expect("known");
        assert_eq!(layout.line, Line::V2);
    }

    #[test]
    fn an_image_without_a_known_config_path_is_refused() {
        for cmd in [strings(&[]), strings(&["sh"]), strings(&["/srv/registry.yml"])] {
            let err = Layout::of_image("acme/thing:1", &strings(&["/run"]), &cmd).expect_err("unknown");
            assert!(err.to_string().contains("acme/thing:1"), "{err}");
        }
    }
}
