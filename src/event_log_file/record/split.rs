//! Cutting a log file's CSV into segments at probable row boundaries, so that the segments can
//! be decoded on several threads at once (see `event_log::download`).
//!
//! A cut is placed after a `\n` preceded by an even number of `"` since the previous cut: in
//! CSV as Salesforce writes it (every field quoted, a quote inside a field doubled) that `\n`
//! ends a row. The guess is only a guess for other input (a stray quote in an unquoted field
//! flips the count), so whoever decodes a segment speculatively checks afterwards, with
//! [`LogFileDecoder::at_row_start`](super::LogFileDecoder::at_row_start) on the decoder of the
//! bytes before it, that the cut really was a row boundary.

use bytes::Bytes;

/// The bytes from one cut to the next.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The bytes, in order (a row longer than a chunk spans several).
    pub(crate) pieces: Vec<Bytes>,
    /// The file's line number at the segment's first byte: one more than the `\n`s before it,
    /// as the decoder counts lines.
    pub(crate) line: u64,
}

/// Cuts a stream of CSV chunks into [`Segment`]s at probable row boundaries.
#[derive(Debug, Default)]
pub(crate) struct RowSplitter {
    /// The bytes since the last cut.
    pending: Vec<Bytes>,
    pending_len: usize,
    /// Whether the pending bytes hold an odd number of `"`.
    pending_odd: bool,
    /// `\n`s before the pending bytes, and in them.
    newlines_before: u64,
    newlines_pending: u64,
}

/// The UTF-8 byte order mark: csv-core drops it at the start of what a new reader reads, so a
/// segment must not start with one (a file's own BOM is at its very start, never after a cut).
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

impl RowSplitter {
    /// Takes the next chunk of the file; returns the bytes up to the last probable row
    /// boundary in it, if there is one, and keeps the rest for the next segment.
    pub(crate) fn push(&mut self, chunk: Bytes) -> Option<Segment> {
        if chunk.is_empty() {
            return None;
        }
        let (quotes, newlines) = count_quotes_and_newlines(&chunk);
        let cut = last_cut(&chunk, self.pending_odd ^ (quotes % 2 == 1));
        let Some((cut, quotes_after, newlines_after)) = cut else {
            self.pending_odd ^= quotes % 2 == 1;
            self.newlines_pending += newlines;
            self.pending_len += chunk.len();
            self.pending.push(chunk);
            return None;
        };
        let mut pieces = std::mem::take(&mut self.pending);
        pieces.push(chunk.slice(..cut));
        let segment = Segment {
            pieces,
            line: 1 + self.newlines_before,
        };
        self.newlines_before += self.newlines_pending + (newlines - newlines_after);
        self.newlines_pending = newlines_after;
        self.pending_odd = quotes_after % 2 == 1;
        self.pending_len = chunk.len() - cut;
        if cut < chunk.len() {
            self.pending.push(chunk.slice(cut..));
        }
        Some(segment)
    }

    /// Bytes taken since the last cut.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending_len
    }

    /// The bytes since the last cut, as a segment (none if there are none); the splitter
    /// starts again after them.
    pub(crate) fn take_pending(&mut self) -> Option<Segment> {
        if self.pending.is_empty() {
            return None;
        }
        let segment = Segment {
            pieces: std::mem::take(&mut self.pending),
            line: 1 + self.newlines_before,
        };
        self.newlines_before += self.newlines_pending;
        self.newlines_pending = 0;
        self.pending_odd = false;
        self.pending_len = 0;
        Some(segment)
    }
}

/// `"`s and `\n`s in `bytes`, counted in blocks of 255 with byte-wide counters so that the
/// loop vectorizes: this pass runs over every byte of the file.
fn count_quotes_and_newlines(bytes: &[u8]) -> (u64, u64) {
    let (mut quotes, mut newlines) = (0u64, 0u64);
    for block in bytes.chunks(255) {
        let (mut q, mut n) = (0u8, 0u8);
        for &b in block {
            q += u8::from(b == b'"');
            n += u8::from(b == b'\n');
        }
        quotes += u64::from(q);
        newlines += u64::from(n);
    }
    (quotes, newlines)
}

/// The last position in `chunk` just after a `\n` with an even number of quotes before it
/// (counted from the last cut, `odd_at_end` telling the parity at the chunk's end), followed
/// by at least three bytes that are not a BOM; with the `"`s and `\n`s after it. Walks back
/// from the end, so it usually reads one row.
fn last_cut(chunk: &[u8], odd_at_end: bool) -> Option<(usize, u64, u64)> {
    let (mut quotes_after, mut newlines_after) = (0u64, 0u64);
    for (i, &b) in chunk.iter().enumerate().rev() {
        match b {
            b'"' => quotes_after += 1,
            b'\n' => {
                let cut = i + 1;
                let odd_before = odd_at_end ^ (quotes_after % 2 == 1);
                let next = chunk.get(cut..cut + 3);
                if !odd_before && next.is_some_and(|next| next != UTF8_BOM) {
                    return Some((cut, quotes_after, newlines_after));
                }
                newlines_after += 1;
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn concat(segment: &Segment) -> Vec<u8> {
        segment
            .pieces
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect()
    }

    #[test]
    fn cuts_after_the_last_row_end_outside_quotes() {
        let mut splitter = RowSplitter::default();
        let csv = b"\"A\",\"B\"\n\"1\",\"x\ny\"\n\"2\",\"3\"\n\"4\"";
        let segment = splitter.push(Bytes::from_static(csv)).unwrap();
        assert_eq!(
            concat(&segment),
            b"\"A\",\"B\"\n\"1\",\"x\ny\"\n\"2\",\"3\"\n"
        );
        assert_eq!(segment.line, 1);
        assert_eq!(splitter.pending_len(), 3);
        let rest = splitter.take_pending().unwrap();
        assert_eq!(concat(&rest), b"\"4\"");
        // Four `\n`s before it, one of them inside a quoted field: line 5, as csv-core counts.
        assert_eq!(rest.line, 5);
    }

    #[test]
    fn a_newline_inside_quotes_is_not_a_cut() {
        let mut splitter = RowSplitter::default();
        assert!(splitter.push(Bytes::from_static(b"\"a\n")).is_none());
        assert!(splitter.push(Bytes::from_static(b"b\nc\",\"d")).is_none());
        let segment = splitter.push(Bytes::from_static(b"\"\n\"e\"")).unwrap();
        assert_eq!(concat(&segment), b"\"a\nb\nc\",\"d\"\n");
        assert_eq!(splitter.take_pending().unwrap().line, 4);
    }

    #[test]
    fn never_cuts_before_a_bom_or_too_near_the_end_to_tell() {
        let mut splitter = RowSplitter::default();
        let csv = b"\"A\"\n\"1\"\n\xef\xbb\xbf\"2\"\n\"3";
        let segment = splitter.push(Bytes::from_static(csv)).unwrap();
        // Not after the last `\n` (two bytes follow), nor before the BOM.
        assert_eq!(concat(&segment), b"\"A\"\n");
    }

    #[test]
    fn counts_match_a_plain_count() {
        let bytes: Vec<u8> = (0..2000u32)
            .map(|i| b"\"\nab"[(i * 7 % 4) as usize])
            .collect();
        let plain = (
            bytes.iter().filter(|&&b| b == b'"').count() as u64,
            bytes.iter().filter(|&&b| b == b'\n').count() as u64,
        );
        assert_eq!(count_quotes_and_newlines(&bytes), plain);
    }
}
