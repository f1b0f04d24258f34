//! SOQL tokens.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use super::SoqlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
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
pub(crate) struct Spanned {
    pub(crate) tok: Tok,
    pub(crate) text: String,
    pub(crate) row: usize,
    pub(crate) col: usize,
}

pub(crate) struct Lexer {
    pub(crate) chars: Vec<char>,
    pub(crate) i: usize,
    pub(crate) row: usize,
    pub(crate) col: usize,
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

    pub(crate) fn tokens(mut self) -> Result<Vec<Spanned>, SoqlError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
