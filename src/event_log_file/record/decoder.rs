//! The incremental CSV decoder (csv-core): log file bytes, in chunks of any size, to rows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use csv_core::ReadRecordResult;

use super::{Declared, FieldType, LogRecord, Schema};
use crate::error::Error;
use crate::event_log_file::model::EventLogFile;

/// Turns a log file's bytes, fed in chunks of any size, into [`LogRecord`]s.
///
/// Memory holds one row at a time (plus the rows handed out), whatever the file's size.
pub struct LogFileDecoder {
    id: String,
    reader: csv_core::Reader,
    declared: Declared,
    schema: Option<Arc<Schema>>,
    fields: Vec<u8>,
    ends: Vec<usize>,
    out_len: usize,
    ends_len: usize,
    record_line: u64,
    /// Between rows: the next bytes that are line ends are blank lines, skipped here rather
    /// than by csv-core (see `decode`).
    between_rows: bool,
    /// Whether rows are read by [`fast_row`](Self::fast_row) where it can (always, except in
    /// the tests that compare it with csv-core alone).
    fast_rows: bool,
    started: bool,
    head: Vec<u8>,
    /// The row lent to [`feed_each`](Self::feed_each)'s callback, its buffers reused.
    row: Option<LogRecord>,
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Where decoded rows go: each is lent to the callback, whose error ends the decoding.
pub(crate) type EachRow<'a> = dyn FnMut(&LogRecord) -> Result<(), Error> + 'a;

/// The most fields a row may have. Salesforce's widest event types have about 130 columns; the
/// bound keeps a hostile or broken file (a row of millions of empty fields, each one byte) from
/// making the field index grow to many times the row's size.
const MAX_FIELDS: usize = 4096;

/// The longest row accepted. Real rows stay far below (a long SOQL query or Apex stack trace is
/// kilobytes); without a bound, an unbalanced quote would make the rest of a file of hundreds
/// of MB one row held in memory.
const MAX_ROW_BYTES: usize = 16 << 20;

impl fmt::Debug for LogFileDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogFileDecoder")
            .field("id", &self.id)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl LogFileDecoder {
    /// A decoder for the file `id`, typing columns by `LogFileFieldNames` / `LogFileFieldTypes`
    /// when given (columns they do not list are strings). Types given without names apply to the
    /// header's columns in order, when their counts agree.
    pub fn new(id: &str, field_names: Option<&str>, field_types: Option<&str>) -> Self {
        let declared = match (field_names, field_types) {
            (Some(names), Some(types)) => Declared::ByName(
                names
                    .split(',')
                    .zip(types.split(','))
                    .map(|(n, t)| (n.trim().to_string(), FieldType::from_salesforce(t)))
                    .collect(),
            ),
            (None, Some(types)) => {
                Declared::ByPosition(types.split(',').map(FieldType::from_salesforce).collect())
            }
            _ => Declared::ByName(HashMap::new()),
        };
        Self::with_declared(id, declared)
    }

    fn with_declared(id: &str, declared: Declared) -> Self {
        LogFileDecoder {
            id: id.to_string(),
            // A new reader, never a clone: csv-core 0.1's `Clone` copies only part of its
            // state table, and a cloned reader loops forever.
            reader: csv_core::Reader::new(),
            declared,
            schema: None,
            fields: vec![0; 4096],
            ends: vec![0; 64],
            out_len: 0,
            ends_len: 0,
            record_line: 1,
            between_rows: true,
            fast_rows: true,
            started: false,
            head: Vec::new(),
            row: None,
        }
    }

    /// A decoder for `file`.
    pub fn for_file(file: &EventLogFile) -> Self {
        Self::new(
            &file.id,
            file.log_file_field_names.as_deref(),
            file.log_file_field_types.as_deref(),
        )
    }

    /// The columns, once the header row was read.
    pub fn schema(&self) -> Option<&Arc<Schema>> {
        self.schema.as_ref()
    }

    /// A decoder that goes on with this file's rows from a row boundary at `line` (the file's
    /// line number there, counted as this decoder counts), with this one's columns and none of
    /// its state; `None` before the header row was read. Rows decoded by it are exactly those
    /// this decoder would decode from there, provided it is at a row start there
    /// ([`at_row_start`](Self::at_row_start)): that is how one file's rows are decoded on
    /// several threads (see `event_log::download`).
    pub(crate) fn continuation(&self, line: u64) -> Option<LogFileDecoder> {
        let schema = Arc::clone(self.schema.as_ref()?);
        // No declared types: they only build the schema, which a continuation already has.
        let mut decoder = LogFileDecoder::with_declared(&self.id, Declared::ByName(HashMap::new()));
        // Room for every field at once: the fast path reads no row with more fields than
        // `ends` holds.
        decoder.ends.resize(schema.len().clamp(64, MAX_FIELDS), 0);
        decoder.reader.set_line(line);
        decoder.schema = Some(schema);
        // Past the file's first bytes: no BOM to look for.
        decoder.started = true;
        Some(decoder)
    }

    /// Whether everything fed so far ended exactly at the end of a row (after its line end),
    /// with the header read. After input that ends with `\n` this is exact: a `\n` that does not
    /// end a row is inside a quoted field, where csv-core copies it out as field text.
    pub(crate) fn at_row_start(&self) -> bool {
        self.started
            && self.schema.is_some()
            && self.head.is_empty()
            && self.out_len == 0
            && self.ends_len == 0
    }

    /// Decodes `chunk`, appending every row it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<LogRecord>) -> Result<(), Error> {
        self.feed_each(chunk, &mut |row| {
            out.push(row.clone());
            Ok(())
        })
    }

