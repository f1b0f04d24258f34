//! The SOQL syntax tree and its recursive-descent parser.

use time::{Date, OffsetDateTime};

use super::SoqlError;
use super::lexer::{CmpOp, Lexer, Spanned, Tok};

#[derive(Debug, Clone)]
pub(crate) struct Name {
    pub(crate) text: String,
}

#[derive(Debug, Clone)]
pub(crate) enum Select {
    /// `COUNT()`.
    Count,
    Items(Vec<SelectItem>),
}

#[derive(Debug, Clone)]
pub(crate) enum SelectItem {
    Field(Name),
    /// `FIELDS(STANDARD)`, `FIELDS(ALL)`, `FIELDS(CUSTOM)`: the word, upper case.
    FieldsOf(String),
    /// Any other function in the SELECT list (`COUNT(Id)`, `MAX(EventDate)`,
    /// `CALENDAR_YEAR(EventDate)`): its name, upper case, and argument.
    Function(String, Option<Name>),
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Str(String),
    Num(f64),
    DateTime(OffsetDateTime),
    Date(Date),
    /// `true` / `false`: no EventLogFile field is boolean, so the value never matters.
    Bool,
    Null,
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Name, CmpOp, Lit),
    In(Name, bool, Vec<Lit>),
    Like(Name, Lit),
}

#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) select: Select,
    pub(crate) from: Name,
    pub(crate) filter: Option<Expr>,
    pub(crate) order_by: Vec<(Name, bool)>,
    pub(crate) limit: Option<usize>,
    pub(crate) offset: Option<usize>,
    /// `GROUP BY` fields (never evaluated: only checked against the objects' rules).
    pub(crate) group_by: Vec<Name>,
    /// Whether the query has a `HAVING` clause (read past, never evaluated).
    pub(crate) having: bool,
}

const RESERVED: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT", "OFFSET",
    "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS", "FIRST", "LAST", "INCLUDES", "EXCLUDES",
    "GROUP", "HAVING",
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
        let select = if self.is_kw("COUNT")
            && self.peek_at(1).tok == Tok::LParen
            && self.peek_at(2).tok == Tok::RParen
        {
            self.advance();
            self.advance();
            self.advance();
            Select::Count
        } else {
            let mut items = vec![self.select_item()?];
            while self.peek().tok == Tok::Comma {
                self.advance();
                items.push(self.select_item()?);
            }
            Select::Items(items)
        };
        self.expect_kw("FROM")?;
        let from = self.name()?;
        let filter = if self.eat_kw("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_kw("GROUP") {
            self.expect_kw("BY")?;
            group_by.push(self.name()?);
            while self.peek().tok == Tok::Comma {
                self.advance();
                group_by.push(self.name()?);
            }
        }
        // HAVING's condition holds aggregates the expression parser does not take: it is read
        // past up to the next clause, since no object of the mock evaluates it.
        let having = self.eat_kw("HAVING");
        if having {
            while self.peek().tok != Tok::Eof
                && !self.is_kw("ORDER")
                && !self.is_kw("LIMIT")
                && !self.is_kw("OFFSET")
            {
                self.advance();
            }
        }
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
            group_by,
            having,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem, SoqlError> {
        let function = match &self.peek().tok {
            Tok::Ident(s) if self.peek_at(1).tok == Tok::LParen => Some(s.to_ascii_uppercase()),
            _ => None,
        };
        let Some(function) = function else {
            return Ok(SelectItem::Field(self.name()?));
        };
        self.advance();
        self.advance();
        let item = if function == "FIELDS" {
            let which = match &self.peek().tok {
                Tok::Ident(s)
                    if ["STANDARD", "ALL", "CUSTOM"]
                        .iter()
                        .any(|w| s.eq_ignore_ascii_case(w)) =>
                {
                    s.to_ascii_uppercase()
                }
                _ => return Err(self.unexpected()),
            };
            self.advance();
            SelectItem::FieldsOf(which)
        } else if self.peek().tok == Tok::RParen {
            SelectItem::Function(function, None)
        } else {
            SelectItem::Function(function, Some(self.name()?))
        };
        self.expect(&Tok::RParen)?;
        Ok(item)
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

/// Tokenizes and parses `soql`; syntax errors are `MALFORMED_QUERY`, as Salesforce reports them.
pub(crate) fn parse(soql: &str) -> Result<Query, SoqlError> {
    let toks = Lexer {
        chars: soql.chars().collect(),
        i: 0,
        row: 1,
        col: 1,
    }
    .tokens()?;
    Parser { toks, pos: 0 }.query()
}
