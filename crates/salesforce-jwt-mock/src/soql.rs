//! A small SOQL evaluator: tokenizer, recursive-descent parser and filter for the one object the
//! mock org has, `EventLogFile`.
//!
//! It is deliberately as strict as Salesforce where a client could get away with sloppiness
//! against a lenient double: mixing `AND` and `OR` without parentheses, quoting a datetime, or
//! filtering on the `LogFile` body is an error here too.

use std::cmp::Ordering;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time, UtcOffset};

use super::state::FileMeta;

/// A query Salesforce would refuse, with its `errorCode` and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoqlError {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl SoqlError {
    fn malformed(message: impl Into<String>) -> Self {
        Self {
            code: "MALFORMED_QUERY",
            message: message.into(),
        }
    }

    fn invalid_field(message: impl Into<String>) -> Self {
        Self {
            code: "INVALID_FIELD",
            message: message.into(),
        }
    }

    fn no_such_column(name: &str) -> Self {
        Self::invalid_field(format!(
            "No such column '{name}' on entity 'EventLogFile'. If you are attempting to use a \
             custom field, be sure to append the '__c' after the custom field name. Please \
             reference your WSDL or the describe call for the appropriate names."
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Number(String),
    DateTime(OffsetDateTime),
    Date(Date),
    LParen,
    RParen,
    Comma,
    Op(CmpOp),
    Eof,
}

#[derive(Debug, Clone)]
struct Spanned {
    tok: Tok,
    text: String,
    row: usize,
    col: usize,
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    row: usize,
    col: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.i + 1).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.row += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn error_at(row: usize, col: usize, what: &str) -> SoqlError {
        SoqlError::malformed(format!(
            "ERROR at Row:{row}:Column:{col}\nunexpected token: '{what}'"
        ))
    }

    fn tokens(mut self) -> Result<Vec<Spanned>, SoqlError> {
        let mut out = Vec::new();
        loop {
            while self.peek().is_some_and(char::is_whitespace) {
                self.bump();
            }
            let (row, col, start) = (self.row, self.col, self.i);
            let Some(c) = self.peek() else {
                out.push(Spanned {
                    tok: Tok::Eof,
                    text: "<EOF>".to_owned(),
                    row,
                    col,
                });
                return Ok(out);
            };
            let tok = match c {
                '(' | ')' | ',' => {
                    self.bump();
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        _ => Tok::Comma,
                    }
                }
                '=' => {
                    self.bump();
                    Tok::Op(CmpOp::Eq)
                }
                '!' if self.peek2() == Some('=') => {
                    self.bump();
                    self.bump();
                    Tok::Op(CmpOp::Ne)
                }
                '<' => {
                    self.bump();
                    match self.peek() {
                        Some('=') => {
                            self.bump();
                            Tok::Op(CmpOp::Le)
                        }
                        Some('>') => {
                            self.bump();
                            Tok::Op(CmpOp::Ne)
                        }
                        _ => Tok::Op(CmpOp::Lt),
                    }
                }
                '>' => {
                    self.bump();
                    if self.peek() == Some('=') {
                        self.bump();
                        Tok::Op(CmpOp::Ge)
                    } else {
                        Tok::Op(CmpOp::Gt)
                    }
                }
                '\'' => Tok::Str(self.string(row, col)?),
                c if c.is_ascii_digit()
                    || (matches!(c, '-' | '+')
                        && self.peek2().is_some_and(|d| d.is_ascii_digit())) =>
                {
                    self.bump();
                    while self.peek().is_some_and(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '+' | '-' | '_')
                    }) {
                        self.bump();
                    }
                    let text: String = self.chars[start..self.i].iter().collect();
                    classify_literal(&text).ok_or_else(|| Self::error_at(row, col, &text))?
                }
                c if c.is_alphabetic() || c == '_' => {
                    while self
                        .peek()
                        .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.'))
                    {
                        self.bump();
                    }
                    Tok::Ident(self.chars[start..self.i].iter().collect())
                }
                other => return Err(Self::error_at(row, col, &other.to_string())),
            };
            out.push(Spanned {
                tok,
                text: self.chars[start..self.i].iter().collect(),
                row,
                col,
            });
        }
    }

    /// A single-quoted string; the opening quote is at the current position.
    fn string(&mut self, row: usize, col: usize) -> Result<String, SoqlError> {
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(SoqlError::malformed(format!(
                        "ERROR at Row:{row}:Column:{col}\nunterminated string literal"
                    )));
                }
                Some('\'') => return Ok(value),
                Some('\\') => match self.bump() {
                    Some('\'') => value.push('\''),
                    Some('"') => value.push('"'),
                    Some('\\') => value.push('\\'),
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some('b') => value.push('\u{8}'),
                    Some('f') => value.push('\u{c}'),
                    // Kept escaped: they only mean something to LIKE.
                    Some(c @ ('%' | '_')) => {
                        value.push('\\');
                        value.push(c);
                    }
                    other => {
                        let seq = other.map(String::from).unwrap_or_default();
                        return Err(SoqlError::malformed(format!(
                            "ERROR at Row:{row}:Column:{col}\nInvalid string literal. Illegal \
                             character sequence '\\{seq}' in string literal."
                        )));
                    }
                },
                Some(c) => value.push(c),
            }
        }
    }
}