    /// As [`feed`](Self::feed), lending each row to `each` instead: one row's buffers serve
    /// them all, without an allocation per row.
    pub(crate) fn feed_each(&mut self, chunk: &[u8], each: &mut EachRow<'_>) -> Result<(), Error> {
        // csv-core reads empty input as the end of the file; only `finish` may say that.
        if chunk.is_empty() {
            return Ok(());
        }
        if self.started {
            return self.decode(chunk, each);
        }
        // csv-core strips a UTF-8 BOM only when all three bytes come in its first input; a
        // network read can split them, so the first bytes are held back until that is decided.
        self.head.extend_from_slice(chunk);
        if self.head.len() < UTF8_BOM.len() {
            return Ok(());
        }
        self.start(each)
    }

    fn start(&mut self, each: &mut EachRow<'_>) -> Result<(), Error> {
        self.started = true;
        let head = std::mem::take(&mut self.head);
        self.decode(head.strip_prefix(UTF8_BOM).unwrap_or(&head), each)
    }

    fn decode(&mut self, chunk: &[u8], each: &mut EachRow<'_>) -> Result<(), Error> {
        let mut input = chunk;
        loop {
            if self.between_rows && !input.is_empty() {
                // csv-core skips line ends between rows (blank lines) without saying so. They
                // are skipped here instead, so that a row's line is where its first byte is,
                // counted the same by a decoder that starts there (`continuation`).
                let blank = input
                    .iter()
                    .position(|&b| b != b'\n' && b != b'\r')
                    .unwrap_or(input.len());
                let newlines = input[..blank].iter().filter(|&&b| b == b'\n').count();
                self.reader.set_line(self.reader.line() + newlines as u64);
                input = &input[blank..];
                if input.is_empty() {
                    // Not handed to csv-core: empty input means the end of the file to it.
                    return Ok(());
                }
                self.between_rows = false;
                self.record_line = self.reader.line();
                if self.fast_rows
                    && let Some(consumed) = self.fast_row(input)
                {
                    input = &input[consumed..];
                    self.between_rows = true;
                    self.complete_record(self.record_line, each)?;
                    continue;
                }
            }
            let (result, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.fields[self.out_len..],
                &mut self.ends[self.ends_len..],
            );
            input = &input[nin..];
            self.out_len += nout;
            self.ends_len += nend;
            match result {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    let len = self.fields.len();
                    if len >= MAX_ROW_BYTES {
                        return Err(self.error(
                            self.record_line,
                            format!(
                                "a row is longer than {} MiB; an unbalanced quote probably runs \
                                 it into the rest of the file",
                                MAX_ROW_BYTES >> 20
                            ),
                        ));
                    }
                    self.fields.resize((len * 2).min(MAX_ROW_BYTES), 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    if len >= MAX_FIELDS {
                        return Err(self.error(
                            self.record_line,
                            format!(
                                "a row has more than {MAX_FIELDS} fields; no event type has \
                                 that many columns, so the file is damaged"
                            ),
                        ));
                    }
                    self.ends.resize((len * 2).min(MAX_FIELDS), 0);
                }
                ReadRecordResult::Record => {
                    let line = self.record_line;
                    self.between_rows = true;
                    self.complete_record(line, each)?;
                    // An empty chunk is the end of input: csv-core reports the last record
                    // then; asking again would report End.
                    if chunk.is_empty() {
                        return Ok(());
                    }
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }

    /// Reads the row at the start of `input` without csv-core when it is whole there and plain:
    /// every field unquoted, or quoted with nothing between its closing quote and the next
    /// comma or line end. That is nearly every row Salesforce writes, and this reads it
    /// several times faster than csv-core's byte-at-a-time state machine. The field text and
    /// ends are csv-core's for the same bytes (`""` is one quote, a quoted line end is text);
    /// for anything else (a row cut by the end of `input`, text after a closing quote, a row
    /// larger than the buffers) it returns `None` having read nothing (lengths and line count
    /// unchanged; the buffers' bytes past them are scratch), and csv-core reads the row, its
    /// errors and buffer growth included. Returns the bytes consumed: the row and its `\n` or
    /// `\r` (a `\n` after that `\r` is skipped as a blank line).
    fn fast_row(&mut self, input: &[u8]) -> Option<usize> {
        let (mut pos, mut out, mut nends, mut newlines) = (0, 0, 0, 0u64);
        loop {
            let field_start = *input.get(pos)?;
            if field_start == b'"' {
                let mut start = pos + 1;
                loop {
                    let hit = start + memchr::memchr2(b'"', b'\n', &input[start..])?;
                    if input[hit] == b'\n' {
                        newlines += 1;
                        let text = input.get(start..=hit)?;
                        out = copy_field(&mut self.fields, out, text)?;
                        start = hit + 1;
                        continue;
                    }
                    let doubled = *input.get(hit + 1)? == b'"';
                    // A doubled quote is one quote of text, the closing quote is not text.
                    let text = input.get(start..hit + usize::from(doubled))?;
                    out = copy_field(&mut self.fields, out, text)?;
                    if doubled {
                        start = hit + 2;
                    } else {
                        pos = hit + 1;
                        break;
                    }
                }
            } else {
                let end = pos + memchr::memchr3(b',', b'\n', b'\r', &input[pos..])?;
                out = copy_field(&mut self.fields, out, &input[pos..end])?;
                pos = end;
            }
            *self.ends.get_mut(nends)? = out;
            nends += 1;
            match *input.get(pos)? {
                b',' => pos += 1,
                b'\n' => {
                    newlines += 1;
                    pos += 1;
                    break;
                }
                b'\r' => {
                    pos += 1;
                    break;
                }
                // Text after a closing quote: csv-core's lenient reading applies.
                _ => return None,
            }
        }
        self.out_len = out;
        self.ends_len = nends;
        self.reader.set_line(self.reader.line() + newlines);
        Some(pos)
    }

    /// Ends the input: decodes a last row that had no line end.
    pub fn finish(&mut self, out: &mut Vec<LogRecord>) -> Result<(), Error> {
        self.finish_each(&mut |row| {
            out.push(row.clone());
            Ok(())
        })
    }

    /// As [`finish`](Self::finish), lending the row to `each` (see
    /// [`feed_each`](Self::feed_each)).
    pub(crate) fn finish_each(&mut self, each: &mut EachRow<'_>) -> Result<(), Error> {
        if !self.started {
            self.start(each)?;
        }
        self.decode(&[], each)?;
        if self.out_len > 0 || self.ends_len > 0 {
            return Err(self.error(self.record_line, "the file ends inside a row"));
        }
        Ok(())
    }

    fn error(&self, line: u64, message: impl Into<String>) -> Error {
        Error::Csv {
            id: self.id.clone(),
            line,
            message: message.into(),
        }
    }

    fn complete_record(&mut self, line: u64, each: &mut EachRow<'_>) -> Result<(), Error> {
        let nfields = self.ends_len;
        let len = self.out_len;
        self.out_len = 0;
        self.ends_len = 0;
        let bytes = &self.fields[..len];
        let ends = &self.ends[..nfields];
        match &self.schema {
            None => {
                let mut names: Vec<Box<str>> = Vec::with_capacity(nfields);
                let mut start = 0;
                for &end in ends {
                    let raw = std::str::from_utf8(&bytes[start..end])
                        .map_err(|_| self.error(line, "the header row is not UTF-8"))?;
                    let name = raw.trim();
                    names.push(Box::from(name));
                    start = end;
                }
                if names.iter().all(|n| n.is_empty()) {
                    return Err(self.error(line, "the header row is empty"));
                }
                let types = self.declared.types_of(&self.id, &names);
                self.schema = Some(Arc::new(Schema::new(&self.id, names, types)));
                Ok(())
            }
            Some(schema) => {
                if nfields == 1 && len == 0 && schema.len() > 1 {
                    // A blank line (seen at the end of some files): no row.
                    return Ok(());
                }
                if nfields != schema.len() {
                    return Err(self.error(
                        line,
                        format!(
                            "the row has {nfields} fields but the header has {}",
                            schema.len()
                        ),
                    ));
                }
                let row = self.row.get_or_insert_with(|| LogRecord {
                    schema: Arc::clone(schema),
                    text: String::new(),
                    ends: Vec::new(),
                    line,
                });
                row.line = line;
                row.text.clear();
                row.ends.clear();
                // Salesforce writes UTF-8; a stray invalid byte is replaced rather than losing
                // the whole row.
                match std::str::from_utf8(bytes) {
                    Ok(text) => {
                        row.text.push_str(text);
                        row.ends.extend_from_slice(ends);
                    }
                    Err(_) => {
                        tracing::warn!(id = %self.id, line, "row is not valid UTF-8; replacing invalid bytes");
                        (row.text, row.ends) = lossy_keeping_ends(bytes, ends);
                    }
                }
                let (text, ends) = (std::mem::take(&mut row.text), std::mem::take(&mut row.ends));
                (row.text, row.ends) = unwrap_escaped(text, ends, schema.escaped());
                each(row)
            }
        }
    }
}

/// Whether an `EscapedString` value carries Salesforce's extra pair of quotes: the CSV field
/// `"""home"""` decodes to `"home"`, and `""""""` (an empty value) to `""`. Salesforce documents
/// the third quotation mark as an aid for parsers, not as part of the data.
fn has_escaping_artifact(value: &str) -> bool {
    value.len() >= 2 && value.starts_with('"') && value.ends_with('"')
}

/// Removes the extra pair of quotes from the `escaped` columns; rows without any keep their
/// text untouched (no copy).
fn unwrap_escaped(text: String, ends: Vec<usize>, escaped: &[usize]) -> (String, Vec<usize>) {
    let field = |i: usize| {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        text.get(start..ends[i]).unwrap_or("")
    };
    if !escaped
        .iter()
        .any(|&i| i < ends.len() && has_escaping_artifact(field(i)))
    {
        return (text, ends);
    }
    let mut out = String::with_capacity(text.len());
    let mut new_ends = Vec::with_capacity(ends.len());
    let mut next_escaped = escaped.iter().peekable();
    for i in 0..ends.len() {
        let mut value = field(i);
        if next_escaped.next_if_eq(&&i).is_some() && has_escaping_artifact(value) {
            value = &value[1..value.len() - 1];
        }
        out.push_str(value);
        new_ends.push(out.len());
    }
    (out, new_ends)
}

/// Appends `text` to the row's field bytes at `at`; the new length, `None` when the buffer is
/// full (csv-core then reads the row and grows it).
#[inline]
fn copy_field(fields: &mut [u8], at: usize, text: &[u8]) -> Option<usize> {
    let end = at.checked_add(text.len())?;
    fields.get_mut(at..end)?.copy_from_slice(text);
    Some(end)
}

/// Lossy UTF-8 conversion field by field, recomputing the field ends.
fn lossy_keeping_ends(bytes: &[u8], ends: &[usize]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(bytes.len());
    let mut new_ends = Vec::with_capacity(ends.len());
    let mut start = 0;
    for &end in ends {
        text.push_str(&String::from_utf8_lossy(&bytes[start..end]));
        new_ends.push(text.len());
        start = end;
    }
    (text, new_ends)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::event_log_file::record::testing::{chunked, chunked_csv};
    use proptest::prelude::*;

    /// Every row (line and fields) or the error, decoding `csv` in chunks of `sizes` (cycled).
    fn decoded(csv: &[u8], sizes: &[usize], fast_rows: bool) -> Result<Vec<String>, String> {
        let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
        decoder.fast_rows = fast_rows;
        let mut rows = Vec::new();
        let mut fed = || -> Result<(), Error> {
            for chunk in chunked(csv, sizes) {
                decoder.feed(chunk, &mut rows)?;
            }
            decoder.finish(&mut rows)
        };
        fed().map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .map(|r| format!("{}: {:?}", r.line(), r.iter().collect::<Vec<_>>()))
            .collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn plain_rows_read_without_csv_core_decode_as_csv_core_does(
            (csv, sizes) in chunked_csv(0..40, 200),
        ) {
            prop_assert_eq!(
                decoded(csv.as_bytes(), &sizes, true),
                decoded(csv.as_bytes(), &sizes, false)
            );
        }
    }

    #[test]
    fn plain_rows_are_read_without_csv_core_and_others_with_it() {
        let csv = b"\"A\",\"B\"\n\"1\",\"x\"\"y\"\"\nz\"\n\"2\"q,\"w\"\n";
        let mut decoder = LogFileDecoder::new("0AT000000000001AAA", None, None);
        let mut rows = Vec::new();
        decoder.feed(csv, &mut rows).unwrap();
        decoder.finish(&mut rows).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].iter().collect::<Vec<_>>(),
            [("A", "1"), ("B", "x\"y\"\nz")]
        );
        assert_eq!(
            rows[1].iter().collect::<Vec<_>>(),
            [("A", "2q"), ("B", "w")]
        );
        assert_eq!((rows[0].line(), rows[1].line()), (2, 4));
        // csv-core read only the second row (text after a closing quote): its line count
        // went on from the fast path's.
        assert_eq!(decoder.reader.line(), 5);
    }
}
