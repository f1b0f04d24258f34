//! Log lines on stderr: text or JSON, at the level `-q`/`-v` choose (`RUST_LOG` wins if set).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::cli::{Cli, LogFormat};
use crate::progress::{BarsWriter, Display};

/// Sets up logging and chooses the progress display: bars only for text logs on a terminal.
pub fn init(cli: &Cli) -> Display {
    let level = cli.level();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Other crates (the HTTP stack) only when something is wrong.
        EnvFilter::new(format!("warn,sf_ingest={level},salesforce_jwt={level}"))
    });
    let terminal = std::io::stderr().is_terminal();
    // Rows printed on the same terminal would tear the bars apart.
    let rows_on_terminal =
        cli.config.is_none() && cli.out.is_none() && std::io::stdout().is_terminal();
    let display = if terminal
        && !rows_on_terminal
        && cli.log_format == LogFormat::Text
        && level >= tracing::Level::INFO
    {
        Display::bars()
    } else {
        Display::Lines
    };
    let writer = match &display {
        Display::Bars(multi) => BoxMakeWriter::new(BarsWriter(multi.clone())),
        Display::Lines => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        // Escape codes only where a person reads them, not in captured logs.
        LogFormat::Text => builder.with_ansi(terminal).init(),
    }
    display
}