fn classify_literal(text: &str) -> Option<Tok> {
    let bytes = text.as_bytes();
    let date_like = bytes.len() >= 10
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-';
    if date_like && bytes.len() == 10 {
        let date = Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
        return Some(Tok::Date(date));
    }
    if date_like && bytes[10] == b'T' {
        return OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(Tok::DateTime);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (all_digits(int) && all_digits(frac)).then(|| Tok::Number(text.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone)]
struct Name {
    text: String,
}

#[derive(Debug, Clone)]
enum Select {
    Count,
    Fields(Vec<Name>),
}

#[derive(Debug, Clone)]
enum Lit {
    Str(String),
    Num(f64),
    DateTime(OffsetDateTime),
    Date(Date),
    /// `true` / `false`: no EventLogFile field is boolean, so the value never matters.
    Bool,
    Null,
}

#[derive(Debug, Clone)]
enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Name, CmpOp, Lit),
    In(Name, bool, Vec<Lit>),
    Like(Name, Lit),
}

#[derive(Debug, Clone)]
struct Query {
    select: Select,
    from: Name,
    filter: Option<Expr>,
    order_by: Vec<(Name, bool)>,
    limit: Option<usize>,
    offset: Option<usize>,
}

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET",
    "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS", "FIRST", "LAST", "INCLUDES", "EXCLUDES",
];

struct Parser {
    toks: Vec<Spanned>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Spanned {
        // The lexer always ends the list with Eof and the parser never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Spanned {
        &self.toks[(self.pos + ahead).min(self.toks.len() - 1)]
    }

