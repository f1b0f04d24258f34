//! The command line.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// Collects Salesforce security logs (EventLogFile, Real-Time Event Monitoring objects,
/// SetupAuditTrail) exactly once, as NDJSON or ECS.
///
/// One org from the six SF_* variables (SF_AUDIENCE_URL, SF_CLIENT_KEY_PATH or
/// SF_CLIENT_KEY_PEM, SF_USERNAME, SF_CLIENT_ID, SF_INSTANCE_URL, SF_TOKEN_URL), any number from
/// --config FILE, or, with neither, an embedded demo org.
///
/// Exit codes: 0 done (or stopped by SIGINT/SIGTERM with checkpoints consistent), 1 an org
/// failed, 2 usage or configuration error, 128+N a second signal N ended the run at once.
#[derive(Debug, Parser)]
#[command(name = "sf-ingest", version, about, long_about)]
pub struct Cli {
    /// TOML file listing the orgs to collect (see sf-ingest.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// NDJSON output (default stdout); with a file, rows are exactly-once across kills; with
    /// postgres://USER:PASSWORD@HOST/DB (and the same --state), rows go to the table
    /// salesforce_events; with http(s)://HOST:PORT (and --state), ECS documents go to
    /// Elasticsearch/OpenSearch data streams logs-DATASET-NAMESPACE, credentials from
    /// ES_API_KEY or ES_USERNAME and ES_PASSWORD. Not with --config, where each org names its
    /// own.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub out: Option<PathBuf>,

    /// With an Elasticsearch --out: documents the cluster refuses for good (a mapping
    /// conflict) are appended to FILE and the run goes on, instead of stopping the org.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub dead_letter: Option<PathBuf>,

    /// With an https Elasticsearch --out: PEM file of the CA that signed the cluster's
    /// certificate, trusted beside the system's roots.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub es_ca_file: Option<PathBuf>,

    /// Checkpoint file (default FILE.checkpoint.json beside --out, else in memory), or
    /// postgres://USER:PASSWORD@HOST/DB: checkpoints with leases, shared by any number of
    /// sf-ingest processes. Not with --config.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub state: Option<PathBuf>,

    /// How long a claimed (org, source) stays claimed without renewal, with postgres:// state:
    /// after a collector dies, others take its orgs over this long after its last renewal
    /// [default: 30].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(3..))]
    pub lease_ttl: Option<u64>,

    /// What to collect (repeatable; default EventLogFile): EventLogFile, a Real-Time Event
    /// Monitoring object (LoginEvent, ApiEvent...), a threat-detection store, SetupAuditTrail,
    /// or an object of your own as NAME:big or NAME:standard.
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,

    /// Only this event type (repeatable), e.g. Login.
    #[arg(long = "event-type", value_name = "TYPE")]
    pub event_types: Vec<String>,

    /// Which files: auto (each event once: hourly files where the org publishes them, else
    /// daily), daily, hourly or all (both copies: events repeat) [default: auto].
    #[arg(long, value_name = "auto|daily|hourly|all")]
    pub interval: Option<String>,

    /// How far back a first run starts: 36h, 7d [default: 1d; 7d in the demo].
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// Files of one org downloaded at once, 1 to 64 [default: 4].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Downloads in flight across all orgs: each file download holds one of these slots while
    /// it downloads and is written [default: 16].
    #[arg(long, value_name = "N")]
    pub max_downloads: Option<usize>,

    /// Output encoding: ndjson or ecs [default: ndjson].
    #[arg(long, value_name = "ndjson|ecs")]
    pub format: Option<String>,

    /// `data_stream.namespace` of ECS documents (--format ecs): lower-case letters, digits
    /// and _ [default: default].
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,

    /// Record a file that cannot be collected (malformed, truncated for good, gone), or a
    /// real-time object page that cannot be read, in the checkpoint and go on, instead of
    /// stopping that org.
    #[arg(long)]
    pub skip_bad_files: bool,

    /// Stop sending API requests to an org while its usage (Sforce-Limit-Info) is at or above
    /// PERCENT of its daily limit, 1 to 100 [default: 50]. A one-shot run ends that org's pass
    /// (exit 0); with --follow the org is paused until its usage falls.
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub api_budget: Option<i64>,

    /// Poll every SECONDS, forever; without it, one pass per org.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub follow: Option<u64>,

    /// Check the configuration (key files included) and exit: 0 valid, 2 invalid.
    #[arg(long)]
    pub check: bool,

    /// Log lines as text or as JSON objects (for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log detail (-q warnings, -qq errors only).
    #[arg(short, long, action = ArgAction::Count)]
    pub quiet: u8,

    /// Serve Prometheus metrics at /metrics and a liveness check at /healthz on HOST:PORT, like
    /// 127.0.0.1:9464 (port 0 picks a free port, logged); wins over metrics_addr in --config.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools besides collecting.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show (read-only) or rewind the checkpoints of a --state file or postgres:// database.
    #[command(subcommand)]
    Checkpoint(crate::checkpoint_cmd::CheckpointCommand),
    /// GET a URL and exit 0 on 200, else 1: a container HEALTHCHECK without curl.
    Healthcheck {
        /// What to check.
        #[arg(default_value = crate::metrics::DEFAULT_HEALTH_URL)]
        url: String,
    },
    /// Elasticsearch/OpenSearch output: `sf-ingest elasticsearch setup --out URL` installs the
    /// index template.
    Elasticsearch(crate::elasticsearch::EsCommand),
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (and progress bars on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The level for this program's and the library's log lines.
    pub fn level(&self) -> tracing::Level {
        match (self.quiet, self.verbose) {
            (0, 0) => tracing::Level::INFO,
            (1, _) => tracing::Level::WARN,
            (_, 0) => tracing::Level::ERROR,
            (_, 1) => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        }
    }
}
