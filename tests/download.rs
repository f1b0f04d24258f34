//! Streaming log file downloads: identity and gzip bodies, chunk boundaries, truncation, a
//! connection that breaks mid-body, and concurrent downloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{StreamExt as _, TryStreamExt as _};
use salesforce_jwt::event_log_file::{EventLogFile, EventType, LogRecord};
use salesforce_jwt::{Error, JwtBearerClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use wiremock::matchers::{header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CSV: &str = "\"EVENT_TYPE\",\"TIMESTAMP\",\"RUN_TIME\",\"URI\",\"USER_NAME\"\n\
\"URI\",\"20240311150000.123\",\"42\",\"/home/home.jsp, /apex/x\",\"zoë@example.com\"\n\
\"URI\",\"20240311150001.000\",\"7\",\"/lightning/r/Account/001/view\",\"\"\"quoted\"\"\"\n\
\"URI\",\"20240311150002.000\",\"\",\"multi\nline\",\"東京\"\n";

fn file(id: &str, length: u64) -> EventLogFile {
    serde_json::from_value(serde_json::json!({
        "Id": id, "EventType": "URI", "LogDate": "2024-03-11T00:00:00.000+0000",
        "CreatedDate": "2024-03-12T03:00:00.000+0000", "Interval": "Daily", "Sequence": 0,
        "LogFileLength": length as f64,
        "LogFile": format!("/services/data/v64.0/sobjects/EventLogFile/{id}/LogFile"),
        "LogFileFieldNames": "EVENT_TYPE,TIMESTAMP,RUN_TIME,URI,USER_NAME",
        "LogFileFieldTypes": "String,String,Number,String,String"
    }))
    .unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn check_rows(rows: &[LogRecord]) {
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get("URI"), Some("/home/home.jsp, /apex/x"));
    assert_eq!(rows[0].get("USER_NAME"), Some("zoë@example.com"));
    assert_eq!(rows[1].get("USER_NAME"), Some("\"quoted\""));
    assert_eq!(rows[2].get("URI"), Some("multi\nline"));
    assert_eq!(rows[2].get("RUN_TIME"), None);
}

/// Downloads `f` and collects its rows, failing the test on any error.
async fn all_rows(client: &JwtBearerClient, f: &EventLogFile) -> Vec<LogRecord> {
    client
        .log_records(f)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

async fn wiremock_client(server: &MockServer) -> (JwtBearerClient, common::TokenEndpoint) {
    let clock = common::manual_clock();
    let tokens = common::TokenEndpoint::new(&clock, server.uri());
    tokens.mount(server).await;
    (
        common::client(common::config(&server.uri()), &clock),
        tokens,
    )
}

#[tokio::test]
async fn identity_body_streams_into_rows() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let f = file("0AT000000000001AAA", CSV.len() as u64);
    Mock::given(method("GET"))
        .and(path(f.log_file.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(CSV.as_bytes()))
        .expect(1)
        .mount(&server)
        .await;
    let rows = all_rows(&client, &f).await;
    check_rows(&rows);
}

#[tokio::test]
async fn gzip_is_requested_and_decoded() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let f = file("0AT000000000002AAA", CSV.len() as u64);
    Mock::given(method("GET"))
        .and(path(f.log_file.as_str()))
        .and(header_regex("accept-encoding", "gzip"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Encoding", "gzip")
                .set_body_bytes(gzip(CSV.as_bytes())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let rows = all_rows(&client, &f).await;
    check_rows(&rows);
}

#[tokio::test]
async fn a_body_shorter_than_log_file_length_is_a_retryable_error() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let f = file("0AT000000000003AAA", CSV.len() as u64 + 100);
    Mock::given(method("GET"))
        .and(path(f.log_file.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(CSV.as_bytes()))
        .mount(&server)
        .await;
    let results: Vec<Result<LogRecord, Error>> =
        client.log_records(&f).await.unwrap().collect().await;
    let last = results.last().unwrap();
    match last {
        Err(
            e @ Error::TruncatedLogFile {
                id,
                received,
                expected,
            },
        ) => {
            assert_eq!(id, "0AT000000000003AAA");
            assert_eq!(*received, CSV.len() as u64);
            assert_eq!(*expected, CSV.len() as u64 + 100);
            assert!(e.is_retryable());
        }
        other => panic!("expected TruncatedLogFile, got {other:?}"),
    }
}

#[tokio::test]
async fn an_empty_file_has_no_rows_and_no_error() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let f = file("0AT000000000004AAA", 0);
    Mock::given(method("GET"))
        .and(path(f.log_file.as_str()))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let rows = all_rows(&client, &f).await;
    assert!(rows.is_empty());
}

#[tokio::test]
async fn a_log_file_path_off_the_instance_is_refused() {
    let server = MockServer::start().await;
    let (client, tokens) = wiremock_client(&server).await;
    let mut f = file("0AT000000000005AAA", 10);
    f.log_file = "https://evil.example/steal".into();
    let err = client.log_records(&f).await.unwrap_err();
    assert!(matches!(err, Error::ForeignUrl { .. }), "{err:?}");
    assert_eq!(tokens.issued(), 0, "not even a token was fetched for it");
}

/// A one-shot HTTP/1.1 server that writes `head` and then `body` in pieces of `piece` bytes,
/// flushing each, and closes the connection after `send` bytes of the body.
async fn raw_server(head: String, body: Vec<u8>, piece: usize, send: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.unwrap();
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buffer[..n]);
        }
        socket.write_all(head.as_bytes()).await.unwrap();
        for chunk in body[..send].chunks(piece) {
            if socket.write_all(chunk).await.is_err() {
                return;
            }
            socket.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        let _ = socket.shutdown().await;
    });
    format!("http://{address}")
}

async fn client_for_instance(instance: &str) -> (JwtBearerClient, MockServer) {
    let token_server = MockServer::start().await;
    let clock = common::manual_clock();
    common::TokenEndpoint::new(&clock, instance.to_string())
        .mount(&token_server)
        .await;
    let config = common::config_builder(&token_server.uri())
        .instance_url(instance)
        .build()
        .unwrap();
    (common::client(config, &clock), token_server)
}

#[tokio::test]
async fn a_gzip_stream_split_across_many_chunks_decodes() {
    let compressed = gzip(CSV.as_bytes());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        compressed.len()
    );
    let len = compressed.len();
    let instance = raw_server(head, compressed, 3, len).await;
    let (client, _token_server) = client_for_instance(&instance).await;
    let f = file("0AT000000000006AAA", CSV.len() as u64);
    let rows = all_rows(&client, &f).await;
    check_rows(&rows);
}

