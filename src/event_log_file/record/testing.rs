//! Random CSV for the property tests of the decoder and of decoding in segments.

use proptest::prelude::*;

/// A field as written: quoted (with doubled quotes, commas, line breaks of both kinds),
/// unquoted (quotes in it are text), and malformed (text after the closing quote, an
/// unbalanced quote).
pub(crate) fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{0,5}".prop_map(|s| format!("\"{s}\"")),
        4 => "[a-z\",\r\n]{0,8}".prop_map(|s| format!("\"{}\"", s.replace('"', "\"\""))),
        2 => "[a-z\"]{0,4}",
        1 => "\"[a-z,]{0,3}\"[a-z\"]{1,2}",
        1 => "\"[a-z\n]{0,3}",
    ]
}

/// A row of mostly three fields (the header's count), its line end LF, CRLF or CR, sometimes
/// followed by a blank line.
pub(crate) fn row() -> impl Strategy<Value = String> {
    (
        prop_oneof![20 => Just(3usize), 1 => Just(2usize), 1 => Just(4usize)],
        prop_oneof![
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
            Just("\n\n"),
            Just("\r\n\r\n")
        ],
    )
        .prop_flat_map(|(n, end)| {
            proptest::collection::vec(field(), n).prop_map(move |f| f.join(",") + end)
        })
}

/// A file: a BOM or not, the header `"A","B","C"`, `rows`, and the last line end kept or not.
pub(crate) fn csv(rows: &[String], bom: bool, last_line_end: bool) -> String {
    let mut csv = String::from(if bom { "\u{feff}" } else { "" });
    csv += "\"A\",\"B\",\"C\"\n";
    csv += &rows.concat();
    if !last_line_end {
        csv.truncate(csv.trim_end_matches(['\r', '\n']).len());
    }
    csv
}

/// A random file ([`csv`] of `rows` rows, a BOM or not, the last line end or not) and chunk
/// sizes below `max_chunk` to feed it in ([`chunked`]).
pub(crate) fn chunked_csv(
    rows: std::ops::Range<usize>,
    max_chunk: usize,
) -> impl Strategy<Value = (String, Vec<usize>)> {
    (
        proptest::collection::vec(row(), rows),
        proptest::collection::vec(1..max_chunk, 1..8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(rows, sizes, bom, last_line_end)| (csv(&rows, bom, last_line_end), sizes))
}

/// `bytes` cut into chunks of `sizes` bytes, the sizes cycled (a size of 0 counts as 1), as a
/// network read might deliver them.
pub(crate) fn chunked<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let (mut rest, mut sizes) = (bytes, sizes.iter().cycle());
    let mut chunks = Vec::new();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
        let (chunk, after) = rest.split_at(n);
        chunks.push(chunk);
        rest = after;
    }
    chunks
}
