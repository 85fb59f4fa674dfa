//! CSV exports for researchers, written with the `csv` crate (RFC 4180 quoting, CRLF line ends, a
//! header row), readable by pandas and R without options. Cells holding user text are neutralised so
//! spreadsheets never run them as formulas; numbers are written as numbers.

pub mod responses;
pub mod study;
pub mod tables;

use std::borrow::Cow;

/// What `meilab export --what` and the dashboard downloads produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    Responses,
    Units,
    Agreement,
    Roc,
    LowerQuality,
    Plots,
}

impl What {
    /// The file name (the plots are a folder of SVG files).
    pub fn file_name(self) -> &'static str {
        match self {
            What::Responses => "responses.csv",
            What::Units => "units.csv",
            What::Agreement => "agreement.csv",
            What::Roc => "roc.csv",
            What::LowerQuality => "lower-quality.csv",
            What::Plots => "plots",
        }
    }
}

/// A text cell from user input: prefixed with `'` when it starts like a spreadsheet formula (`=`, `+`,
/// `-`, `@`, tab or carriage return). Quoting is the CSV writer's job.
pub fn cell(text: &str) -> Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// A CSV writer into memory, for streaming: rows are appended and taken out in chunks.
pub fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new())
}

/// Takes what `w` holds so far, leaving a fresh writer in its place.
pub fn take(w: &mut csv::Writer<Vec<u8>>) -> std::io::Result<Vec<u8>> {
    std::mem::replace(w, writer())
        .into_inner()
        .map_err(|e| e.into_error())
}

/// An optional number as a cell: empty when absent or not finite.
pub fn number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => v.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_cells_are_neutralised() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("+1"), "'+1");
        assert_eq!(cell("-2"), "'-2");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("\tx"), "'\tx");
        assert_eq!(cell("conv1"), "conv1");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn the_writer_quotes_separators_and_ends_records_with_crlf() {
        let mut w = writer();
        w.write_record(["a,b", "say \"hi\"", &cell("=1+1")])
            .unwrap();
        let out = String::from_utf8(take(&mut w).unwrap()).unwrap();
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",'=1+1\r\n");
    }

    #[test]
    fn missing_and_non_finite_numbers_are_empty_cells() {
        assert_eq!(number(Some(0.25)), "0.25");
        assert_eq!(number(Some(-0.5)), "-0.5");
        assert_eq!(number(None), "");
        assert_eq!(number(Some(f64::NAN)), "");
    }
}