#[tokio::test]
async fn a_connection_that_breaks_mid_body_is_a_retryable_error() {
    let body = CSV.as_bytes().to_vec();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let instance = raw_server(head, body, 16, CSV.len() / 2).await;
    let (client, _token_server) = client_for_instance(&instance).await;
    let f = file("0AT000000000007AAA", CSV.len() as u64);
    let results: Vec<Result<LogRecord, Error>> =
        client.log_records(&f).await.unwrap().collect().await;
    let last = results.last().expect("at least the error");
    match last {
        Err(e @ Error::Transport { .. }) => assert!(e.is_retryable(), "{e}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(results.iter().filter(|r| r.is_err()).count() == 1);
}

#[tokio::test]
async fn concurrent_downloads_keep_file_and_row_order() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let served = Arc::new(AtomicUsize::new(0));
    let mut files = Vec::new();
    for i in 0..6u32 {
        let id = format!("0AT00000000000{i}BBB");
        let csv = format!(
            "\"EVENT_TYPE\",\"N\"\n{}",
            (0..50)
                .map(|n| format!("\"URI\",\"{i}-{n}\"\n"))
                .collect::<String>()
        );
        let f = file(&id, csv.len() as u64);
        // Later files answer sooner, so order can only come from the stream, not the server.
        Mock::given(method("GET"))
            .and(path(f.log_file.as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_bytes(csv.into_bytes())
                    .set_delay(std::time::Duration::from_millis(60 - 10 * u64::from(i))),
            )
            .expect(1)
            .mount(&server)
            .await;
        files.push(f);
        served.fetch_add(1, Ordering::SeqCst);
    }
    let mut stream = Box::pin(client.download_concurrently(files.clone(), 3));
    let mut seen = Vec::new();
    while let Some(file_rows) = stream.next().await {
        let id = file_rows.file.id.clone();
        let rows: Vec<LogRecord> = file_rows.try_collect().await.unwrap();
        let values: Vec<String> = rows
            .iter()
            .map(|r| r.get("N").unwrap().to_string())
            .collect();
        let i = files.iter().position(|f| f.id == id).unwrap();
        assert_eq!(
            values,
            (0..50).map(|n| format!("{i}-{n}")).collect::<Vec<_>>()
        );
        seen.push(id);
    }
    assert_eq!(seen, files.iter().map(|f| f.id.clone()).collect::<Vec<_>>());
    assert_eq!(files[0].event_type, EventType::Uri);
}

/// The files after the one being consumed download meanwhile, `concurrency` at once with it,
/// without the consumer reading anything: their tasks do not wait to be asked for.
#[tokio::test]
async fn downloads_run_ahead_of_the_file_being_consumed() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let mut files = Vec::new();
    for i in 0..6u32 {
        let id = format!("0AT00000000000{i}CCC");
        let csv = format!("\"EVENT_TYPE\",\"N\"\n\"URI\",\"{i}\"\n");
        let f = file(&id, csv.len() as u64);
        Mock::given(method("GET"))
            .and(path(f.log_file.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(csv.into_bytes()))
            .mount(&server)
            .await;
        files.push(f);
    }
    let mut stream = Box::pin(client.download_concurrently(files.clone(), 3));
    let first = stream.next().await.unwrap();
    let downloads = || async {
        let requests = server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .filter(|r| r.url.path().ends_with("/LogFile"))
            .count()
    };
    // The first file and the two behind it; the stream is not polled again meanwhile.
    let ran_ahead = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while downloads().await < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        ran_ahead.is_ok(),
        "only {} of the 3 downloads started while the consumer held the first file",
        downloads().await
    );
    let rows: Vec<LogRecord> = first.try_collect().await.unwrap();
    assert_eq!(rows.len(), 1);
}

/// A download task that never finishes (its runtime shut down under it) must end the file with
/// a retryable error: an empty or partial file that looks complete would be committed.
#[tokio::test]
async fn a_download_aborted_with_its_runtime_ends_the_file_with_a_retryable_error() {
    let server = MockServer::start().await;
    let (client, _tokens) = wiremock_client(&server).await;
    let f = file("0AT000000000009AAA", CSV.len() as u64);
    Mock::given(method("GET"))
        .and(path(f.log_file.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(CSV.as_bytes()))
        .mount(&server)
        .await;
    // The download task is spawned on a runtime that is shut down before it runs.
    let files = vec![f.clone()];
    let mut records = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let records = runtime.block_on(async {
            Box::pin(client.download_concurrently(files, 1))
                .next()
                .await
                .unwrap()
        });
        drop(runtime);
        records
    })
    .join()
    .unwrap();
    let err = match records.next().await {
        Some(Err(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(
        matches!(err, Error::DownloadAborted { ref id } if *id == f.id),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(records.next().await.is_none());
}

/// Rows decoded while the body is still arriving reach the consumer (in batches, in order)
/// before the download ends, and a download that then dies still ends the file with a
/// retryable error, never a clean end after the rows that arrived.
#[tokio::test]
async fn rows_before_a_download_dies_arrive_in_order_and_the_file_ends_aborted() {
    let rows = 3000usize;
    let csv = format!(
        "\"EVENT_TYPE\",\"N\"\n{}",
        (0..rows)
            .map(|n| format!("\"URI\",\"{n}\"\n"))
            .collect::<String>()
    );
    // The server sends the first 2,000 rows and then stalls with the connection open.
    let sent = csv.match_indices('\n').nth(2000).unwrap().0 + 1;
    // A std listener, registered with the server thread's own runtime: this test's runtime is
    // blocked below while the download runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let instance = format!("http://{}", listener.local_addr().unwrap());
    let body = csv.clone().into_bytes();
    let (stalled_tx, stalled_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(&body[..sent]).await.unwrap();
            socket.flush().await.unwrap();
            // Held open until the test is done with it.
            let _ = tokio::task::spawn_blocking(move || stalled_rx.recv()).await;
        });
    });
    let (client, _token_server) = client_for_instance(&instance).await;
    let mut f = file("0AT000000000010AAA", csv.len() as u64);
    f.log_file_field_names = Some("EVENT_TYPE,N".into());
    f.log_file_field_types = Some("String,String".into());
    let files = vec![f.clone()];
    let (mut records, seen) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let mut records = Box::pin(client.download_concurrently(files, 1))
                .next()
                .await
                .unwrap();
            let mut seen = Vec::new();
            while seen.len() < 2000 {
                let row = records.next().await.unwrap().unwrap();
                seen.push(row.get("N").unwrap().to_string());
            }
            (records, seen)
        });
        // The download task dies with its runtime, mid-body.
        drop(runtime);
        result
    })
    .join()
    .unwrap();
    // Rows already handed over before the task died still come, then the error.
    let mut seen = seen;
    let err = loop {
        match records.next().await {
            Some(Ok(row)) => seen.push(row.get("N").unwrap().to_string()),
            Some(Err(e)) => break e,
            None => panic!("the file ended cleanly after {} rows", seen.len()),
        }
    };
    assert!(seen.len() <= 2000);
    assert_eq!(
        seen,
        (0..seen.len()).map(|n| n.to_string()).collect::<Vec<_>>()
    );
    assert!(
        matches!(err, Error::DownloadAborted { ref id } if *id == f.id),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(records.next().await.is_none());
    stalled_tx.send(()).unwrap();
}
