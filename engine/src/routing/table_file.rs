//! Operator table files: `prefix,operator` and `number,operator`.
//!
//! Role: read a table file into rows, collecting every malformed line with its line number
//! instead of stopping at the first, so that one reload attempt shows all that is wrong.
//!
//! Format, one entry a line:
//! - `prefix,operator` (prefix files) or `number,operator` (porting files). A prefix is 1 to
//!   15 digits with or without `+`; a number is a full E.164 number with `+`, checked for
//!   shape only (see [`Msisdn::parse_shape`]).
//! - An optional header line naming the two columns (`prefix,operator` or
//!   `number,operator`, any case) as the first entry line.
//! - `#` starts a comment, on its own line or after an entry; blank lines are skipped.
//! - Fields are trimmed and may be wrapped in double quotes; there is no escaping (operator
//!   names and digits need none). A UTF-8 byte order mark and CRLF line ends are accepted.
//! - Every operator must be one the configuration names.
//!
//! Problems with a line name the file and line; porting numbers appear masked. To bound
//! memory when a wholly wrong file is given, at most [`MAX_LINE_ERRORS`] lines are listed per
//! file, then the count of the rest.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::number::{mask_digits, Msisdn};
use super::prefixes::{Prefix, PrefixError};
use super::OperatorId;

pub use crate::csv_pairs::MAX_LINE_ERRORS;
use crate::csv_pairs::{self, PairError};

/// Which table a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `prefix,operator`
    Prefixes,
    /// `number,operator`: porting overrides
    Numbers,
}

impl Kind {
    fn key_column(self) -> &'static str {
        match self {
            Kind::Prefixes => "prefix",
            Kind::Numbers => "number",
        }
    }
}

/// A parsed key: a prefix or a full number, by [`Kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Prefix(Prefix),
    Number(Msisdn),
}

/// One entry and the line it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub key: Key,
    pub operator: OperatorId,
    /// 1-based line number.
    pub line: u32,
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error(transparent)]
    Pair(#[from] PairError),
    #[error("prefix {text:?}: {error}")]
    Prefix { text: String, error: PrefixError },
    /// The number as given, masked.
    #[error("number {masked}: not + and 7 to 15 digits, the first not zero")]
    Number { masked: String },
    #[error("empty operator")]
    EmptyOperator,
    #[error("unknown operator {0:?}")]
    UnknownOperator(String),
    #[error("beyond line {max}", max = u32::MAX)]
    TooLong,
}

/// A problem with a file.
pub type FileError = csv_pairs::FileError<LineProblem>;

/// Reads `path`, giving each entry to `rows` and appending its problems to `errors`.
pub fn read_file(
    path: &Path,
    kind: Kind,
    operator: &mut dyn FnMut(&str) -> Option<OperatorId>,
    rows: &mut dyn FnMut(Row),
    errors: &mut Vec<FileError>,
) {
    let name = path.display().to_string();
    match File::open(path) {
        Ok(f) => read(
            BufReader::with_capacity(1 << 16, f),
            &name,
            kind,
            operator,
            rows,
            errors,
        ),
        Err(source) => errors.push(FileError::Io { path: name, source }),
    }
}

/// Reads table text from `input`; `name` labels its problems.
pub fn read(
    input: impl BufRead,
    name: &str,
    kind: Kind,
    operator: &mut dyn FnMut(&str) -> Option<OperatorId>,
    rows: &mut dyn FnMut(Row),
    errors: &mut Vec<FileError>,
) {
    let mut seen_entry = false;
    let walk = csv_pairs::walk(input, |line_no, bytes| {
        let line = u32::try_from(line_no).map_err(|_| LineProblem::TooLong)?;
        if let Some((key, op)) = parse_line(bytes, kind, &mut seen_entry, operator)? {
            rows(Row {
                key,
                operator: op,
                line,
            });
        }
        Ok(())
    });
    errors.extend(walk.errors(name));
}

