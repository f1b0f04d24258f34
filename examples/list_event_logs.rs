//! Lists the EventLogFile records whose LogDate falls in the last N days.
//!
//! ```sh
//! cargo run --example list_event_logs -- --days 7
//! ```
//!
//! Reads the six `SF_*` variables (see the README). One line per file: Id, event type,
//! interval, sequence, log date, created date, size.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use salesforce_jwt::datetime;
use salesforce_jwt::event_log_file::{EventLogFile, EventLogFileQuery};
use salesforce_jwt::{Error, JwtBearerClient, JwtBearerConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let days = match parse_days(std::env::args().skip(1)) {
        Ok(d) => d,
        Err(message) => {
            eprintln!("{message}\nusage: list_event_logs [--days N]   (default 7)");
            return ExitCode::from(2);
        }
    };
    match list(days).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_days(mut args: impl Iterator<Item = String>) -> Result<u64, String> {
    let mut days = 7;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--days" => {
                let value = args.next().ok_or("--days needs a number")?;
                days = value
                    .parse()
                    .map_err(|_| format!("--days {value:?} is not a whole number of days"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(days)
}

async fn list(days: u64) -> Result<(), Error> {
    let client = JwtBearerClient::new(JwtBearerConfig::from_env()?)?;
    let since = client.clock().now() - Duration::from_secs(days * 24 * 3600);
    let query = EventLogFileQuery::new().log_date_from(since);
    let files: Vec<EventLogFile> = client.event_log_files(&query).try_collect().await?;
    println!(
        "{:<18}  {:<28}  {:<8}  {:>3}  {:<28}  {:<28}  {:>12}",
        "Id", "EventType", "Interval", "Seq", "LogDate", "CreatedDate", "Bytes"
    );
    for f in &files {
        println!(
            "{:<18}  {:<28}  {:<8}  {:>3}  {:<28}  {:<28}  {:>12}",
            f.id,
            f.event_type.as_str(),
            f.interval_or_daily().as_str(),
            f.sequence,
            datetime::format(f.log_date),
            datetime::format(f.created_date),
            f.log_file_length
        );
    }
    eprintln!("{} files with LogDate in the last {days} days", files.len());
    Ok(())
}
