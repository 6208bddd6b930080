//! Call data and request metadata, from the config or the files it names (ghz semantics).

use std::collections::BTreeMap;
use std::path::PathBuf;

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
        let path = PathBuf::from(file);
        let text = std::fs::read_to_string(&path).map_err(|source| LoadtestError::Read {
            path: path.clone(),
            source,
        })?;
        let value = serde_json::from_str(&text).map_err(|e| LoadtestError::Data {
            reason: format!("{file}: {e}"),
        })?;
        return Ok(Some(value));
    }
    if c.data.as_ref().and_then(|d| d.as_str()) == Some("@") {
        return Err(LoadtestError::option(
            "data",
            "reading call data from stdin (\"@\") is not supported; use data-file",
        ));
    }
    Ok(c.data.clone())
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
