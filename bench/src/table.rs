//! A plain-text table: a header row and left-aligned first column, the rest right-aligned.

use std::fmt::Write as _;

/// Rows of text cells, printed with columns sized to fit.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells print empty, extra cells are kept.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text, one line per row, a dashed rule under the header.
    pub fn render(&self) -> String {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; cols];
        for line in self.rows.iter().chain([&self.header]) {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                if i == 0 {
                    let _ = write!(text, "{cell:<w$}");
                } else {
                    let _ = write!(text, "  {cell:>w$}");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule);
        for r in &self.rows {
            line(r);
        }
        out
    }
}

/// A figure in nanoseconds per object, or `n/a` when it was not measured.
pub fn ns(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"))
}

/// A cost as `ns/obj (Mops/s)`, or `n/a`.
pub fn ns_mops(value: Option<f64>) -> String {
    value.map_or_else(
        || "n/a".to_string(),
        |v| format!("{v:.2} ({:.0})", crate::stats::mops(v)),
    )
}

/// A ring cell: best ns/object (its Mops/s), then the median after a `~`.
pub fn best_median(value: Option<crate::stats::Summary>) -> String {
    value.map_or_else(
        || "n/a".to_string(),
        |s| {
            format!(
                "{:.2} ({:.0}) ~{:.2}",
                s.best,
                crate::stats::mops(s.best),
                s.median
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut t = Table::new(["name", "ns"]);
        t.row(["a", "1.00"]);
        t.row(["longer", "10.00"]);
        assert_eq!(
            t.render(),
            "name       ns\n------  -----\na        1.00\nlonger  10.00\n"
        );
    }
}
