//! ghz-compatible load generator and reports for xling
