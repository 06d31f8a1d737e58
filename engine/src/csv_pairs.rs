//! Two-column CSV files as the engine reads them (routing tables, subscribers): one
//! `key,value` entry a line, UTF-8 with an optional byte order mark, CRLF or LF line ends,
//! `#` comments on their own line or after an entry, blank lines skipped, fields trimmed and
//! optionally wrapped in double quotes (no escaping), an optional header line naming the two
//! columns (any case) as the first entry line.
//!
//! The walk collects every malformed line with its number instead of stopping at the first;
//! to bound memory when a wholly wrong file is given, at most [`MAX_LINE_ERRORS`] are kept,
//! then only counted. What a value means, and how a problem is told, is the caller's.

use std::io::BufRead;

/// Malformed lines kept per file at most; the rest are counted.
pub const MAX_LINE_ERRORS: usize = 1_000;

/// What is wrong with a line before its fields mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("not UTF-8")]
    NotUtf8,
    /// Not two comma-separated fields: how many there were.
    #[error("expected 2 comma-separated fields, found {0}")]
    Fields(usize),
}

/// The walk over a file's lines.
#[derive(Debug)]
pub struct Walk<P> {
    /// (1-based line number, problem), in line order, at most [`MAX_LINE_ERRORS`].
    pub problems: Vec<(u64, P)>,
    /// Malformed lines beyond those kept.
    pub unlisted: u64,
    /// Reading stopped on this error.
    pub io_error: Option<std::io::Error>,
}

/// A problem with a file: it cannot be read, a line is malformed (`P` says how), or more
/// lines are than are listed.
#[derive(Debug, thiserror::Error)]
pub enum FileError<P: std::error::Error + 'static> {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Line { path: String, line: u64, problem: P },
    #[error("{path}: {more} more malformed lines not listed")]
    MoreLines { path: String, more: u64 },
}

impl<P: std::error::Error + 'static> Walk<P> {
    /// The walk's problems as errors naming the file `path`, in line order.
    pub fn errors(self, path: &str) -> impl Iterator<Item = FileError<P>> + '_ {
        let lines = self
            .problems
            .into_iter()
            .map(|(line, problem)| FileError::Line {
                path: path.to_owned(),
                line,
                problem,
            });
        let more = (self.unlisted > 0).then(|| FileError::MoreLines {
            path: path.to_owned(),
            more: self.unlisted,
        });
        let io = self.io_error.map(|source| FileError::Io {
            path: path.to_owned(),
            source,
        });
        lines.chain(more).chain(io)
    }
}

/// Hands each line of `input` (without a leading byte order mark) and its 1-based number to
/// `line`, keeping the problems it reports.
pub fn walk<P>(
    mut input: impl BufRead,
    mut line: impl FnMut(u64, &[u8]) -> Result<(), P>,
) -> Walk<P> {
    let mut w = Walk {
        problems: Vec::new(),
        unlisted: 0,
        io_error: None,
    };
    let mut buf = Vec::with_capacity(128);
    let mut number = 0u64;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                w.io_error = Some(e);
                break;
            }
        }
        number += 1;
        let bytes = match (number, buf.strip_prefix(b"\xEF\xBB\xBF")) {
            (1, Some(rest)) => rest,
            _ => &buf[..],
        };
        if let Err(p) = line(number, bytes) {
            if w.problems.len() < MAX_LINE_ERRORS {
                w.problems.push((number, p));
            } else {
                w.unlisted += 1;
            }
        }
    }
    w
}

/// A line's two fields; `Ok(None)` for a blank line, a comment, or the header (`header`'s
/// column names, any case) when it is the first entry line. `seen_entry` carries whether an
/// entry line came before.
pub fn pair<'a>(
    bytes: &'a [u8],
    seen_entry: &mut bool,
    header: [&str; 2],
) -> Result<Option<(&'a str, &'a str)>, PairError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PairError::NotUtf8)?;
    let text = text.split_once('#').map_or(text, |(entry, _)| entry).trim();
    if text.is_empty() {
        return Ok(None);
    }
    let first_entry = !std::mem::replace(seen_entry, true);
    let mut fields = text.split(',').map(field);
    let (Some(key), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(PairError::Fields(text.split(',').count()));
    };
    if first_entry && key.eq_ignore_ascii_case(header[0]) && value.eq_ignore_ascii_case(header[1]) {
        return Ok(None);
    }
    Ok(Some((key, value)))
}

/// A trimmed field without its surrounding double quotes.
fn field(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map_or(s, str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fields_comments_quotes_and_the_header() {
        let text = "\u{feff}Key,Value\r\n# note\n\n a , \"b\" # why\r\nk,v,extra\nkey,value\n";
        let mut seen = false;
        let mut got = Vec::new();
        let w = walk(text.as_bytes(), |n, bytes| {
            if let Some((k, v)) = pair(bytes, &mut seen, ["key", "value"])? {
                got.push((n, k.to_owned(), v.to_owned()));
            }
            Ok::<(), PairError>(())
        });
        assert_eq!(w.problems, vec![(5, PairError::Fields(3))]);
        assert_eq!(
            got,
            vec![
                (4, "a".into(), "b".into()),
                (6, "key".into(), "value".into())
            ],
            "a header is only one before the first entry"
        );
    }

    #[test]
    fn problems_beyond_the_limit_are_counted() {
        let text = "x\n".repeat(MAX_LINE_ERRORS + 5);
        let mut seen = false;
        let w = walk(text.as_bytes(), |_, bytes| {
            pair(bytes, &mut seen, ["k", "v"]).map(|_| ())
        });
        assert_eq!(w.problems.len(), MAX_LINE_ERRORS);
        assert_eq!(w.unlisted, 5);
        assert!(w.io_error.is_none());
    }
}
