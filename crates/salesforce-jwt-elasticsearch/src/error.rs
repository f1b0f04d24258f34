//! The sink's own errors.

/// What went wrong talking to the cluster.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EsError {
    /// A configuration value is unusable.
    #[error("{field}: {problem}")]
    Config {
        /// The setting.
        field: String,
        /// What is wrong with it and how to fix it.
        problem: String,
    },
    /// The cluster refused the credentials (401) or the permission (403).
    #[error(
        "Elasticsearch answered {status} to {what}: {reason}. Check the credentials \
         (ES_API_KEY, or ES_USERNAME and ES_PASSWORD) and that they may create documents \
         in logs-salesforce.*"
    )]
    Auth {
        /// 401 or 403.
        status: u16,
        /// The request.
        what: String,
        /// Elasticsearch's `error.reason`.
        reason: String,
    },
    /// A document was refused for good.
    #[error(
        "Elasticsearch refused the document with event.id {id} for {index} for good \
         ({status} {kind}: {reason}); the checkpoint stays before it. Fix the mapping (install \
         the index template), or configure a dead-letter file to set such documents aside"
    )]
    Refused {
        /// `_id`, the document's `event.id`.
        id: String,
        /// The data stream.
        index: String,
        /// The item's status.
        status: u16,
        /// `error.type`, such as `mapper_parsing_exception`.
        kind: String,
        /// `error.reason`.
        reason: String,
    },
    /// Retries ran out.
    #[error("{what}: still failing after {attempts} attempts: {last}")]
    Exhausted {
        /// The request.
        what: String,
        /// How many sends.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Any other refusal or unexpected answer.
    #[error("{what}: {problem}")]
    Request {
        /// The request.
        what: String,
        /// What was wrong.
        problem: String,
    },
    /// A document could not be read (no `event.id`, not JSON).
    #[error("{0}")]
    Document(String),
    /// The dead-letter file.
    #[error("the dead-letter file {path}: {problem}")]
    DeadLetter {
        /// The file.
        path: String,
        /// The I/O error.
        problem: String,
    },
}
