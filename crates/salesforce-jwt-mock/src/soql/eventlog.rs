//! The `EventLogFile` evaluator: fields, checked plans and filters over the org's files.

use std::cmp::Ordering;

use time::{OffsetDateTime, Time, UtcOffset};

use super::SoqlError;
use super::lexer::CmpOp;
use super::parser::{Expr, Lit, Name, Query, Select, SelectItem};
use crate::file_meta::FileMeta;

/// The fields of `EventLogFile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    Id,
    EventType,
    LogDate,
    CreatedDate,
    Interval,
    Sequence,
    LogFileLength,
    LogFile,
    ApiVersion,
    LogFileContentType,
    LogFileFieldNames,
    LogFileFieldTypes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Text,
    DateTime,
    Int,
    Double,
    Base64,
}

impl Field {
    pub(crate) const ALL: [Field; 12] = [
        Field::Id,
        Field::EventType,
        Field::LogDate,
        Field::CreatedDate,
        Field::Interval,
        Field::Sequence,
        Field::LogFileLength,
        Field::LogFile,
        Field::ApiVersion,
        Field::LogFileContentType,
        Field::LogFileFieldNames,
        Field::LogFileFieldTypes,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::Id => "Id",
            Field::EventType => "EventType",
            Field::LogDate => "LogDate",
            Field::CreatedDate => "CreatedDate",
            Field::Interval => "Interval",
            Field::Sequence => "Sequence",
            Field::LogFileLength => "LogFileLength",
            Field::LogFile => "LogFile",
            Field::ApiVersion => "ApiVersion",
            Field::LogFileContentType => "LogFileContentType",
            Field::LogFileFieldNames => "LogFileFieldNames",
            Field::LogFileFieldTypes => "LogFileFieldTypes",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Field::Id => Kind::Id,
            Field::LogDate | Field::CreatedDate => Kind::DateTime,
            Field::Sequence => Kind::Int,
            Field::LogFileLength | Field::ApiVersion => Kind::Double,
            Field::LogFile => Kind::Base64,
            Field::EventType
            | Field::Interval
            | Field::LogFileContentType
            | Field::LogFileFieldNames
            | Field::LogFileFieldTypes => Kind::Text,
        }
    }

    /// Looks a field up by name, case-insensitively, as the API version in use knows it.
    fn lookup(name: &str, api_version: f64) -> Result<Field, SoqlError> {
        let field = Field::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| SoqlError::no_such_column("EventLogFile", name))?;
        // Interval arrived with hourly files in API 37.0; older versions don't know the column.
        if field == Field::Interval && api_version < 37.0 {
            return Err(SoqlError::no_such_column("EventLogFile", name));
        }
        Ok(field)
    }
}

/// A value of a field, or of a literal converted to the field's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Text(String),
    Time(OffsetDateTime),
    Num(f64),
    Null,
}

#[derive(Debug, Clone)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(Field, CmpOp, Val),
    In(Field, bool, Vec<Val>),
    Like(Field, String),
}

/// A checked query, ready to run against the org's files.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `SELECT COUNT()`: answer with `totalSize` only.
    pub(crate) count: bool,
    /// The selected fields, in query order.
    pub(crate) fields: Vec<Field>,
    filter: Option<Cond>,
    order: Vec<(Field, bool)>,
    limit: Option<usize>,
    offset: usize,
}

/// Parses and checks `soql` the way Salesforce does: syntax first (`MALFORMED_QUERY`), then the
/// object (`INVALID_TYPE`), then fields and literal types (`INVALID_FIELD`).
#[cfg(test)]
pub(crate) fn plan(soql: &str, api_version: f64, object_visible: bool) -> Result<Plan, SoqlError> {
    plan_query(&super::parse(soql)?, api_version, object_visible)
}

