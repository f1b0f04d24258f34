//! The output encoding: the library's [`OutputFormat`] (plain NDJSON or Elastic Common Schema),
//! chosen by `--format` or `format =`.

pub use salesforce_jwt::format::OutputFormat;
