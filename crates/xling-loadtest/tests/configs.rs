//! Every committed ghz config in `load-tests/` parses, resolves and loads its call data.

use std::path::{Path, PathBuf};

use xling_loadtest::{GhzConfig, RunSpec};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_committed_config_resolves() {
    let dir = repo_root().join("load-tests");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let (mut config, warnings) = GhzConfig::from_file(&path).unwrap();
        assert!(warnings.is_empty(), "{}: {warnings:?}", path.display());
        // ghz resolves data-file against the working directory: the repository root.
        if let Some(file) = &config.data_file {
            config.data_file = Some(repo_root().join(file).to_string_lossy().into_owned());
        }
        let spec = RunSpec::resolve(config).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!spec.payloads.is_empty());
        assert!(
            spec.name.is_some(),
            "{}: give every config a name",
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for expected in [
        "search-concurrency.json",
        "search-rate.json",
        "search-step.json",
        "search-line.json",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
}
