//! Call data and request metadata, from the config or the files it names (ghz semantics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use crate::config::GhzConfig;
use crate::LoadtestError;

/// ghz: `data-file` wins over `data`; both hold one message object or an array of them.
pub(crate) fn load_data(c: &GhzConfig) -> Result<Option<serde_json::Value>, LoadtestError> {
    if let Some(file) = c
        .data_file
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        return read_json(&PathBuf::from(file)).map(Some);
    }
    if c.data.as_ref().and_then(|d| d.as_str()) == Some("@") {
        return Err(LoadtestError::option(
            "data",
            "reading call data from stdin (\"@\") is not supported; use data-file",
        ));
    }
    Ok(c.data.clone())
}

/// The `query` strings of a data file's messages, for benchmarks that replay the load's texts.
pub fn query_texts(path: &Path) -> Result<Vec<String>, LoadtestError> {
    let value = read_json(path)?;
    let messages = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    let texts: Vec<String> = messages
        .iter()
        .filter_map(|m| m.get("query")?.as_str())
        .map(str::to_owned)
        .collect();
    if texts.is_empty() {
        return Err(LoadtestError::Data {
            reason: format!("{}: no message has a \"query\" string", path.display()),
        });
    }
    Ok(texts)
}

fn read_json(path: &Path) -> Result<serde_json::Value, LoadtestError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadtestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| LoadtestError::Data {
        reason: format!("{}: {e}", path.display()),
    })
}

pub(crate) fn load_metadata(
    c: &GhzConfig,
) -> Result<Vec<(AsciiMetadataKey, AsciiMetadataValue)>, LoadtestError> {
    let mut map = match c
        .metadata_file
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|source| LoadtestError::Read {
                path: file.into(),
                source,
            })?;
            serde_json::from_str::<BTreeMap<String, String>>(&text).map_err(|e| {
                LoadtestError::option(
                    "metadata-file",
                    format!("{file}: {e} (expected an object of strings)"),
                )
            })?
        }
        None => BTreeMap::new(),
    };
    map.extend(c.metadata.clone().unwrap_or_default());
    map.into_iter()
        .map(|(k, v)| {
            if k.contains("{{") || v.contains("{{") {
                return Err(LoadtestError::option(
                    "metadata",
                    format!("{k:?}: ghz call templates are not supported"),
                ));
            }
            let key = k
                .to_ascii_lowercase()
                .parse::<AsciiMetadataKey>()
                .map_err(|_| {
                    LoadtestError::option(
                        "metadata",
                        format!("{k:?} is not a valid gRPC metadata key"),
                    )
                })?;
            let value = v.parse::<AsciiMetadataValue>().map_err(|_| {
                LoadtestError::option(
                    "metadata",
                    format!("value of {k:?} is not valid ASCII metadata"),
                )
            })?;
            Ok((key, value))
        })
        .collect()
}
