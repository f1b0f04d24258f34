//! `NdjsonFileSink`'s write path: rows and encoded lines spanning many write buffers, and
//! positions, rollbacks and drop behaving as if every row were written in place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use salesforce_jwt::collect::{Row, Sink, Unit};
use salesforce_jwt::event_log_file::{EventLogFile, Interval, LogFileDecoder, LogRecord};
use salesforce_jwt::sink::{NdjsonFileSink, NdjsonSink};
use time::macros::datetime;

/// Rows of about 1 KiB each: `rows` of them span about `rows / 256` of the sink's 256 KiB
/// write buffers.
fn log_file(number: u32, rows: usize) -> (EventLogFile, Vec<LogRecord>) {
    let mut csv = String::from("\"EVENT_TYPE\",\"REQUEST_ID\",\"USER_ID\",\"URI\"\n");
    for i in 0..rows {
        let padding = "x".repeat(900 + i % 97);
        csv.push_str(&format!(
            "\"URI\",\"4-{number}-{i}\",\"005000000000001\",\"/apex/page{i}?q={padding}\"\n"
        ));
    }
    let id = format!("0AT30000000{number:04}AAA");
    let file = EventLogFile {
        log_file: format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
        id,
        event_type: "URI".into(),
        log_date: datetime!(2025-06-01 00:00 UTC),
        created_date: datetime!(2025-06-02 03:00 UTC),
        interval: Some(Interval::Daily),
        sequence: 0,
        log_file_length: csv.len() as u64,
        api_version: Some(64.0),
        log_file_content_type: Some("CSV".into()),
        log_file_field_names: None,
        log_file_field_types: None,
    };
    let mut decoder = LogFileDecoder::for_file(&file);
    let mut records = Vec::new();
    decoder.feed(csv.as_bytes(), &mut records).unwrap();
    decoder.finish(&mut records).unwrap();
    assert_eq!(records.len(), rows);
    (file, records)
}

/// What `NdjsonSink` writes for the rows: the bytes the file sink must hold.
async fn expected(file: &EventLogFile, rows: &[LogRecord]) -> Vec<u8> {
    let mut sink = NdjsonSink::new(Vec::new());
    for row in rows {
        sink.write(Row::LogFile { file, record: row })
            .await
            .unwrap();
    }
    sink.commit(&Unit::LogFile(file)).await.unwrap();
    sink.into_inner()
}

async fn write_all(sink: &mut NdjsonFileSink, file: &EventLogFile, rows: &[LogRecord]) {
    sink.begin(&Unit::LogFile(file)).await.unwrap();
    for row in rows {
        sink.write(Row::LogFile { file, record: row })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn commit_reports_the_file_length_after_rows_spanning_several_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 3_500);
    let (second, second_rows) = log_file(2, 10);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();

    write_all(&mut sink, &first, &first_rows).await;
    let position = sink.commit(&Unit::LogFile(&first)).await.unwrap();
    let mut want = expected(&first, &first_rows).await;
    assert!(want.len() > 3 << 20, "the rows span many 256 KiB buffers");
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(std::fs::read(&out).unwrap(), want);

    write_all(&mut sink, &second, &second_rows).await;
    let position = sink.commit(&Unit::LogFile(&second)).await.unwrap();
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(sink.committed_position(), position);
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[tokio::test]
async fn rollback_after_rows_spanning_several_buffers_cuts_back_to_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 20);
    let (second, second_rows) = log_file(2, 3_500);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    write_all(&mut sink, &first, &first_rows).await;
    let committed = sink.commit(&Unit::LogFile(&first)).await.unwrap().unwrap();

    // Several buffers written to the file, and part of one not yet.
    write_all(&mut sink, &second, &second_rows).await;
    sink.rollback(&Unit::LogFile(&second)).await.unwrap();
    let want = expected(&first, &first_rows).await;
    assert_eq!(std::fs::read(&out).unwrap(), want);
    assert_eq!(sink.committed_position(), Some(committed));

    // The file is delivered again after the rollback, right after the committed rows.
    write_all(&mut sink, &second, &second_rows).await;
    let position = sink.commit(&Unit::LogFile(&second)).await.unwrap();
    let mut want = want;
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[tokio::test]
async fn dropping_the_sink_keeps_what_was_committed_only_and_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 5);
    let (second, second_rows) = log_file(2, 4_500);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    write_all(&mut sink, &first, &first_rows).await;
    let committed = sink.commit(&Unit::LogFile(&first)).await.unwrap().unwrap();
    write_all(&mut sink, &second, &second_rows).await;
    drop(sink);

    // The committed file is in the output, and nothing of the uncommitted one ever was.
    let want = expected(&first, &first_rows).await;
    assert_eq!(std::fs::read(&out).unwrap(), want);
    // The lock went with the sink, and a resume goes on from the committed end.
    let sink = NdjsonFileSink::open(&out, Some(committed)).unwrap();
    assert_eq!(sink.committed_position(), Some(committed));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        expected(&first, &first_rows).await
    );
}

/// Lines handed over in one piece larger than the sink's write buffer go around it; what the
/// buffer held before them must still come first.
#[tokio::test]
async fn encoded_lines_larger_than_the_buffer_land_in_order_at_the_committed_position() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 30);
    let (big, big_rows) = log_file(2, 1_500);
    let (small, small_rows) = log_file(3, 40);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    assert!(sink.encoded_format().is_some());
    // Rows in the buffer, then encoded lines too large for it, then some that fit.
    write_all(&mut sink, &first, &first_rows).await;
    let big_lines = expected(&big, &big_rows).await;
    assert!(big_lines.len() > 1 << 20, "more than one buffer at once");
    sink.write_encoded(&big, &big_lines).await.unwrap();
    let small_lines = expected(&small, &small_rows).await;
    sink.write_encoded(&small, &small_lines).await.unwrap();
    let position = sink.commit(&Unit::LogFile(&small)).await.unwrap();

    let mut want = expected(&first, &first_rows).await;
    want.extend(big_lines);
    want.extend(small_lines);
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(std::fs::read(&out).unwrap(), want);
}
