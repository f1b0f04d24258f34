//! SOQL literals cannot be escaped from, and the EventLogFile query renders as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use salesforce_jwt::event_log_file::{Cursor, EventLogFileQuery, EventType, IntervalFilter};
use salesforce_jwt::soql;
use time::macros::datetime;

/// Scans a SOQL string literal the way Salesforce's lexer does: from the opening quote, a
/// backslash takes the next character, a bare quote ends the literal. Returns the byte index
/// just past the literal.
fn literal_end(s: &str) -> Option<usize> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '\'' {
        return None;
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '\'' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// Undoes SOQL's escapes.
fn unescape(literal: &str) -> String {
    let inner = &literal[1..literal.len() - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #[test]
    fn no_string_can_end_the_literal(value in any::<String>()) {
        let literal = soql::string(&value);
        // The literal ends exactly at its last character: nothing after it could be read as SOQL.
        prop_assert_eq!(literal_end(&literal), Some(literal.len()));
        // Nothing is lost but control characters SOQL has no escape for.
        let kept: String = value.chars().filter(|c| !c.is_control() || "\n\r\t\u{8}\u{c}".contains(*c)).collect();
        prop_assert_eq!(unescape(&literal), kept);
    }

    #[test]
    fn hostile_strings_stay_inside(prefix in "[a-z]{0,5}", tail in "[ a-zA-Z0-9=()]{0,20}") {
        let value = format!("{prefix}' OR Id != '' OR Name = '\\{tail}");
        let literal = soql::string(&value);
        prop_assert_eq!(literal_end(&literal), Some(literal.len()));
    }

    #[test]
    fn list_items_each_stay_inside(values in proptest::collection::vec(any::<String>(), 1..5)) {
        let list = soql::string_list(&values);
        prop_assert!(list.starts_with('(') && list.ends_with(')'));
        let mut rest = &list[1..list.len() - 1];
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                prop_assert!(rest.starts_with(", "));
                rest = &rest[2..];
            }
            let end = literal_end(rest).expect("a literal");
            prop_assert_eq!(&rest[..end], soql::string(v));
            rest = &rest[end..];
        }
        prop_assert!(rest.is_empty());
    }
}

#[test]
fn event_log_file_query_renders_every_filter() {
    let query = EventLogFileQuery::new()
        .event_type(EventType::Login)
        .event_type("O'Hara")
        .interval(IntervalFilter::Daily)
        .log_date_from(datetime!(2024-03-01 00:00 UTC))
        .log_date_before(datetime!(2024-03-02 00:00 UTC))
        .created_date_from(datetime!(2024-02-28 12:00 UTC))
        .after(Cursor {
            created_date: datetime!(2024-03-01 05:06:07 UTC),
            id: "0AT'x".into(),
        })
        .limit(10);
    assert_eq!(
        query.to_soql(),
        "SELECT Id, EventType, LogDate, CreatedDate, Interval, Sequence, LogFileLength, LogFile, \
         ApiVersion, LogFileContentType, LogFileFieldNames, LogFileFieldTypes FROM EventLogFile \
         WHERE EventType IN ('Login', 'O\\'Hara') AND Interval = 'Daily' \
         AND LogDate >= 2024-03-01T00:00:00Z AND LogDate < 2024-03-02T00:00:00Z \
         AND CreatedDate >= 2024-02-28T12:00:00Z \
         AND (CreatedDate > 2024-03-01T05:06:07Z OR (CreatedDate = 2024-03-01T05:06:07Z AND Id > '0AT\\'x')) \
         ORDER BY CreatedDate, Id LIMIT 10"
    );
    assert_eq!(
        EventLogFileQuery::new()
            .interval(IntervalFilter::Hourly)
            .to_count_soql(),
        "SELECT COUNT() FROM EventLogFile WHERE Interval = 'Hourly'"
    );
    assert_eq!(
        EventLogFileQuery::new().to_soql(),
        format!(
            "SELECT {} FROM EventLogFile ORDER BY CreatedDate, Id",
            salesforce_jwt::event_log_file::EVENT_LOG_FILE_FIELDS
        )
    );
}
