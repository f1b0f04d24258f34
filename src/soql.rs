//! SOQL literals that cannot be injected.
//!
//! No value from outside the crate reaches a query except through these functions: a string
//! always comes out as one complete single-quoted literal, whatever it holds.
//!
//! ```
//! use salesforce_jwt::soql;
//! use salesforce_jwt::time::macros::datetime;
//!
//! let name = "O'Brien";
//! let query = format!(
//!     "SELECT Id FROM User WHERE LastName = {} AND CreatedDate > {}",
//!     soql::string(name),
//!     soql::datetime(datetime!(2025-06-10 12:00 UTC)),
//! );
//! assert_eq!(
//!     query,
//!     r"SELECT Id FROM User WHERE LastName = 'O\'Brien' AND CreatedDate > 2025-06-10T12:00:00Z"
//! );
//! ```

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::macros::format_description;

/// A single-quoted SOQL string literal. Backslash and quote are escaped, and so are the control
/// characters SOQL has escapes for, so the literal stays on one line.
///
/// ```
/// assert_eq!(salesforce_jwt::soql::string("O'Brien\\"), r"'O\'Brien\\'");
/// ```
pub fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Other control characters have no SOQL escape and no place in a filter value.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// An unquoted SOQL datetime literal in UTC, `2024-03-11T15:00:00Z`. Fractions of a second are
/// dropped: SOQL datetime literals have whole seconds.
pub fn datetime(value: OffsetDateTime) -> String {
    let utc = value.to_offset(time::UtcOffset::UTC);
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    // Formatting only fails for years beyond 9999, which Salesforce does not store either.
    utc.format(&format)
        .unwrap_or_else(|_| "9999-12-31T23:59:59Z".to_string())
}

/// An unquoted SOQL datetime literal in UTC with milliseconds, `2024-07-08T07:26:18.239Z`:
/// [`datetime::rfc3339_millis`](crate::datetime::rfc3339_millis), its home now.
#[deprecated(
    since = "0.1.0",
    note = "moved to salesforce_jwt::datetime::rfc3339_millis"
)]
pub use crate::datetime::rfc3339_millis as datetime_millis;

/// A parenthesised list of string literals for `IN (...)`, `('Login', 'API')`.
pub fn string_list<I, S>(values: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = String::from("(");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", string(v.as_ref()));
    }
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn literals() {
        assert_eq!(string("Login"), "'Login'");
        assert_eq!(string("a'b\\c\nd"), r"'a\'b\\c\nd'");
        assert_eq!(
            datetime(datetime!(2024-03-11 16:00:00.123 +01:00)),
            "2024-03-11T15:00:00Z"
        );
        assert_eq!(string_list(["Login", "API"]), "('Login', 'API')");
    }
}
