//! The ECS encoder's per-file shortcuts (a file's constant document parts copied from its first
//! row, keys escaped once) write exactly what the encoder wrote before them: the SHA-256 of every
//! ECS line of every real file in ../shared/realdata is pinned to what the encoder of d4031e1
//! wrote (`event.id` is the Elasticsearch `_id`: a changed byte there would duplicate every
//! user's data), and rows of every profile interleaved across files and options match the
//! `serde_json` reference line for line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use salesforce_jwt::event_log_file::{EventLogFile, LogRecord};
use salesforce_jwt::format::OutputFormat;
use salesforce_jwt::format::ecs::EcsOptions;
use salesforce_jwt_mock::{Interval, MockLogFile};
use time::macros::datetime;

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every real file, each row's ECS line: with the default options and with an instance URL
/// and namespace, through one sink per option set.
#[test]
fn ecs_lines_of_every_real_file_are_byte_for_byte_those_of_d4031e1() {
    // SHA-256 of the lines the encoder of d4031e1 (before the constant parts and the
    // pre-escaped keys) wrote for the same rows: default options, then `options` below.
    const PINNED: [&str; 2] = [
        "6be244d4683d1b539743b48a6e69c2252b849bcd469c4c58c7b497f253d6815f",
        "40028965d47ccfbf4fb8dc30d2cfb9c8cd3b441919951d3a018dc0b27917eb06",
    ];
    let files = common::real_hourly_files();
    let pairs: Vec<(&EventLogFile, &LogRecord)> = files
        .iter()
        .flat_map(|(f, rows)| rows.iter().map(move |r| (f, r)))
        .collect();
    let options = [
        EcsOptions::default(),
        EcsOptions::default()
            .with_namespace("prod_eu")
            .unwrap()
            .with_instance_url("https://acme.my.salesforce.com"),
    ];
    let mut digests = Vec::new();
    for options in &options {
        let got = common::through_sink(OutputFormat::Ecs, options, &pairs);
        let expected = common::serde_reference(OutputFormat::Ecs, options, &pairs);
        common::assert_lines_equal(&got, &expected, "against serde_json");
        digests.push(sha256_hex(&got));
    }
    assert_eq!(digests, PINNED, "the ECS lines of the real files changed");
}

/// Rows of every profile, files interleaved row by row (each row a file change for the
/// per-file parts), in two sinks with different options: every line is the reference's.
#[test]
fn constant_parts_follow_every_change_of_file_and_options() {
    let mut files = Vec::new();
    for (n, event_type) in [
        "Login",
        "Logout",
        "API",
        "URI",
        "ApexExecution",
        "ApexCallout",
        "AuraRequest",
        "Report",
    ]
    .into_iter()
    .enumerate()
    {
        let log_date = datetime!(2024-03-11 00:00 UTC);
        let mock = MockLogFile::builder(event_type)
            .interval(Interval::Hourly)
            .log_date(log_date)
            .sequence(n as i32 + 1)
            .created_date(log_date)
            .rows(40)
            .seed(n as u64 + 7)
            .build();
        // Two files of each type: same `EventType`, another Id, LogDate and Sequence.
        for copy in 0..2i64 {
            files.push(common::mock_rows(
                &mock,
                common::hourly_log_file(
                    &format!("0AT50000000{n:02}{copy:02}AAA"),
                    event_type,
                    log_date + time::Duration::hours(copy),
                    n as i64 * 2 + copy,
                ),
            ));
        }
    }
    let longest = files.iter().map(|(_, rows)| rows.len()).max().unwrap_or(0);
    let mut pairs: Vec<(&EventLogFile, &LogRecord)> = Vec::new();
    for i in 0..longest {
        for (f, rows) in &files {
            if let Some(row) = rows.get(i) {
                pairs.push((f, row));
            }
        }
    }
    for options in [
        EcsOptions::default(),
        EcsOptions::default()
            .with_namespace("staging")
            .unwrap()
            .with_instance_url("https://acme--uat.sandbox.my.salesforce.com/"),
    ] {
        common::assert_lines_equal(
            &common::through_sink(OutputFormat::Ecs, &options, &pairs),
            &common::serde_reference(OutputFormat::Ecs, &options, &pairs),
            &format!("interleaved files, {options:?}"),
        );
    }
}
