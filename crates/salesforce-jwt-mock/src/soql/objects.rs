//! Queries on the real-time objects, with the rules Salesforce enforces on its big objects.
//!
//! Big objects accept a filter on `EventDate` alone (any comparison but `!=`, so a two-sided
//! range works), `EventDate = t` together with a filter on `EventIdentifier`, only
//! `ORDER BY EventDate DESC`, `LIMIT`, and nothing else: other filter fields, `!=`, `OR`,
//! `NOT`, `IN`, `LIKE`, ascending order, `OFFSET` and aggregates answer 400
//! `BIG_OBJECT_UNSUPPORTED_OPERATION`. Standard objects take any filter and order.
//!
//! Event Log Objects take SOQL except relationship queries, `HAVING`, `OFFSET` and `!=`, with
//! at most two `Timestamp` filters spanning at most 15 days; a missing bound reads 15 days in
//! its direction, no `Timestamp` filter the last 15 days (see [`check_event_log`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::SoqlError;
use super::eventlog::like;
use super::lexer::CmpOp;
use super::parser::{Expr, Lit, Query, Select, SelectItem};
use crate::objects::Row;
use crate::objects::catalogue::{Kind, ObjectDef, is_datetime, is_id_like};

/// A record rendered for a query page ([`ObjectPlan::render`]): serialises exactly as the
/// `serde_json::Map` of the same entries would.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct Rendered<'a>(BTreeMap<&'a str, Cow<'a, Value>>);

/// A checked query on a real-time object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectPlan {
    pub(crate) def: &'static ObjectDef,
    pub(crate) count: bool,
    /// Selected fields in query order; relationship paths (`CreatedBy.Username`) as written.
    fields: Vec<String>,
    filter: Option<Cond>,
    order: Vec<(&'static str, bool)>,
    pub(crate) limit: Option<usize>,
    offset: usize,
    /// The `Timestamp` range an Event Log Object query reads without saying so.
    implied: Implied,
}

/// The `Timestamp` filter Salesforce adds to an Event Log Object query.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Implied {
    /// None: the query's own filter bounds it (or the object is not an Event Log Object).
    Nothing,
    /// No `Timestamp` filter: the last 15 days.
    LastDays,
    /// `Timestamp <= t` (only a lower bound was given).
    UpTo(OffsetDateTime),
    /// `Timestamp > t` (only an upper bound was given).
    After(OffsetDateTime),
}

/// "You can query up to 15 days of data at a time using the Timestamp filter."
const EVENT_LOG_WINDOW: time::Duration = time::Duration::days(15);

/// How the mock refuses an Event Log Object query. The documentation only says "we block the
/// execution of the query with an error": the status and code are UNCERTAIN. The mock answers
/// 400 `MALFORMED_QUERY` with a message naming the rule, the code Salesforce gives other
/// queries it will not run; a client must not depend on more than "400, do not retry".
fn event_log(message: impl Into<String>) -> SoqlError {
    SoqlError::malformed(message)
}

