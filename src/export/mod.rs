//! CSV exports for researchers. Cells are written so that spreadsheets never run them as formulas.

pub mod responses;

use std::borrow::Cow;

/// One CSV cell: quoted when it holds a separator, quote or line break, and prefixed with `'` when it
/// starts like a spreadsheet formula (`=`, `+`, `-`, `@`, tab or carriage return).
pub fn cell(text: &str) -> Cow<'_, str> {
    let neutral = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", neutral.replace('"', "\"\"")))
    } else {
        neutral
    }
}

/// Appends one record (cells already formatted by [`cell`] or numeric) and its line break.
pub fn push_record<S: AsRef<str>>(out: &mut String, cells: &[S]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(c.as_ref());
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
    }

    #[test]
    fn plain_cells_are_kept_and_separators_quoted() {
        assert_eq!(cell("conv1"), "conv1");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn a_record_ends_with_crlf() {
        let mut out = String::new();
        push_record(&mut out, &["a", "b"]);
        assert_eq!(out, "a,b\r\n");
    }
}
