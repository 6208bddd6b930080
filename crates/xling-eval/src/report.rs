//! The evaluation report: JSON (the `summary` / `settings` keys are a contract) and markdown.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::{json, Value};

use crate::lareqa::Dataset;
use crate::protocol::{ByKind, Comparison, Scores};

/// How the run was made; printed with the figures so they can be reproduced.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub data: String,
    /// `grpc <addr>` or `local`.
    pub mode: String,
    /// Model id (local mode, or from the server's Info).
    pub model: String,
    pub top_k: usize,
    /// HNSW ef per search (the server's default when none was asked for).
    pub ef: usize,
    /// Search calls made for the ANN figures.
    pub searches: usize,
    /// Wall time of the ANN searches at `ef`.
    pub search_seconds: f64,
    /// Wall time of the whole run (encoding, every search, exact search).
    pub total_seconds: f64,
}

/// ANN at one more ef against exact search (`--ef-sweep`).
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub ef: usize,
    pub map: ByKind,
    /// Exact macro mAP minus ANN macro mAP, per kind.
    pub map_lost: ByKind,
    pub ann_recall_at_10: f64,
    pub searches_per_second: f64,
}

/// Everything one `xling eval` produced.
pub struct Report<'a> {
    pub dataset: &'a Dataset,
    pub run: RunInfo,
    pub ann: Scores,
    /// Exact-search scores on the same embeddings and the comparison, with `--exact`.
    pub exact: Option<(Scores, Comparison)>,
    pub ef_sweep: Vec<SweepPoint>,
}

fn summary(scores: &Scores) -> Value {
    json!({
        "mono": scores.map.mono,
        "cross": scores.map.cross,
        "multi": scores.map.multi,
        "recall_at_10": scores.recall_at_10,
        "ndcg_at_10": scores.ndcg_at_10,
    })
}

fn setting_maps(scores: &Scores) -> BTreeMap<String, f64> {
    scores
        .settings
        .iter()
        .map(|s| (s.key.clone(), s.map))
        .collect()
}

impl Report<'_> {
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "summary": summary(&self.ann),
            "settings": setting_maps(&self.ann),
            "details": self.ann.settings,
            "language_bias": self.ann.language_bias,
            "run": self.run,
            "dataset": {
                "languages": self.dataset.languages,
                "candidates": self.dataset.candidates.len(),
                "questions": self.dataset.questions.len(),
            },
        });
        if let Some((exact, comparison)) = &self.exact {
            out["exact"] = json!({
                "summary": summary(exact),
                "settings": setting_maps(exact),
                "comparison": comparison,
            });
        }
        if !self.ef_sweep.is_empty() {
            out["ef_sweep"] = json!(self.ef_sweep);
        }
        out
    }

    pub fn to_json_pretty(&self) -> String {
        // A Value of strings, numbers and maps always serializes.
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }

    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let r = &self.run;
        let _ = writeln!(md, "# Retrieval evaluation\n");
        let _ = writeln!(
            md,
            "Data `{}` ({} languages, {} candidates, {} questions); {}; model `{}`; top-k {}; ef {}; \
             {} searches in {:.1} s ({:.1} s in all).\n",
            r.data,
            self.dataset.languages.len(),
            self.dataset.candidates.len(),
            self.dataset.questions.len(),
            r.mode,
            r.model,
            r.top_k,
            r.ef,
            r.searches,
            r.search_seconds,
            r.total_seconds,
        );
        md.push_str("## Summary (macro averages over settings)\n\n| | mono | cross | multi |\n|---|---|---|---|\n");
        row(&mut md, "mAP", &self.ann.map);
        row(&mut md, "Recall@10", &self.ann.recall_at_10);
        row(&mut md, "nDCG@10", &self.ann.ndcg_at_10);
        if let Some((exact, comparison)) = &self.exact {
            row(&mut md, "mAP, exact search", &exact.map);
            row(&mut md, "mAP lost to ANN", &comparison.map_lost);
        }
        self.matrix(&mut md);
        self.bias(&mut md);
        if let Some((_, comparison)) = &self.exact {
            let _ = writeln!(
                md,
                "\n## ANN against exact search\n\nRecall@10 of the ANN lists against exact \
                 lists on the same embeddings: {:.4}. (xling-index scans small language pools \
                 exactly; see docs/eval.md.)",
                comparison.ann_recall_at_10
            );
            if let Some((key, lost)) = &comparison.worst_setting {
                let _ = writeln!(md, "Largest mAP loss in one setting: {key}, {lost:.4}.");
            }
        }
        self.sweep(&mut md);
        md
    }

    fn matrix(&self, md: &mut String) {
        let langs = &self.dataset.languages;
        md.push_str("\n## mAP per setting (rows: question language, columns: pool)\n\n| |");
        for y in langs {
            let _ = write!(md, " {y} |");
        }
        md.push_str(" all |\n|---|");
        md.push_str(&"---|".repeat(langs.len() + 1));
        md.push('\n');
        for x in langs {
            let _ = write!(md, "| **{x}** |");
            for y in langs.iter().map(String::as_str).chain(["all"]) {
                match self.ann.map_of(&format!("{x}->{y}")) {
                    Some(v) => {
                        let _ = write!(md, " {v:.4} |");
                    }
                    None => md.push_str(" - |"),
                }
            }
            md.push('\n');
        }
    }

    fn sweep(&self, md: &mut String) {
        if self.ef_sweep.is_empty() {
            return;
        }
        md.push_str(
            "\n## ef sweep (ANN against exact search)\n\n| ef | multi mAP | mAP lost: mono | cross | \
             multi | ANN recall@10 | searches/s |\n|---|---|---|---|---|---|---|\n",
        );
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        for p in &self.ef_sweep {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.4} | {:.0} |",
                p.ef,
                cell(p.map.multi),
                cell(p.map_lost.mono),
                cell(p.map_lost.cross),
                cell(p.map_lost.multi),
                p.ann_recall_at_10,
                p.searches_per_second
            );
        }
    }

    fn bias(&self, md: &mut String) {
        let Some(b) = &self.ann.language_bias else {
            return;
        };
        let _ = writeln!(
            md,
            "\n## Language bias in the multilingual pool\n\nLanguages of the relevant answers \
             retrieved in the top {}: deviation from the expected shares (total variation) \
             {:.4}; the best-ranked answer is in the question's language for {:.1}% of \
             questions (unbiased: {:.1}%).\n\n| answer language | retrieved share | expected share |\n|---|---|---|",
            b.k,
            b.deviation,
            100.0 * b.same_language_first,
            100.0 * b.same_language_first_unbiased
        );
        for (language, expected) in &b.expected_share {
            let got = b.retrieved_share.get(language).copied().unwrap_or(0.0);
            let _ = writeln!(md, "| {language} | {got:.4} | {expected:.4} |");
        }
    }
}

fn row(md: &mut String, name: &str, values: &ByKind) {
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    let _ = writeln!(
        md,
        "| {name} | {} | {} | {} |",
        cell(values.mono),
        cell(values.cross),
        cell(values.multi)
    );
}
