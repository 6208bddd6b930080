//! ghz's config file keys, read from JSON or TOML, and merged with command-line flags.
//!
//! Every field is optional here: a [`GhzConfig`] is what one source (file or flags) said.
//! [`GhzConfig::merge`] lets flags win as in ghz; defaults are applied later, in
//! [`crate::spec::RunSpec::resolve`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::timefmt::parse_go_duration;
use crate::LoadtestError;

/// The ghz config keys xling loadtest honours (names exactly as in ghz's config files).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GhzConfig {
    pub proto: Option<String>,
    pub protoset: Option<String>,
    pub call: Option<String>,
    pub host: Option<String>,
    pub insecure: Option<bool>,
    pub data: Option<serde_json::Value>,
    pub data_file: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub metadata_file: Option<String>,
    pub concurrency: Option<u32>,
    pub connections: Option<u32>,
    pub total: Option<u64>,
    #[serde(default, deserialize_with = "go_duration")]
    pub duration: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    pub max_duration: Option<Duration>,
    pub duration_stop: Option<String>,
    pub rps: Option<u32>,
    pub load_schedule: Option<String>,
    pub load_start: Option<u32>,
    pub load_step: Option<i64>,
    pub load_end: Option<u32>,
    #[serde(default, deserialize_with = "go_duration")]
    pub load_step_duration: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    pub load_max_duration: Option<Duration>,
    pub concurrency_schedule: Option<String>,
    pub concurrency_start: Option<u32>,
    pub concurrency_step: Option<i64>,
    pub concurrency_end: Option<u32>,
    #[serde(default, deserialize_with = "go_duration")]
    pub concurrency_step_duration: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    pub concurrency_max_duration: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, deserialize_with = "go_duration")]
    pub connect_timeout: Option<Duration>,
    #[serde(rename = "skipFirst")]
    pub skip_first: Option<u64>,
    pub count_errors: Option<bool>,
    pub format: Option<String>,
    pub output: Option<String>,
    pub name: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
}

/// ghz keys that only tune ghz itself (Go runtime, proto parsing, logging); accepted and ignored.
const IGNORED_KEYS: &[&str] = &[
    "cpus",
    "import-paths",
    "keepalive",
    "debug",
    "reflect-metadata",
];

/// ghz keys for features xling loadtest does not have; refused unless set to their "off" value,
/// so that a config never silently measures something else than it says.
const UNSUPPORTED_KEYS: &[(&str, &str)] = &[
    (
        "cacert",
        "TLS is not supported; xling serves plaintext gRPC",
    ),
    ("cert", "TLS is not supported; xling serves plaintext gRPC"),
    ("key", "TLS is not supported; xling serves plaintext gRPC"),
    ("cname", "TLS is not supported; xling serves plaintext gRPC"),
    (
        "skipTLS",
        "TLS is not supported; xling serves plaintext gRPC",
    ),
    ("authority", ":authority override is not supported"),
    (
        "binary-file",
        "binary call data is not supported; use data or data-file",
    ),
    ("stream-interval", "xling.v1 has no streaming calls"),
    ("stream-call-duration", "xling.v1 has no streaming calls"),
    ("stream-call-count", "xling.v1 has no streaming calls"),
    ("stream-dynamic-messages", "xling.v1 has no streaming calls"),
    (
        "async",
        "async mode is not supported; use rps for open-loop load",
    ),
    (
        "enable-compression",
        "gzip request compression is not supported",
    ),
    (
        "lb-strategy",
        "client load balancing is not supported; use connections",
    ),
];

impl GhzConfig {
    /// Reads a ghz config file; `.toml` files as TOML, anything else as JSON (ghz's default).
    /// Returns the config and warnings about ghz keys that have no effect here.
    pub fn from_file(path: &Path) -> Result<(GhzConfig, Vec<String>), LoadtestError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadtestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let parsed = if is_toml {
            toml::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
        };
        let fail = |reason: String| LoadtestError::ConfigFile {
            path: path.to_path_buf(),
            reason,
        };
        GhzConfig::from_value(parsed.map_err(fail)?).map_err(fail)
    }

    /// Validates the keys of an already parsed config document.
    pub fn from_value(value: serde_json::Value) -> Result<(GhzConfig, Vec<String>), String> {
        let serde_json::Value::Object(mut map) = value else {
            return Err("the top level must be an object of ghz settings".into());
        };
        let mut warnings = Vec::new();
        for key in IGNORED_KEYS {
            if map.remove(*key).is_some() {
                warnings.push(format!("ghz key {key:?} has no effect in xling loadtest"));
            }
        }
        for (key, why) in UNSUPPORTED_KEYS {
            if let Some(value) = map.remove(*key) {
                if !is_off(&value) {
                    return Err(format!("key {key:?}: {why}"));
                }
            }
        }
        let config =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
        Ok((config, warnings))
    }

    /// Field by field, `over` wins where it says something (ghz: flags override the file).
    pub fn merge(self, over: GhzConfig) -> GhzConfig {
        macro_rules! merged {
            ($($field:ident),* $(,)?) => { GhzConfig { $($field: over.$field.or(self.$field)),* } };
        }
        merged!(
            proto,
            protoset,
            call,
            host,
            insecure,
            data,
            data_file,
            metadata,
            metadata_file,
            concurrency,
            connections,
            total,
            duration,
            max_duration,
            duration_stop,
            rps,
            load_schedule,
            load_start,
            load_step,
            load_end,
            load_step_duration,
            load_max_duration,
            concurrency_schedule,
            concurrency_start,
            concurrency_step,
            concurrency_end,
            concurrency_step_duration,
            concurrency_max_duration,
            timeout,
            connect_timeout,
            skip_first,
            count_errors,
            format,
            output,
            name,
            tags,
        )
    }
}