    fn advance(&mut self) -> Spanned {
        let tok = self.peek().clone();
        if tok.tok != Tok::Eof {
            self.pos += 1;
        }
        tok
    }

    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        SoqlError::malformed(format!(
            "ERROR at Row:{}:Column:{}\nunexpected token: '{}'",
            t.row, t.col, t.text
        ))
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.is_kw(kw);
        if found {
            self.advance();
        }
        found
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), SoqlError> {
        if &self.peek().tok == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn name(&mut self) -> Result<Name, SoqlError> {
        match &self.peek().tok {
            Tok::Ident(s) if !RESERVED.iter().any(|kw| s.eq_ignore_ascii_case(kw)) => {
                let text = s.clone();
                self.advance();
                Ok(Name { text })
            }
            _ => Err(self.unexpected()),
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let select = if self.is_kw("COUNT") && self.peek_at(1).tok == Tok::LParen {
            self.advance();
            self.advance();
            if self.peek().tok != Tok::RParen {
                return Err(SoqlError::malformed(
                    "only COUNT() is supported by the mock org, not COUNT(field)",
                ));
            }
            self.advance();
            Select::Count
        } else {
            let mut fields = vec![self.name()?];
            while self.peek().tok == Tok::Comma {
                self.advance();
                fields.push(self.name()?);
            }
            Select::Fields(fields)
        };
        self.expect_kw("FROM")?;
        let from = self.name()?;
        let filter = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let field = self.name()?;
                let desc = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                if self.eat_kw("NULLS") && !self.eat_kw("FIRST") && !self.eat_kw("LAST") {
                    return Err(self.unexpected());
                }
                order_by.push((field, desc));
                if self.peek().tok != Tok::Comma {
                    break;
                }
                self.advance();
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.count()?)
        } else {
            None
        };
        let offset = if self.eat_kw("OFFSET") {
            Some(self.count()?)
        } else {
            None
        };
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(Query {
            select,
            from,
            filter,
            order_by,
            limit,
            offset,
        })
    }

    fn count(&mut self) -> Result<usize, SoqlError> {
        match &self.peek().tok {
            Tok::Number(n) => match n.parse::<usize>() {
                Ok(n) => {
                    self.advance();
                    Ok(n)
                }
                Err(_) => Err(self.unexpected()),
            },
            _ => Err(self.unexpected()),
        }
    }

    /// Conditions joined by one kind of connective; SOQL demands parentheses to mix AND and OR.
    fn expr(&mut self) -> Result<Expr, SoqlError> {
        let first = self.unary()?;
        let mut items = vec![first];
        let mut conjunction: Option<bool> = None;
        loop {
            let is_and = if self.is_kw("AND") {
                true
            } else if self.is_kw("OR") {
                false
            } else {
                break;
            };
            if conjunction.is_some_and(|c| c != is_and) {
                return Err(self.unexpected());
            }
            conjunction = Some(is_and);
            self.advance();
            items.push(self.unary()?);
        }
        Ok(match conjunction {
            None => items.remove(0),
            Some(true) => Expr::And(items),
            Some(false) => Expr::Or(items),
        })
    }

    fn unary(&mut self) -> Result<Expr, SoqlError> {
        if self.eat_kw("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek().tok == Tok::LParen {
            self.advance();
            let inner = self.expr()?;
            self.expect(&Tok::RParen)?;
            return Ok(inner);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, SoqlError> {
        let field = self.name()?;
        if let Tok::Op(op) = self.peek().tok {
            self.advance();
            let lit = self.literal()?;
            return Ok(Expr::Cmp(field, op, lit));
        }
        if self.eat_kw("LIKE") {
            let lit = self.literal()?;
            return Ok(Expr::Like(field, lit));
        }
        let negated = self.eat_kw("NOT");
        if self.eat_kw("IN") {
            self.expect(&Tok::LParen)?;
            let mut list = vec![self.literal()?];
            while self.peek().tok == Tok::Comma {
                self.advance();
                list.push(self.literal()?);
            }
            self.expect(&Tok::RParen)?;
            return Ok(Expr::In(field, negated, list));
        }
        Err(self.unexpected())
    }

    fn literal(&mut self) -> Result<Lit, SoqlError> {
        let lit = match &self.peek().tok {
            Tok::Str(s) => Lit::Str(s.clone()),
            Tok::Number(n) => Lit::Num(n.parse::<f64>().map_err(|_| self.unexpected())?),
            Tok::DateTime(dt) => Lit::DateTime(*dt),
            Tok::Date(d) => Lit::Date(*d),
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                Lit::Bool
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("null") => Lit::Null,
            _ => return Err(self.unexpected()),
        };
        self.advance();
        Ok(lit)
    }
}

// ---------------------------------------------------------------------------------------------
// Fields and resolved plans

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
            .ok_or_else(|| SoqlError::no_such_column(name))?;
        // Interval arrived with hourly files in API 37.0; older versions don't know the column.
        if field == Field::Interval && api_version < 37.0 {
            return Err(SoqlError::no_such_column(name));
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
pub(crate) fn plan(soql: &str, api_version: f64, object_visible: bool) -> Result<Plan, SoqlError> {
    let toks = Lexer {
        chars: soql.chars().collect(),
        i: 0,
        row: 1,
        col: 1,
    }
    .tokens()?;
    let query = Parser { toks, pos: 0 }.query()?;
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
    let (count, fields) = match &query.select {
        Select::Count => (true, Vec::new()),
        Select::Fields(names) => {
            let mut fields: Vec<Field> = Vec::with_capacity(names.len());
            for name in names {
                let field = Field::lookup(&name.text, api_version)?;
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
fn like(text: &str, pattern: &str) -> bool {
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
    fn string_escapes() {
        let toks = Lexer {
            chars: r"'a\'b\\c\nd\te\r\b\f\x22'"
                .replace("\\x22", "\\\"")
                .chars()
                .collect(),
            i: 0,
            row: 1,
            col: 1,
        }
        .tokens()
        .unwrap();
        assert_eq!(
            toks[0].tok,
            Tok::Str("a'b\\c\nd\te\r\u{8}\u{c}\"".to_owned())
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
