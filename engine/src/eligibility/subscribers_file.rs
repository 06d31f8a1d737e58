//! Subscribers files: `customer_ref,preference`.
//!
//! Role: read a subscribers file into entries, collecting every malformed line with its line
//! number instead of stopping at the first (the habit of `routing/table_file.rs`).
//!
//! Format, one entry a line:
//! - `customer_ref,preference`, the preference one of `subscribed`, `opted_out`,
//!   `not_subscribed`; a customer_ref is 1 to 64 bytes, as in debit events.
//! - An optional header line `customer_ref,preference` (any case) as the first entry line.
//! - `#` starts a comment, on its own line or after an entry; blank lines are skipped.
//! - Fields are trimmed and may be wrapped in double quotes; there is no escaping. A UTF-8
//!   byte order mark and CRLF line ends are accepted.
//! - A customer named twice takes the preference of the later line.
//!
//! Problems never quote a line's text: a customer reference is personal data, and a line
//! with its columns swapped would show one as the preference. To bound memory when a wholly
//! wrong file is given, at most [`MAX_LINE_ERRORS`] lines are listed, then the count of the
//! rest.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::Preference;

pub use crate::csv_pairs::MAX_LINE_ERRORS;
use crate::csv_pairs::{self, PairError};

/// Longest customer reference, in bytes (the debit event's limit).
pub const MAX_REF_BYTES: usize = 64;

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error(transparent)]
    Pair(#[from] PairError),
    #[error("empty customer_ref")]
    EmptyRef,
    #[error("customer_ref longer than {MAX_REF_BYTES} bytes")]
    RefTooLong,
    #[error("unknown preference (expected subscribed, opted_out or not_subscribed)")]
    Preference,
}

/// A problem with a file.
pub type FileError = csv_pairs::FileError<LineProblem>;

/// Reads `path`, giving each entry to `entry` and appending its problems to `errors`;
/// returns the number of entries.
pub fn read_file(
    path: &Path,
    entry: &mut dyn FnMut(&str, Preference),
    errors: &mut Vec<FileError>,
) -> u64 {
    let name = path.display().to_string();
    match File::open(path) {
        Ok(f) => read(BufReader::with_capacity(1 << 16, f), &name, entry, errors),
        Err(source) => {
            errors.push(FileError::Io { path: name, source });
            0
        }
    }
}

/// Reads subscribers text from `input`; `name` labels its problems. Returns the number of
/// entries.
pub fn read(
    input: impl BufRead,
    name: &str,
    entry: &mut dyn FnMut(&str, Preference),
    errors: &mut Vec<FileError>,
) -> u64 {
    let (mut entries, mut seen_entry) = (0u64, false);
    let walk = csv_pairs::walk(input, |_, bytes| {
        if let Some((customer_ref, preference)) = parse_line(bytes, &mut seen_entry)? {
            entries += 1;
            entry(customer_ref, preference);
        }
        Ok(())
    });
    errors.extend(walk.errors(name));
    entries
}

/// One line: `Ok(None)` for a blank line, a comment or the header.
fn parse_line<'a>(
    bytes: &'a [u8],
    seen_entry: &mut bool,
) -> Result<Option<(&'a str, Preference)>, LineProblem> {
    let Some((customer_ref, preference)) =
        csv_pairs::pair(bytes, seen_entry, ["customer_ref", "preference"])?
    else {
        return Ok(None);
    };
    if customer_ref.is_empty() {
        return Err(LineProblem::EmptyRef);
    }
    if customer_ref.len() > MAX_REF_BYTES {
        return Err(LineProblem::RefTooLong);
    }
    let preference = Preference::parse(preference).ok_or(LineProblem::Preference)?;
    Ok(Some((customer_ref, preference)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> (Vec<(String, Preference)>, Vec<String>) {
        let (mut rows, mut errors) = (Vec::new(), Vec::new());
        let n = read(
            text,
            "s.csv",
            &mut |r, p| rows.push((r.to_owned(), p)),
            &mut errors,
        );
        assert_eq!(n, rows.len() as u64);
        (rows, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_well_formed_file() {
        let text = "\u{feff}Customer_Ref,Preference\r\n# exported nightly\n\
                    cust-1,subscribed\n\n  cust-2 , \"opted_out\"  # asked by phone\r\n\
                    \"cust-3\",not_subscribed\n";
        let (rows, errors) = parse(text.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rows,
            [
                ("cust-1".to_owned(), Preference::Subscribed),
                ("cust-2".to_owned(), Preference::OptedOut),
                ("cust-3".to_owned(), Preference::NotSubscribed),
            ]
        );
    }

    #[test]
    fn every_malformed_line_is_reported_with_its_number_and_no_reference() {
        let long = "x".repeat(MAX_REF_BYTES + 1);
        let text = format!(
            "cust-1,opted_out\ncust-2\n,subscribed\n{long},subscribed\ncust-5,optout\n\
             cust-6,opted_out,extra\n\u{ff},subscribed\ncust-8,subscribed\n\
             customer_ref,preference\nopted_out,cust-10\n"
        );
        let mut bytes = text.into_bytes();
        // Line 7 as invalid UTF-8 (`format!` cannot hold it).
        let at = bytes
            .windows(2)
            .position(|w| w == "\u{ff}".as_bytes())
            .expect("marker");
        bytes.splice(at..at + 2, [0xff]);
        let (rows, errors) = parse(&bytes);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            errors,
            [
                "s.csv:2: expected 2 comma-separated fields, found 1",
                "s.csv:3: empty customer_ref",
                "s.csv:4: customer_ref longer than 64 bytes",
                "s.csv:5: unknown preference (expected subscribed, opted_out or not_subscribed)",
                "s.csv:6: expected 2 comma-separated fields, found 3",
                "s.csv:7: not UTF-8",
                "s.csv:9: unknown preference (expected subscribed, opted_out or not_subscribed)",
                "s.csv:10: unknown preference (expected subscribed, opted_out or not_subscribed)",
            ]
        );
        assert!(
            !errors.iter().any(|e| e.contains("cust-")),
            "no customer reference in problems: {errors:?}"
        );
    }

    #[test]
    fn a_wholly_wrong_file_lists_a_bounded_number_of_lines() {
        let text = "cust;opted_out\n".repeat(MAX_LINE_ERRORS + 3);
        let (rows, errors) = parse(text.as_bytes());
        assert!(rows.is_empty());
        assert_eq!(errors.len(), MAX_LINE_ERRORS + 1);
        assert_eq!(
            errors[MAX_LINE_ERRORS],
            "s.csv: 3 more malformed lines not listed"
        );
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let mut errors = Vec::new();
        let path = Path::new("/nonexistent/pigeon/subscribers.csv");
        read_file(path, &mut |_, _| {}, &mut errors);
        assert!(matches!(&errors[..], [FileError::Io { .. }]), "{errors:?}");
    }
}