/// Checks a parsed query on `EventLogFile` the way Salesforce does: the object (`INVALID_TYPE`),
/// then fields and literal types (`INVALID_FIELD`).
pub(crate) fn plan_query(
    query: &Query,
    api_version: f64,
    object_visible: bool,
) -> Result<Plan, SoqlError> {
    if !query.from.text.eq_ignore_ascii_case("EventLogFile") || !object_visible {
        return Err(SoqlError {
            code: "INVALID_TYPE",
            message: format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name. Please reference your \
                 WSDL or the describe call for the appropriate names.",
                query.from.text
            ),
        });
    }
    if !query.group_by.is_empty() || query.having {
        return Err(SoqlError::malformed(
            "the mock org does not evaluate GROUP BY or HAVING on EventLogFile",
        ));
    }
    let (count, fields) = match &query.select {
        Select::Count => (true, Vec::new()),
        Select::Items(items) => {
            let mut fields: Vec<Field> = Vec::with_capacity(items.len());
            for item in items {
                let field = match item {
                    SelectItem::Field(name) => Field::lookup(&name.text, api_version)?,
                    SelectItem::FieldsOf(_) => {
                        // EventLogFile has standard fields only: every FIELDS() form is all.
                        for field in Field::ALL {
                            if !fields.contains(&field) {
                                fields.push(field);
                            }
                        }
                        continue;
                    }
                    SelectItem::Function(..) => {
                        return Err(SoqlError::malformed(
                            "only COUNT() is supported by the mock org, not COUNT(field)",
                        ));
                    }
                };
                if fields.contains(&field) {
                    return Err(SoqlError::malformed(format!(
                        "duplicate field selected: {}",
                        field.name()
                    )));
                }
                fields.push(field);
            }
            (false, fields)
        }
    };
    let filter = query
        .filter
        .as_ref()
        .map(|e| resolve(e, api_version))
        .transpose()?;
    let mut order = Vec::with_capacity(query.order_by.len());
    for (name, desc) in &query.order_by {
        let field = Field::lookup(&name.text, api_version)?;
        if field.kind() == Kind::Base64 {
            return Err(SoqlError::invalid_field(format!(
                "field '{}' can not be sorted in a query call",
                field.name()
            )));
        }
        order.push((field, *desc));
    }
    let offset = query.offset.unwrap_or(0);
    if offset > 2000 {
        return Err(SoqlError {
            code: "NUMBER_OUTSIDE_VALID_RANGE",
            message: format!("Maximum SOQL offset allowed is 2000, found {offset}"),
        });
    }
    Ok(Plan {
        count,
        fields,
        filter,
        order,
        limit: query.limit,
        offset,
    })
}

