//! The JSON Lines corpus loader: a valid file, and every error case with its line number.

use std::path::{Path, PathBuf};

use xling_index::{Corpus, IndexError, Passage};

const VALID: &str = concat!(
    r#"{"id":"a","text":"Hello","language":"en"}"#,
    "\n\n",
    r#"{"id":"b","text":"Hallo","language":"de","title":"T","metadata":{"k":1}}"#,
    "\n"
);

fn write(dir: &Path, contents: &[u8]) -> PathBuf {
    let path = dir.join("corpus.jsonl");
    std::fs::write(&path, contents).unwrap();
    path
}

fn load(contents: &str) -> Result<Corpus, IndexError> {
    let dir = tempfile::tempdir().unwrap();
    Corpus::load(&write(dir.path(), contents.as_bytes()))
}

#[test]
fn loads_a_valid_corpus_and_hashes_the_file() {
    let corpus = load(VALID).unwrap();
    assert_eq!(corpus.len(), 2);
    assert_eq!(
        corpus.passages()[1],
        Passage {
            id: "b".into(),
            text: "Hallo".into(),
            language: "de".into(),
            title: Some("T".into()),
        }
    );
    assert_eq!(corpus.passages()[0].title, None);
    // `sha256sum` of the same bytes.
    assert_eq!(
        corpus.sha256(),
        "8123bb5de12cb60dda48f227b7142a90432970f6e6fa1ba64c21fe1edc72ddfc"
    );
}

#[test]
fn malformed_lines_name_the_line() {
    let cases = [
        "{\"id\":\"x\",\"text\":\"t\",\"language\":\"en\"\n", // unterminated
        "{\"id\":\"x\",\"language\":\"en\"}\n",               // missing text
        "{\"id\":\"x\",\"text\":\"t\",\"lang\":\"en\"}\n",    // misspelt field
        "{\"id\":\"x\",\"text\":\"t\",\"language\":\"en\",\"metadata\":3}\n",
        "[1,2]\n",
    ];
    for bad in cases {
        match load(&format!("{VALID}{bad}")) {
            Err(IndexError::CorpusSyntax { line: 4, .. }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        b"{\"id\":\"x\",\"text\":\"\xff\",\"language\":\"en\"}\n",
    );
    let err = Corpus::load(&path).unwrap_err();
    assert!(
        matches!(err, IndexError::CorpusSyntax { line: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("corpus.jsonl:1"), "{err}");
}

#[test]
fn duplicate_ids_name_both_lines() {
    let err = load(&format!(
        "{VALID}{{\"id\":\"a\",\"text\":\"again\",\"language\":\"fr\"}}\n"
    ))
    .unwrap_err();
    assert!(
        matches!(&err, IndexError::DuplicateId { line: 4, first_line: 1, id, .. } if id == "a"),
        "{err:?}"
    );
}

#[test]
fn language_codes_must_be_iso_639_1() {
    for code in ["english", "EN", "xx", ""] {
        let line = format!("{{\"id\":\"c\",\"text\":\"t\",\"language\":\"{code}\"}}\n");
        let err = load(&format!("{VALID}{line}")).unwrap_err();
        assert!(
            matches!(&err, IndexError::CorpusLanguage { line: 4, code: c, .. } if c == code),
            "{code}: {err:?}"
        );
    }
}

#[test]
fn empty_text_id_and_corpus_are_errors() {
    let err = load("{\"id\":\"a\",\"text\":\"  \",\"language\":\"en\"}\n").unwrap_err();
    assert!(
        matches!(&err, IndexError::EmptyText { line: 1, id, .. } if id == "a"),
        "{err:?}"
    );
    let err = load("{\"id\":\"\",\"text\":\"t\",\"language\":\"en\"}\n").unwrap_err();
    assert!(
        matches!(err, IndexError::EmptyId { line: 1, .. }),
        "{err:?}"
    );
    for empty in ["", "\n \n"] {
        assert!(matches!(load(empty), Err(IndexError::EmptyCorpus { .. })));
    }
}

#[test]
fn missing_file_is_named() {
    let err = Corpus::load(Path::new("/nonexistent/corpus.jsonl")).unwrap_err();
    assert!(matches!(err, IndexError::MissingFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/corpus.jsonl"),
        "{err}"
    );
}

#[test]
fn in_memory_passages_follow_the_same_rules() {
    let p = |id: &str, lang: &str| Passage {
        id: id.into(),
        text: "t".into(),
        language: lang.into(),
        title: None,
    };
    assert_eq!(
        Corpus::from_passages(vec![p("a", "en"), p("b", "zh")])
            .unwrap()
            .len(),
        2
    );
    let err = Corpus::from_passages(vec![p("a", "en"), p("a", "zh")]).unwrap_err();
    assert!(
        matches!(
            err,
            IndexError::DuplicateId {
                line: 2,
                first_line: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Corpus::from_passages(vec![p("a", "eng")]).unwrap_err();
    assert!(
        matches!(err, IndexError::CorpusLanguage { line: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(
        Corpus::from_passages(vec![]),
        Err(IndexError::EmptyCorpus { .. })
    ));
}
