//! `NdjsonFileSink`'s write path: rows and encoded lines spanning many write buffers, and
//! positions, rollbacks and drop behaving as if every row were written in place; rows reaching
//! the output only once the checkpoint records them, so that it never gets shorter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use salesforce_jwt::event_log::{
    EventLogFile, Interval, LogFileDecoder, LogRecord, NdjsonFileSink, NdjsonSink, RecordSink,
};
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
        sink.write_row(file, row).await.unwrap();
    }
    sink.commit_file(file).await.unwrap();
    sink.into_inner()
}

async fn write_all(sink: &mut NdjsonFileSink, file: &EventLogFile, rows: &[LogRecord]) {
    sink.begin_file(file).await.unwrap();
    for row in rows {
        sink.write_row(file, row).await.unwrap();
    }
}

/// Commits, then does what the collector does once the checkpoint save recorded the commit:
/// the position.
async fn commit_and_record(sink: &mut NdjsonFileSink, file: &EventLogFile) -> Option<u64> {
    let position = sink.commit_file(file).await.unwrap();
    sink.recorded(position).unwrap();
    sink.published().await.unwrap();
    position
}

fn len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[tokio::test]
async fn commit_reports_the_file_length_after_rows_spanning_several_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 3_500);
    let (second, second_rows) = log_file(2, 10);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();

    write_all(&mut sink, &first, &first_rows).await;
    let position = commit_and_record(&mut sink, &first).await;
    let mut want = expected(&first, &first_rows).await;
    assert!(want.len() > 3 << 20, "the rows span many 256 KiB buffers");
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(std::fs::read(&out).unwrap(), want);

    write_all(&mut sink, &second, &second_rows).await;
    let position = commit_and_record(&mut sink, &second).await;
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
    let committed = commit_and_record(&mut sink, &first).await.unwrap();

    // Several buffers written, and part of one not yet: none of it reaches the output.
    write_all(&mut sink, &second, &second_rows).await;
    assert_eq!(len(&out), committed);
    sink.rollback_file(&second).await.unwrap();
    let want = expected(&first, &first_rows).await;
    assert_eq!(std::fs::read(&out).unwrap(), want);
    assert_eq!(sink.committed_position(), Some(committed));

    // The file is delivered again after the rollback, right after the committed rows.
    write_all(&mut sink, &second, &second_rows).await;
    let position = commit_and_record(&mut sink, &second).await;
    let mut want = want;
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[tokio::test]
async fn dropping_the_sink_leaves_the_output_at_its_recorded_rows_and_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 5);
    let (second, second_rows) = log_file(2, 4_500);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    write_all(&mut sink, &first, &first_rows).await;
    let committed = commit_and_record(&mut sink, &first).await.unwrap();
    write_all(&mut sink, &second, &second_rows).await;
    drop(sink);

    // The uncommitted rows stayed in the staging file.
    let want = expected(&first, &first_rows).await;
    assert_eq!(std::fs::read(&out).unwrap(), want);
    // The lock went with the sink, and a resume goes on after the recorded rows.
    let mut sink = NdjsonFileSink::open(&out, Some(committed)).unwrap();
    assert_eq!(sink.committed_position(), Some(committed));
    assert_eq!(std::fs::read(&out).unwrap(), want);
    write_all(&mut sink, &second, &second_rows).await;
    commit_and_record(&mut sink, &second).await;
    let mut want = want;
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// A commit makes rows durable in a staging file; the output gets them only once the
/// checkpoint recorded the commit, and a rollback of the next file never touches it.
#[tokio::test]
async fn committed_rows_reach_the_output_only_once_recorded_and_it_never_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 1_500);
    let (second, second_rows) = log_file(2, 2_500);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    let mut lengths = vec![len(&out)];

    write_all(&mut sink, &first, &first_rows).await;
    lengths.push(len(&out));
    let position = sink.commit_file(&first).await.unwrap();
    lengths.push(len(&out));
    assert_eq!(len(&out), 0, "committed, not recorded yet");
    sink.recorded(position).unwrap();
    sink.published().await.unwrap();
    lengths.push(len(&out));
    assert_eq!(Some(len(&out)), position);

    // The next file spans many buffers and fails: the output never saw it.
    write_all(&mut sink, &second, &second_rows).await;
    lengths.push(len(&out));
    sink.rollback_file(&second).await.unwrap();
    lengths.push(len(&out));
    write_all(&mut sink, &second, &second_rows).await;
    let position = commit_and_record(&mut sink, &second).await;
    lengths.push(len(&out));
    assert_eq!(Some(len(&out)), position);
    assert!(
        lengths.windows(2).all(|w| w[0] <= w[1]),
        "the output got shorter: {lengths:?}"
    );
    let mut want = expected(&first, &first_rows).await;
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// The process dies after the checkpoint recorded a commit but before (or while) its rows were
/// appended: the restart appends them from the staging file, at the recorded place, and the
/// output never gets shorter.
#[tokio::test]
async fn a_restart_finishes_the_append_of_rows_the_checkpoint_recorded() {
    for appended_before_the_crash in [0usize, 1, 4096 + 17] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.ndjson");
        let (first, first_rows) = log_file(1, 40);
        let (second, second_rows) = log_file(2, 1_500);
        let mut sink = NdjsonFileSink::open(&out, None).unwrap();
        write_all(&mut sink, &first, &first_rows).await;
        let first_end = commit_and_record(&mut sink, &first).await.unwrap();
        write_all(&mut sink, &second, &second_rows).await;
        // The checkpoint is saved with this position, and the process dies.
        let recorded = sink.commit_file(&second).await.unwrap().unwrap();
        drop(sink);
        let mut want = expected(&first, &first_rows).await;
        assert_eq!(std::fs::read(&out).unwrap(), want);
        want.extend(expected(&second, &second_rows).await);
        // A crash in the middle of the append leaves a prefix of it.
        let torn = &want[..first_end as usize + appended_before_the_crash];
        std::fs::write(&out, torn).unwrap();

        let mut sink = NdjsonFileSink::open(&out, Some(recorded)).unwrap();
        assert_eq!(sink.committed_position(), Some(recorded));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            want,
            "{appended_before_the_crash} bytes appended before the crash"
        );
        // And it goes on after them.
        let (third, third_rows) = log_file(3, 30);
        write_all(&mut sink, &third, &third_rows).await;
        commit_and_record(&mut sink, &third).await;
        want.extend(expected(&third, &third_rows).await);
        assert_eq!(std::fs::read(&out).unwrap(), want);
    }
}

