//! A small SOQL engine for the mock org: a tokenizer ([`lexer`]), a recursive-descent parser
//! ([`parser`]) shared by both evaluators, the `EventLogFile` evaluator ([`eventlog`]) and the
//! evaluator of the real-time objects with the big-object query rules ([`objects`]).
//!
//! It is deliberately as strict as Salesforce where a client could get away with sloppiness
//! against a lenient double: mixing `AND` and `OR` without parentheses, quoting a datetime,
//! filtering on the `LogFile` body, or any shape a big object refuses is an error here too.

mod eventlog;
mod lexer;
pub(crate) mod objects;
pub(crate) mod parser;

pub(crate) use eventlog::{Field, plan_query};
pub(crate) use parser::parse;

/// A query Salesforce would refuse, with its `errorCode` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoqlError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl SoqlError {
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self {
            code: "MALFORMED_QUERY",
            message: message.into(),
        }
    }

    pub(crate) fn invalid_field(message: impl Into<String>) -> Self {
        Self {
            code: "INVALID_FIELD",
            message: message.into(),
        }
    }

    pub(crate) fn no_such_column(object: &str, name: &str) -> Self {
        Self::invalid_field(format!(
            "No such column '{name}' on entity '{object}'. If you are attempting to use a \
             custom field, be sure to append the '__c' after the custom field name. Please \
             reference your WSDL or the describe call for the appropriate names."
        ))
    }
}