#[derive(Debug, Clone)]
enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp(&'static str, CmpOp, Lit),
    In(&'static str, bool, Vec<Lit>),
    Like(&'static str, String),
}

fn big(message: impl Into<String>) -> SoqlError {
    SoqlError {
        code: "BIG_OBJECT_UNSUPPORTED_OPERATION",
        message: message.into(),
    }
}

/// Checks `query` against `def` the way Salesforce does.
pub(crate) fn plan_objects(
    query: &Query,
    def: &'static ObjectDef,
) -> Result<ObjectPlan, SoqlError> {
    // The clauses Event Log Objects refuse, before anything the mock does not evaluate.
    if def.kind == Kind::EventLog {
        if query.having {
            return Err(event_log("HAVING is not supported on Event Log Objects"));
        }
        if query.offset.is_some() {
            return Err(event_log("OFFSET is not supported on Event Log Objects"));
        }
        if !query.group_by.is_empty() {
            return Err(SoqlError::malformed(format!(
                "the mock org does not evaluate GROUP BY on {}",
                def.name
            )));
        }
    }
    let field = |name: &str| {
        def.field(name)
            .ok_or_else(|| SoqlError::no_such_column(def.name, name))
    };
    let (count, fields) = match &query.select {
        Select::Count => (true, Vec::new()),
        Select::Items(items) => {
            let mut fields: Vec<String> = Vec::new();
            for item in items {
                match item {
                    SelectItem::Field(name)
                        if name.text.contains('.') && def.kind == Kind::EventLog =>
                    {
                        return Err(event_log(format!(
                            "Relationship queries are not supported on Event Log Objects: {}",
                            name.text
                        )));
                    }
                    SelectItem::Field(name) if name.text.contains('.') => {
                        let (rel, _) = name.text.split_once('.').unwrap_or_default();
                        if def.relationship(rel).is_none() {
                            return Err(SoqlError::invalid_field(format!(
                                "Didn't understand relationship '{rel}' in field path. If you \
                                 are attempting to use a custom relationship, be sure to append \
                                 the '__r' after the custom relationship name."
                            )));
                        }
                        fields.push(name.text.clone());
                    }
                    SelectItem::Field(name) => {
                        let f = field(&name.text)?;
                        if fields.iter().any(|x| x == f) {
                            return Err(SoqlError::malformed(format!(
                                "duplicate field selected: {f}"
                            )));
                        }
                        fields.push(f.to_string());
                    }
                    SelectItem::FieldsOf(which) => {
                        if which != "STANDARD" && query.limit.is_none_or(|n| n > 200) {
                            return Err(SoqlError::malformed(
                                "The SOQL FIELDS function is not supported with an unbounded \
                                 set of fields in this API",
                            ));
                        }
                        for f in def.fields {
                            if !fields.iter().any(|x| x == f) {
                                fields.push((*f).to_string());
                            }
                        }
                    }
                    SelectItem::Function(..) if def.kind == Kind::Big => {
                        return Err(big("Aggregate functions not supported"));
                    }
                    SelectItem::Function(name, arg) => {
                        let arg = arg.as_ref().map_or("", |a| a.text.as_str());
                        return Err(SoqlError::malformed(format!(
                            "the mock org does not evaluate {name}({arg}) on {}",
                            def.name
                        )));
                    }
                }
            }
            (false, fields)
        }
    };
    if count && def.kind == Kind::Big {
        return Err(big("Aggregate functions not supported"));
    }
    if def.kind != Kind::EventLog && (!query.group_by.is_empty() || query.having) {
        return Err(SoqlError::malformed(format!(
            "the mock org does not evaluate GROUP BY or HAVING on {}",
            def.name
        )));
    }
    let filter = query.filter.as_ref().map(|e| resolve(e, def)).transpose()?;
    let implied = if def.kind == Kind::EventLog {
        check_event_log(filter.as_ref())?
    } else {
        Implied::Nothing
    };
    let mut order = Vec::new();
    for (name, desc) in &query.order_by {
        order.push((field(&name.text)?, *desc));
    }
    if def.kind == Kind::Big {
        check_big_filter(filter.as_ref(), def)?;
        check_big_order(&order)?;
        if query.offset.is_some() {
            return Err(big("OFFSET is not supported on big objects"));
        }
    }
    Ok(ObjectPlan {
        def,
        count,
        fields,
        filter,
        order,
        limit: query.limit,
        offset: query.offset.unwrap_or(0),
        implied,
    })
}

/// Every `Timestamp` condition of `cond` (a filter per compared value: `IN (a, b)` is two).
fn timestamp_filters(cond: &Cond) -> usize {
    match cond {
        Cond::And(items) | Cond::Or(items) => items.iter().map(timestamp_filters).sum(),
        Cond::Not(inner) => timestamp_filters(inner),
        Cond::Cmp("Timestamp", ..) => 1,
        Cond::In("Timestamp", _, lits) => lits.len(),
        Cond::Cmp(..) | Cond::In(..) | Cond::Like(..) => 0,
    }
}

fn has_not_equals(cond: &Cond) -> bool {
    match cond {
        Cond::And(items) | Cond::Or(items) => items.iter().any(has_not_equals),
        Cond::Not(inner) => has_not_equals(inner),
        Cond::Cmp(_, op, _) => *op == CmpOp::Ne,
        Cond::In(_, negated, _) => *negated,
        Cond::Like(..) => false,
    }
}

/// A `Timestamp` range comparison (`<`, `<=`, `>`, `>=`) inside an `OR`.
fn range_in_or(cond: &Cond, inside_or: bool) -> bool {
    match cond {
        Cond::And(items) => items.iter().any(|c| range_in_or(c, inside_or)),
        Cond::Or(items) => items.iter().any(|c| range_in_or(c, true)),
        Cond::Not(inner) => range_in_or(inner, inside_or),
        Cond::Cmp("Timestamp", op, _) => inside_or && *op != CmpOp::Eq,
        _ => false,
    }
}

fn lit_time(lit: &Lit) -> Option<OffsetDateTime> {
    match lit {
        Lit::DateTime(t) => Some(*t),
        Lit::Date(d) => Some(d.midnight().assume_utc()),
        _ => None,
    }
}

/// The platform's rules for Event Log Object filters (Best Practices and Considerations for
/// Leveraging Event Log Object Data), and the `Timestamp` range it adds where a bound is
/// missing.
fn check_event_log(filter: Option<&Cond>) -> Result<Implied, SoqlError> {
    let Some(filter) = filter else {
        return Ok(Implied::LastDays);
    };
    if has_not_equals(filter) {
        return Err(event_log("!= isn't supported on Event Log Objects"));
    }
    let count = timestamp_filters(filter);
    if count >= 3 {
        return Err(event_log(format!(
            "Too many Timestamp filters ({count}): Event Log Object queries take at most 2"
        )));
    }
    if count == 0 {
        return Ok(Implied::LastDays);
    }
    if range_in_or(filter, false) {
        return Err(event_log(
            "Timestamp ranges can't be combined with OR on Event Log Objects: use              Timestamp = a OR Timestamp = b, IN, or an AND range",
        ));
    }
    // The top-level AND's own Timestamp comparisons decide the range.
    let items: Vec<&Cond> = match filter {
        Cond::And(items) => items.iter().collect(),
        other => vec![other],
    };
    let (mut lower, mut upper, mut equal) = (None, None, 0);
    for item in items {
        match item {
            Cond::Cmp("Timestamp", op, lit) => {
                let Some(t) = lit_time(lit) else { continue };
                match op {
                    CmpOp::Gt | CmpOp::Ge => {
                        lower = Some(lower.map_or(t, |l: OffsetDateTime| l.max(t)))
                    }
                    CmpOp::Lt | CmpOp::Le => {
                        upper = Some(upper.map_or(t, |u: OffsetDateTime| u.min(t)))
                    }
                    CmpOp::Eq => equal += 1,
                    CmpOp::Ne => {}
                }
            }
            Cond::In("Timestamp", ..) => equal += 1,
            _ => {}
        }
    }
    if equal > 0 && (lower.is_some() || upper.is_some()) {
        return Err(event_log(
            "Timestamp = can't be combined with a Timestamp range on Event Log Objects",
        ));
    }
    Ok(match (lower, upper) {
        (Some(l), Some(u)) if u - l > EVENT_LOG_WINDOW => {
            return Err(event_log(
                "The Timestamp range must fall within 15 days on Event Log Objects",
            ));
        }
        (Some(l), None) => Implied::UpTo(l + EVENT_LOG_WINDOW),
        (None, Some(u)) => Implied::After(u - EVENT_LOG_WINDOW),
        // Both bounds, `=`/IN points, or Timestamp only inside an OR of points.
        _ => Implied::Nothing,
    })
}

fn resolve(expr: &Expr, def: &'static ObjectDef) -> Result<Cond, SoqlError> {
    let field = |name: &str| {
        def.field(name)
            .ok_or_else(|| SoqlError::no_such_column(def.name, name))
    };
    Ok(match expr {
        Expr::And(items) => Cond::And(
            items
                .iter()
                .map(|e| resolve(e, def))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Or(items) => Cond::Or(
            items
                .iter()
                .map(|e| resolve(e, def))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Not(inner) => Cond::Not(Box::new(resolve(inner, def)?)),
        Expr::Cmp(name, op, lit) => {
            let f = field(&name.text)?;
            check_literal(f, lit)?;
            Cond::Cmp(f, *op, lit.clone())
        }
        Expr::In(name, negated, lits) => {
            let f = field(&name.text)?;
            for lit in lits {
                check_literal(f, lit)?;
            }
            Cond::In(f, *negated, lits.clone())
        }
        Expr::Like(name, lit) => {
            let f = field(&name.text)?;
            match lit {
                Lit::Str(p) if !is_datetime(f) => Cond::Like(f, p.clone()),
                _ => {
                    return Err(SoqlError {
                        code: "INVALID_QUERY_FILTER_OPERATOR",
                        message: format!("invalid operator on field '{f}'"),
                    });
                }
            }
        }
    })
}

/// Datetime fields take unquoted datetime literals; quoting one is Salesforce's classic error.
fn check_literal(field: &str, lit: &Lit) -> Result<(), SoqlError> {
    let ok = match lit {
        Lit::Null => true,
        Lit::DateTime(_) | Lit::Date(_) => is_datetime(field),
        Lit::Str(_) => !is_datetime(field),
        Lit::Num(_) | Lit::Bool => !is_datetime(field),
    };
    if ok {
        return Ok(());
    }
    let (ty, quoting) = if is_datetime(field) {
        ("dateTime", "should not be enclosed in quotes")
    } else {
        ("string", "should be enclosed in quotes")
    };
    Err(SoqlError::invalid_field(format!(
        "value of filter criterion for field '{field}' must be of type {ty} and {quoting}"
    )))
}

/// The index is (EventDate, EventIdentifier): comparisons joined by AND, on indexed fields,
/// a range only on the last field used, no gaps.
fn check_big_filter(filter: Option<&Cond>, def: &ObjectDef) -> Result<(), SoqlError> {
    let Some(filter) = filter else {
        return Ok(());
    };
    let items: Vec<&Cond> = match filter {
        Cond::And(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut date_ops = Vec::new();
    let mut identifier = false;
    for item in items {
        let Cond::Cmp(field, op, _) = item else {
            return Err(big(
                "Unsupported filter operation: only comparisons joined by AND are supported on \
                 big objects (no OR, NOT, IN, LIKE)",
            ));
        };
        if *op == CmpOp::Ne {
            return Err(big(format!(
                "Unsupported filter operator on filter column: {} : NOT_EQUALS",
                field.to_ascii_uppercase()
            )));
        }
        match *field {
            "EventDate" => date_ops.push(*op),
            "EventIdentifier" => identifier = true,
            // ReportEvent's beta UserId index: alone, or with EventDate.
            f if def.extra_index.contains(&f) => {}
            f => {
                return Err(big(format!(
                    "Unsupported filter column: {}: big objects can only be filtered on their \
                     index (EventDate, EventIdentifier)",
                    f.to_ascii_uppercase()
                )));
            }
        }
    }
    if identifier && !(date_ops.len() == 1 && date_ops[0] == CmpOp::Eq) {
        return Err(big(
            "Filters may not have any gaps within the composite key",
        ));
    }
    Ok(())
}

fn check_big_order(order: &[(&'static str, bool)]) -> Result<(), SoqlError> {
    match order {
        [] | [("EventDate", true)] => Ok(()),
        [("EventDate", false)] => Err(big(
            "Unsupported order direction on filter column: EVENTDATE : ASCENDING",
        )),
        [(field, _)] => Err(big(format!(
            "Unsupported order by column: {}",
            field.to_ascii_uppercase()
        ))),
        _ => Err(big("Only one ORDER BY column is supported on big objects")),
    }
}

/// Compares a row's value with a literal; `None` when they cannot be compared (null, types).
fn compare_lit(field: &str, row: &Row, lit: &Lit) -> Option<Ordering> {
    // The datetimes were parsed at insert: a window query compares every row of the object
    // twice, and the field map lookup below would cost more than the comparison. A value that
    // is not a parsable datetime falls through to the general rules (and compares as None).
    match (row.datetime(field), lit) {
        (Some(t), Lit::DateTime(l)) => return Some(t.cmp(l)),
        (Some(t), Lit::Date(d)) => return Some(t.date().cmp(d)),
        _ => {}
    }
    match (row.fields.get(field)?, lit) {
        (Value::String(_), Lit::DateTime(t)) => Some(row.datetime(field)?.cmp(t)),
        (Value::String(_), Lit::Date(d)) => Some(row.datetime(field)?.date().cmp(d)),
        (Value::String(s), Lit::Str(l)) if is_id_like(field) => Some(s.as_str().cmp(l.as_str())),
        (Value::String(s), Lit::Str(l)) => Some(s.to_lowercase().cmp(&l.to_lowercase())),
        (Value::Number(n), Lit::Num(l)) => n.as_f64()?.partial_cmp(l),
        _ => None,
    }
}

/// A row's sort key for one ORDER BY field: nulls first, then datetimes, numbers or text (Ids
/// case-sensitively, other text case-insensitively), reversed for DESC.
#[derive(Debug, PartialEq, PartialOrd)]
struct SortKey {
    present: bool,
    time: Option<OffsetDateTime>,
    number: Option<f64>,
    text: String,
}

impl SortKey {
    fn of(field: &str, row: &Row) -> SortKey {
        let mut key = SortKey {
            present: true,
            time: None,
            number: None,
            text: String::new(),
        };
        match row.fields.get(field) {
            None | Some(Value::Null) => key.present = false,
            Some(Value::String(_)) if is_datetime(field) => key.time = row.datetime(field),
            Some(Value::Number(n)) => key.number = n.as_f64(),
            Some(Value::String(s)) if is_id_like(field) => key.text.clone_from(s),
            Some(Value::String(s)) => key.text = s.to_lowercase(),
            Some(other) => key.text = other.to_string(),
        }
        key
    }
}

fn holds(cond: &Cond, row: &Row) -> bool {
    match cond {
        Cond::And(items) => items.iter().all(|c| holds(c, row)),
        Cond::Or(items) => items.iter().any(|c| holds(c, row)),
        Cond::Not(inner) => !holds(inner, row),
        Cond::Cmp(field, op, Lit::Null) => {
            let null = row.fields.get(*field).is_none_or(Value::is_null);
            match op {
                CmpOp::Eq => null,
                CmpOp::Ne => !null,
                _ => false,
            }
        }
        Cond::Cmp(field, op, lit) => match compare_lit(field, row, lit) {
            None => *op == CmpOp::Ne,
            Some(ord) => match op {
                CmpOp::Eq => ord == Ordering::Equal,
                CmpOp::Ne => ord != Ordering::Equal,
                CmpOp::Lt => ord == Ordering::Less,
                CmpOp::Le => ord != Ordering::Greater,
                CmpOp::Gt => ord == Ordering::Greater,
                CmpOp::Ge => ord != Ordering::Less,
            },
        },
        Cond::In(field, negated, lits) => {
            let found = lits
                .iter()
                .any(|l| compare_lit(field, row, l) == Some(Ordering::Equal));
            found != *negated
        }
        Cond::Like(field, pattern) => row
            .fields
            .get(*field)
            .and_then(Value::as_str)
            .is_some_and(|s| like(&s.to_lowercase(), &pattern.to_lowercase())),
    }
}

impl ObjectPlan {
    /// Whether a row matches the filter.
    pub(crate) fn matches(&self, row: &Row, now: OffsetDateTime) -> bool {
        let implied = match self.implied {
            Implied::Nothing => true,
            Implied::LastDays => row
                .datetime("Timestamp")
                .is_some_and(|t| t > now - EVENT_LOG_WINDOW),
            Implied::UpTo(u) => row.datetime("Timestamp").is_some_and(|t| t <= u),
            Implied::After(a) => row.datetime("Timestamp").is_some_and(|t| t > a),
        };
        implied && self.filter.as_ref().is_none_or(|c| holds(c, row))
    }

    /// Puts matching rows in query order (a big object without ORDER BY comes in index order,
    /// newest first).
    pub(crate) fn sort(&self, mut out: Vec<Arc<Row>>) -> Vec<Arc<Row>> {
        let order: Vec<(&str, bool)> = if self.order.is_empty() && self.def.kind == Kind::Big {
            vec![("EventDate", true)]
        } else {
            self.order.clone()
        };
        if !order.is_empty() {
            // Keys computed once per row: a sort over 50,000 rows compares a million times.
            let mut keyed: Vec<(Vec<SortKey>, Arc<Row>)> = out
                .into_iter()
                .map(|row| {
                    (
                        order.iter().map(|(f, _)| SortKey::of(f, &row)).collect(),
                        row,
                    )
                })
                .collect();
            keyed.sort_by(|(a, _), (b, _)| {
                for ((ka, kb), (_, desc)) in a.iter().zip(b).zip(&order) {
                    let ord = ka.partial_cmp(kb).unwrap_or(Ordering::Equal);
                    let ord = if *desc { ord.reverse() } else { ord };
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                Ordering::Equal
            });
            out = keyed.into_iter().map(|(_, row)| row).collect();
        }
        out
    }

    /// OFFSET and LIMIT.
    pub(crate) fn window(&self, rows: Vec<Arc<Row>>) -> Vec<Arc<Row>> {
        let rows = rows.into_iter().skip(self.offset);
        match self.limit {
            Some(n) => rows.take(n).collect(),
            None => rows.collect(),
        }
    }

    /// One record as the REST API writes it: `attributes` and the selected fields, in the
    /// order of a `serde_json::Map` (sorted by name). The row's values are borrowed, not
    /// cloned: a page of 2,000 wide rows is rendered for every `nextRecordsUrl`.
    pub(crate) fn render<'a>(&'a self, row: &'a Row, version: &str) -> Rendered<'a> {
        let mut out: BTreeMap<&'a str, Cow<'a, Value>> = BTreeMap::new();
        let mut attributes = Map::new();
        attributes.insert("type".into(), json!(self.def.name));
        // Big-object rows have no record URL worth giving (their Id is all zeros).
        if matches!(self.def.kind, Kind::Standard | Kind::EventLog)
            && let Some(id) = row.fields.get("Id").and_then(Value::as_str)
        {
            attributes.insert(
                "url".into(),
                json!(format!(
                    "/services/data/{version}/sobjects/{}/{id}",
                    self.def.name
                )),
            );
        }
        out.insert("attributes", Cow::Owned(Value::Object(attributes)));
        for field in &self.fields {
            if let Some((rel, sub)) = field.split_once('.') {
                let Some((rel, target)) = self.def.relationship(rel) else {
                    continue;
                };
                let value = row.fields.get(rel).and_then(Value::as_object);
                let entry = out.entry(rel).or_insert_with(|| match value {
                    Some(_) => Cow::Owned(json!({"attributes": {"type": target}})),
                    None => Cow::Owned(Value::Null),
                });
                if let (Value::Object(map), Some(value)) = (entry.to_mut(), value) {
                    let found = value
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(sub))
                        .map(|(k, v)| (k.clone(), v.clone()));
                    let (k, v) = found.unwrap_or_else(|| (sub.to_string(), Value::Null));
                    map.insert(k, v);
                }
                continue;
            }
            out.insert(
                field.as_str(),
                row.fields
                    .get(field)
                    .map_or(Cow::Owned(Value::Null), Cow::Borrowed),
            );
        }
        Rendered(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ObjectStore;
    use crate::objects::catalogue::lookup;
    use crate::soql::parse;
    use time::macros::datetime;

    /// The rendering before it borrowed the row's values: one `serde_json::Map` per record.
    /// One record as the REST API writes it: `attributes`, then the selected fields.
    fn render_value(plan: &ObjectPlan, row: &Row, version: &str) -> Value {
        let mut out = Map::new();
        let mut attributes = Map::new();
        attributes.insert("type".into(), json!(plan.def.name));
        // Big-object rows have no record URL worth giving (their Id is all zeros).
        if matches!(plan.def.kind, Kind::Standard | Kind::EventLog)
            && let Some(id) = row.fields.get("Id").and_then(Value::as_str)
        {
            attributes.insert(
                "url".into(),
                json!(format!(
                    "/services/data/{version}/sobjects/{}/{id}",
                    plan.def.name
                )),
            );
        }
        out.insert("attributes".into(), Value::Object(attributes));
        for field in &plan.fields {
            if let Some((rel, sub)) = field.split_once('.') {
                let Some((rel, target)) = plan.def.relationship(rel) else {
                    continue;
                };
                let value = row.fields.get(rel).and_then(Value::as_object);
                let entry = out.entry(rel.to_string()).or_insert_with(|| match value {
                    Some(_) => json!({"attributes": {"type": target}}),
                    None => Value::Null,
                });
                if let (Value::Object(map), Some(value)) = (entry, value) {
                    let found = value
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(sub))
                        .map(|(k, v)| (k.clone(), v.clone()));
                    let (k, v) = found.unwrap_or_else(|| (sub.to_string(), Value::Null));
                    map.insert(k, v);
                }
                continue;
            }
            out.insert(
                field.clone(),
                row.fields.get(field).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Object(out)
    }

    #[test]
    fn rendered_records_are_byte_identical_to_a_map_of_the_same_fields() {
        let now = datetime!(2024-07-09 00:00 UTC);
        let cases = [
            (
                "LoginEvent",
                "SELECT FIELDS(STANDARD) FROM LoginEvent ORDER BY EventDate DESC",
            ),
            (
                "SetupAuditTrail",
                "SELECT Id, CreatedDate, Display, CreatedBy.Username, CreatedBy.Name \
                 FROM SetupAuditTrail ORDER BY CreatedDate ASC, Id ASC",
            ),
        ];
        for (object, soql) in cases {
            let def = lookup(object).unwrap();
            let mut store = ObjectStore::default();
            for fields in crate::generate_records(
                object,
                datetime!(2024-07-08 00:00 UTC),
                datetime!(2024-07-08 12:00 UTC),
                20,
                3,
            ) {
                store.insert(def, fields);
            }
            if object == "SetupAuditTrail" {
                // A row with the relationship and one with it null.
                let mut with = serde_json::Map::new();
                with.insert("CreatedDate".into(), json!("2024-07-08T01:00:00.000+0000"));
                with.insert("Display".into(), json!("quote \" and \u{e9}"));
                with.insert(
                    "CreatedBy".into(),
                    json!({"Username": "a@b.c", "Name": "A"}),
                );
                store.insert(def, with);
                let mut without = serde_json::Map::new();
                without.insert("CreatedDate".into(), json!("2024-07-08T02:00:00.000+0000"));
                without.insert("CreatedBy".into(), Value::Null);
                store.insert(def, without);
            }
            let plan = plan_objects(&parse(soql).unwrap(), def).unwrap();
            let rows = store.visible_where(def, now, |_| true);
            assert!(rows.len() >= 20, "{object}");
            for row in &rows {
                let new = serde_json::to_string(&plan.render(row, "v62.0")).unwrap();
                let old = serde_json::to_string(&render_value(&plan, row, "v62.0")).unwrap();
                assert_eq!(new, old, "{object}");
            }
        }
    }
}