/// Parses a JSON-valued flag (`--data`, `--metadata`, `--tags`); `None` when not given.
pub fn json_flag<T: serde::de::DeserializeOwned>(
    flag: &str,
    text: Option<&str>,
) -> Result<Option<T>, LoadtestError> {
    text.map(|t| {
        serde_json::from_str(t)
            .map_err(|e| LoadtestError::option(flag, format!("not valid JSON: {e}")))
    })
    .transpose()
}

/// `false`, `""`, `0`, `null`, `[]` and `{}`: the values that leave a ghz feature off.
fn is_off(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
        serde_json::Value::String(s) => s.trim().is_empty() || s == "0",
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
    }
}

/// ghz durations are Go duration strings; a bare `0` also parses in Go.
fn go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Text(text)) => parse_go_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(Raw::Number(0)) => Ok(Some(Duration::ZERO)),
        Some(Raw::Number(n)) => Err(serde::de::Error::custom(format!(
            "duration {n} has no unit; write a Go duration string such as \"{n}s\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<(GhzConfig, Vec<String>), String> {
        GhzConfig::from_value(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn reads_ghz_keys_and_durations() {
        let (config, warnings) = parse(
            r#"{"call": "xling.v1.Retrieval.Search", "host": "127.0.0.1:50051", "insecure": true,
                "concurrency": 8, "total": 500, "duration": "1m30s", "timeout": "2s",
                "load-schedule": "step", "load-start": 10, "load-step": -2, "load-end": 4,
                "load-step-duration": "5s", "skipFirst": 3, "count-errors": true,
                "tags": {"env": "ci"}, "cpus": 4}"#,
        )
        .unwrap();
        assert_eq!(config.concurrency, Some(8));
        assert_eq!(config.duration, Some(Duration::from_secs(90)));
        assert_eq!(config.timeout, Some(Duration::from_secs(2)));
        assert_eq!(config.load_step, Some(-2));
        assert_eq!(config.load_step_duration, Some(Duration::from_secs(5)));
        assert_eq!(config.skip_first, Some(3));
        assert_eq!(config.count_errors, Some(true));
        assert_eq!(config.tags.unwrap()["env"], "ci");
        assert_eq!(warnings.len(), 1, "cpus is ignored with a warning");
    }

    #[test]
    fn refuses_unknown_and_unsupported_keys() {
        let err = parse(r#"{"concurency": 8}"#).unwrap_err();
        assert!(err.contains("concurency"), "{err}");
        let err = parse(r#"{"cacert": "ca.pem"}"#).unwrap_err();
        assert!(err.contains("TLS"), "{err}");
        assert!(parse(r#"{"skipTLS": false, "async": false}"#).is_ok());
        let err = parse(r#"{"duration": 10}"#).unwrap_err();
        assert!(err.contains("no unit"), "{err}");
        assert!(parse(r#"[1, 2]"#).is_err());
    }

    #[test]
    fn reads_toml() {
        let dir = std::env::temp_dir().join(format!("xling-lt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.toml");
        std::fs::write(
            &path,
            "call = \"xling.v1.Retrieval/Search\"\nrps = 20\nduration = \"3s\"\n[data]\nquery = \"hallo\"\n",
        )
        .unwrap();
        let (config, _) = GhzConfig::from_file(&path).unwrap();
        assert_eq!(config.rps, Some(20));
        assert_eq!(config.duration, Some(Duration::from_secs(3)));
        assert_eq!(config.data.unwrap()["query"], "hallo");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn flags_override_the_file() {
        let file = GhzConfig {
            host: Some("a:1".into()),
            concurrency: Some(8),
            total: Some(100),
            format: Some("json".into()),
            ..GhzConfig::default()
        };
        let flags = GhzConfig {
            host: Some("b:2".into()),
            concurrency: Some(2),
            ..GhzConfig::default()
        };
        let merged = file.merge(flags);
        assert_eq!(merged.host.as_deref(), Some("b:2"));
        assert_eq!(merged.concurrency, Some(2));
        assert_eq!(merged.total, Some(100));
        assert_eq!(merged.format.as_deref(), Some("json"));
    }
}