/// A second commit can be recorded while the first one's append still runs: a kill then
/// leaves both to append, in order.
#[tokio::test]
async fn a_restart_appends_two_recorded_commits_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 1_200);
    let (second, second_rows) = log_file(2, 30);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    write_all(&mut sink, &first, &first_rows).await;
    sink.commit_file(&first).await.unwrap();
    write_all(&mut sink, &second, &second_rows).await;
    let recorded = sink.commit_file(&second).await.unwrap();
    drop(sink);
    assert_eq!(len(&out), 0);

    let sink = NdjsonFileSink::open(&out, recorded).unwrap();
    assert_eq!(sink.committed_position(), recorded);
    let mut want = expected(&first, &first_rows).await;
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// The process dies after a commit whose checkpoint save never happened: its staged rows are
/// discarded on restart (the file is delivered again), and the output is left as it was.
#[tokio::test]
async fn staged_rows_the_checkpoint_never_recorded_are_discarded_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 40);
    let (second, second_rows) = log_file(2, 1_500);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    write_all(&mut sink, &first, &first_rows).await;
    let recorded = commit_and_record(&mut sink, &first).await.unwrap();
    write_all(&mut sink, &second, &second_rows).await;
    sink.commit_file(&second).await.unwrap();
    drop(sink);

    let mut sink = NdjsonFileSink::open(&out, Some(recorded)).unwrap();
    assert_eq!(sink.committed_position(), Some(recorded));
    let mut want = expected(&first, &first_rows).await;
    assert_eq!(std::fs::read(&out).unwrap(), want);
    write_all(&mut sink, &second, &second_rows).await;
    commit_and_record(&mut sink, &second).await;
    want.extend(expected(&second, &second_rows).await);
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// An output shorter than the checkpoint, with no staged rows that make up the difference (the
/// staging files keep the last commits, so they are gone too), was truncated or replaced:
/// refused, and left as it is.
#[tokio::test]
async fn an_output_missing_recorded_rows_no_staging_file_holds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.ndjson");
    let (first, first_rows) = log_file(1, 40);
    let mut sink = NdjsonFileSink::open(&out, None).unwrap();
    write_all(&mut sink, &first, &first_rows).await;
    let recorded = commit_and_record(&mut sink, &first).await.unwrap();
    drop(sink);
    std::fs::write(&out, b"").unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("events.ndjson.staging.") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let error = NdjsonFileSink::open(&out, Some(recorded))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no staging file holds the difference"),
        "{error}"
    );
    assert_eq!(len(&out), 0);
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
    let position = commit_and_record(&mut sink, &small).await;

    let mut want = expected(&first, &first_rows).await;
    want.extend(big_lines);
    want.extend(small_lines);
    assert_eq!(position, Some(want.len() as u64));
    assert_eq!(std::fs::read(&out).unwrap(), want);
}
