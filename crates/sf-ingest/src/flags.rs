//! The library's messages speak of its own concepts (the checkpoint, `since`, an option's
//! name); a user of this binary sets those with flags and config keys, so the binary names them
//! where it shows a library error.

use std::fmt;

/// Library words and what a user of sf-ingest types instead, in the order they are replaced.
const FLAGS: &[(&str, &str)] = &[
    (
        "ObjectCollectorOptions::skip_unreadable_pages",
        "--skip-bad-files (skip_bad_files in a config file)",
    ),
    ("EventLogFileQuery::event_types", "--event-type"),
    ("`since`", "--since"),
    (
        "Use the checkpoint that belongs to",
        "Use the checkpoint (--state) that belongs to",
    ),
    (
        "its own checkpoint file",
        "its own checkpoint file (--state)",
    ),
    (
        "Point the checkpoint and the output at",
        "Point --state and --out (state and out in a config file) at",
    ),
    (
        "with a PostgreSQL checkpoint store",
        "with postgres:// state",
    ),
];

/// A library error as sf-ingest shows it: with its flags named.
pub struct Shown<'a, E: fmt::Display>(pub &'a E);

impl<E: fmt::Display> fmt::Display for Shown<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&with_flags(&self.0.to_string()))
    }
}

/// `text` with the library's words replaced by the flags that set them.
pub fn with_flags(text: &str) -> String {
    FLAGS
        .iter()
        .fold(text.to_string(), |text, (library, flag)| {
            text.replace(library, flag)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_options_become_the_flags_that_set_them() {
        let error = salesforce_jwt::Error::CheckpointOrg {
            checkpoint_org: "00D000000000001AAA".into(),
            org: "00D000000000002AAA".into(),
        };
        let shown = Shown(&error).to_string();
        assert!(
            shown.contains("Point --state and --out (state and out in a config file) at"),
            "{shown}"
        );
        assert!(shown.contains("new ones start from --since"), "{shown}");
        assert_eq!(
            with_flags("set ObjectCollectorOptions::skip_unreadable_pages"),
            "set --skip-bad-files (skip_bad_files in a config file)"
        );
    }
}
