//! The former home of the real-time objects and their collection, kept one release so that
//! code written for it still compiles: the source is now [`objects`](crate::objects), their
//! collection [`collect`](crate::collect) and the NDJSON row [`sink`](crate::sink). Nothing in
//! the crate imports this module.

pub use crate::objects::*;

#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::collect")]
pub use crate::collect::{
    Batch, BigObjectState, KeysetPosition, KeysetState, ObjectCollectorOptions, ObjectSummary,
    QuietWatch, SkippedWindow,
};
#[deprecated(since = "0.1.0", note = "moved to salesforce_jwt::sink")]
pub use crate::sink::NdjsonObjectRow;