fn resolve(expr: &Expr, api_version: f64) -> Result<Cond, SoqlError> {
    Ok(match expr {
        Expr::And(items) => Cond::And(
            items
                .iter()
                .map(|e| resolve(e, api_version))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(items) => Cond::Or(
            items
                .iter()
                .map(|e| resolve(e, api_version))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(inner) => Cond::Not(Box::new(resolve(inner, api_version)?)),
        Expr::Cmp(name, op, lit) => {
            let field = filterable(name, api_version)?;
            Cond::Cmp(field, *op, convert(field, lit)?)
        }
        Expr::In(name, negated, lits) => {
            let field = filterable(name, api_version)?;
            let values = lits
                .iter()
                .map(|lit| convert(field, lit))
                .collect::<Result<_, _>>()?;
            Cond::In(field, *negated, values)
        }
        Expr::Like(name, lit) => {
            let field = filterable(name, api_version)?;
            match (field.kind(), lit) {
                (Kind::Text | Kind::Id, Lit::Str(pattern)) => Cond::Like(field, pattern.clone()),
                (Kind::Text | Kind::Id, _) => return Err(type_error(field)),
                _ => {
                    return Err(SoqlError {
                        code: "INVALID_QUERY_FILTER_OPERATOR",
                        message: format!("invalid operator on field '{}'", field.name()),
                    });
                }
            }
        }
    })
}

fn filterable(name: &Name, api_version: f64) -> Result<Field, SoqlError> {
    let field = Field::lookup(&name.text, api_version)?;
    if field.kind() == Kind::Base64 {
        return Err(SoqlError::invalid_field(format!(
            "field '{}' can not be filtered in a query call",
            field.name()
        )));
    }
    Ok(field)
}

fn type_error(field: Field) -> SoqlError {
    let (ty, quoting) = match field.kind() {
        Kind::Id | Kind::Text | Kind::Base64 => ("string", "should be enclosed in quotes"),
        Kind::DateTime => ("dateTime", "should not be enclosed in quotes"),
        Kind::Int => ("int", "should not be enclosed in quotes"),
        Kind::Double => ("double", "should not be enclosed in quotes"),
    };
    SoqlError::invalid_field(format!(
        "value of filter criterion for field '{}' must be of type {ty} and {quoting}",
        field.name()
    ))
}

fn convert(field: Field, lit: &Lit) -> Result<Val, SoqlError> {
    match (field.kind(), lit) {
        (_, Lit::Null) => Ok(Val::Null),
        (Kind::Id | Kind::Text, Lit::Str(s)) => Ok(Val::Text(s.clone())),
        (Kind::DateTime, Lit::DateTime(dt)) => Ok(Val::Time(dt.to_offset(UtcOffset::UTC))),
        // LogDate is a day or hour boundary, so a plain date is accepted for it (as midnight UTC).
        (Kind::DateTime, Lit::Date(d)) if field == Field::LogDate => {
            Ok(Val::Time(d.with_time(Time::MIDNIGHT).assume_utc()))
        }
        (Kind::Int | Kind::Double, Lit::Num(n)) => Ok(Val::Num(*n)),
        _ => Err(type_error(field)),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// The value of `field` for a file, as a filter sees it. (`LogFile` is never filtered.)
pub(crate) fn value_of(meta: &FileMeta, field: Field) -> Val {
    match field {
        Field::Id => Val::Text(meta.id.clone()),
        Field::EventType => Val::Text(meta.event_type.clone()),
        Field::LogDate => Val::Time(meta.log_date),
        Field::CreatedDate => Val::Time(meta.created_date),
        Field::Interval => Val::Text(meta.interval.as_str().to_owned()),
        Field::Sequence => Val::Num(f64::from(meta.sequence)),
        Field::LogFileLength => Val::Num(meta.length as f64),
        Field::ApiVersion => Val::Num(meta.api_version),
        Field::LogFileContentType => Val::Text("CSV".to_owned()),
        Field::LogFileFieldNames => Val::Text(meta.field_names.clone()),
        Field::LogFileFieldTypes => Val::Text(meta.field_types.clone()),
        Field::LogFile => Val::Null,
    }
}

/// Compares two values of the same field. Text compares case-insensitively, as SOQL does for
/// text and picklists; Ids compare as plain strings.
fn compare(field: Field, a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Text(x), Val::Text(y)) if field.kind() == Kind::Id => Some(x.cmp(y)),
        (Val::Text(x), Val::Text(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
        (Val::Time(x), Val::Time(y)) => Some(x.cmp(y)),
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        _ => None,
    }
}

fn holds(cond: &Cond, meta: &FileMeta) -> bool {
    match cond {
        Cond::And(items) => items.iter().all(|c| holds(c, meta)),
        Cond::Or(items) => items.iter().any(|c| holds(c, meta)),
        Cond::Not(inner) => !holds(inner, meta),
        Cond::Cmp(field, op, lit) => {
            let value = value_of(meta, *field);
            // No EventLogFile field is ever null, so `= null` never matches and `!= null` always.
            if *lit == Val::Null {
                return *op == CmpOp::Ne;
            }
            match compare(*field, &value, lit) {
                None => false,
                Some(ord) => match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                },
            }
        }
        Cond::In(field, negated, list) => {
            let value = value_of(meta, *field);
            let found = list
                .iter()
                .any(|lit| compare(*field, &value, lit) == Some(Ordering::Equal));
            found != *negated
        }
        Cond::Like(field, pattern) => match value_of(meta, *field) {
            Val::Text(text) => like(&text.to_lowercase(), &pattern.to_lowercase()),
            _ => false,
        },
    }
}

/// SOQL LIKE: `%` any run, `_` one character, `\%` and `\_` literal.
pub(crate) fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Char(char),
    }
    let mut pat = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        pat.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => P::Char(chars.next().unwrap_or('\\')),
            c => P::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Classic wildcard matching with one backtrack point.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(P::One) => {
                t += 1;
                p += 1;
            }
            Some(P::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(P::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p..].iter().all(|x| *x == P::Any)
}

impl Plan {
    /// Runs the plan over `files` (in Id order): filter, sort, offset, limit.
    pub(crate) fn run<T: AsRef<FileMeta> + Clone>(&self, files: &[T]) -> Vec<T> {
        let mut rows: Vec<T> = files
            .iter()
            .filter(|f| self.filter.as_ref().is_none_or(|c| holds(c, f.as_ref())))
            .cloned()
            .collect();
        if !self.order.is_empty() {
            rows.sort_by(|a, b| {
                for (field, desc) in &self.order {
                    let ord = compare(
                        *field,
                        &value_of(a.as_ref(), *field),
                        &value_of(b.as_ref(), *field),
                    )
                    .unwrap_or(Ordering::Equal);
                    let ord = if *desc { ord.reverse() } else { ord };
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                Ordering::Equal
            });
        }
        let rows = rows.into_iter().skip(self.offset);
        match self.limit {
            Some(limit) => rows.take(limit).collect(),
            None => rows.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(soql: &str) -> SoqlError {
        match plan(soql, 64.0, true) {
            Ok(p) => panic!("expected an error for {soql}, got {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_the_clients_query() {
        let q = "SELECT Id, EventType, LogDate, CreatedDate, Interval, Sequence, LogFileLength, \
                 LogFile, ApiVersion, LogFileContentType, LogFileFieldNames, LogFileFieldTypes \
                 FROM EventLogFile WHERE EventType IN ('Login', 'API') AND Interval = 'Hourly' \
                 AND LogDate >= 2024-03-11T00:00:00Z AND LogDate < 2024-03-12T00:00:00Z AND \
                 (CreatedDate > 2024-03-11T15:00:00Z OR (CreatedDate = 2024-03-11T15:00:00Z AND \
                 Id > '0AT000000000001AAA')) ORDER BY CreatedDate, Id LIMIT 100";
        let plan = plan(q, 64.0, true).unwrap();
        assert_eq!(plan.fields.len(), 12);
        assert_eq!(plan.limit, Some(100));
    }

    #[test]
    fn rejects_mixed_connectives_and_bad_literals() {
        assert_eq!(
            err("SELECT Id FROM EventLogFile WHERE Sequence = 1 AND Sequence = 2 OR Sequence = 3")
                .code,
            "MALFORMED_QUERY"
        );
        assert_eq!(
            err("SELECT Id FROM EventLogFile WHERE CreatedDate > '2024-03-11T00:00:00Z'").code,
            "INVALID_FIELD"
        );
        assert_eq!(
            err("SELECT Id FROM EventLogFile WHERE EventType = 'x\\q'").code,
            "MALFORMED_QUERY"
        );
        assert_eq!(err("SELECT Foo FROM EventLogFile").code, "INVALID_FIELD");
        assert_eq!(err("SELECT Id FROM Account").code, "INVALID_TYPE");
        assert_eq!(
            err("SELECT Id FROM EventLogFile WHERE LogFile = 'x'").code,
            "INVALID_FIELD"
        );
        assert_eq!(
            plan("SELECT Interval FROM EventLogFile", 36.0, true)
                .unwrap_err()
                .code,
            "INVALID_FIELD"
        );
    }

    #[test]
    fn like_matching() {
        assert!(like("apexexecution", "apex%"));
        assert!(like("login", "l_g%"));
        assert!(!like("logout", "login%"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
    }
}