/// One line: `Ok(None)` for a blank line, a comment or the header.
fn parse_line(
    bytes: &[u8],
    kind: Kind,
    seen_entry: &mut bool,
    operator: &mut dyn FnMut(&str) -> Option<OperatorId>,
) -> Result<Option<(Key, OperatorId)>, LineProblem> {
    let Some((key, op)) = csv_pairs::pair(bytes, seen_entry, [kind.key_column(), "operator"])?
    else {
        return Ok(None);
    };
    let key = match kind {
        Kind::Prefixes => Key::Prefix(Prefix::parse(key).map_err(|error| LineProblem::Prefix {
            text: key.to_owned(),
            error,
        })?),
        Kind::Numbers => {
            Key::Number(Msisdn::parse_shape(key).map_err(|_| LineProblem::Number {
                masked: mask_digits(key.strip_prefix('+').unwrap_or(key)),
            })?)
        }
    };
    if op.is_empty() {
        return Err(LineProblem::EmptyOperator);
    }
    let id = operator(op).ok_or_else(|| LineProblem::UnknownOperator(op.to_owned()))?;
    Ok(Some((key, id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(name: &str) -> Option<OperatorId> {
        ["uk", "fr"]
            .iter()
            .position(|o| *o == name)
            .map(|i| OperatorId(i as u16))
    }

    fn parse(kind: Kind, text: &[u8]) -> (Vec<Row>, Vec<String>) {
        let (mut rows, mut errors) = (Vec::new(), Vec::new());
        read(
            text,
            "t.csv",
            kind,
            &mut ops,
            &mut |r| rows.push(r),
            &mut errors,
        );
        (rows, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_well_formed_prefix_file() {
        let text = "\u{feff}Prefix, Operator\r\n# uk first\n+44,uk\n\n  33 , \"fr\"  # france\r\n";
        let (rows, errors) = parse(Kind::Prefixes, text.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        let keys: Vec<_> = rows.iter().map(|r| (r.key, r.operator, r.line)).collect();
        assert_eq!(
            keys,
            [
                (
                    Key::Prefix(Prefix::parse("44").expect("p")),
                    OperatorId(0),
                    3
                ),
                (
                    Key::Prefix(Prefix::parse("33").expect("p")),
                    OperatorId(1),
                    5
                ),
            ]
        );
    }

    #[test]
    fn every_malformed_line_is_reported_with_its_number() {
        let text = b"44,uk\n4x,uk\n44\n0,uk\n33,fr,extra\n1,mars\n\xff\xfe,uk\n2,\n7,fr\n";
        let (rows, errors) = parse(Kind::Prefixes, text);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            errors,
            [
                "t.csv:2: prefix \"4x\": not all digits",
                "t.csv:3: expected 2 comma-separated fields, found 1",
                "t.csv:4: prefix \"0\": starts with 0 (a prefix starts with a country code)",
                "t.csv:5: expected 2 comma-separated fields, found 3",
                "t.csv:6: unknown operator \"mars\"",
                "t.csv:7: not UTF-8",
                "t.csv:8: empty operator",
            ]
        );
    }

    #[test]
    fn a_header_is_only_accepted_first() {
        let (_, errors) = parse(Kind::Prefixes, b"44,uk\nprefix,operator\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (_, errors) = parse(Kind::Prefixes, b"number,operator\n44,uk\n");
        assert_eq!(errors.len(), 1, "the header of the other kind: {errors:?}");
    }

    #[test]
    fn porting_numbers_are_masked_in_errors() {
        let text = b"number,operator\n+447700900123,uk\n447700900123,uk\n+4477009001234567,fr\n";
        let (rows, errors) = parse(Kind::Numbers, text);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            errors,
            [
                "t.csv:3: number +********0123: not + and 7 to 15 digits, the first not zero",
                "t.csv:4: number +************4567: not + and 7 to 15 digits, the first not zero",
            ]
        );
    }

    #[test]
    fn a_wholly_wrong_file_lists_a_bounded_number_of_lines() {
        let text = "44;uk\n".repeat(MAX_LINE_ERRORS + 5);
        let (rows, errors) = parse(Kind::Prefixes, text.as_bytes());
        assert!(rows.is_empty());
        assert_eq!(errors.len(), MAX_LINE_ERRORS + 1);
        assert_eq!(
            errors[MAX_LINE_ERRORS],
            "t.csv: 5 more malformed lines not listed"
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let mut errors = Vec::new();
        let path = Path::new("/nonexistent/pigeon/prefixes.csv");
        read_file(path, Kind::Prefixes, &mut ops, &mut |_| {}, &mut errors);
        assert!(matches!(&errors[..], [FileError::Io { .. }]), "{errors:?}");
    }
}
