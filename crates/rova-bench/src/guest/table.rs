//! Value formatters and the small [`Table`] rendered as aligned text or
//! markdown.

use super::*;

pub(super) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

pub(super) fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

pub(super) fn mean_mib(kib: &[u64]) -> String {
    if kib.is_empty() {
        return "?".into();
    }
    format!(
        "{:.0}",
        kib.iter().sum::<u64>() as f64 / kib.len() as f64 / 1024.0
    )
}

pub(super) fn max_mib(kib: &[u64]) -> String {
    mib(kib.iter().max().copied())
}

pub(super) fn msec(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

pub(super) fn sec(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// A small table rendered as aligned text or markdown.
pub(super) struct Table {
    pub(super) head: Vec<String>,
    pub(super) rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(super) fn text(&self) -> String {
        let all: Vec<&Vec<String>> = std::iter::once(&self.head).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.head.len())
            .map(|c| {
                all.iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (i, r) in all.iter().enumerate() {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    let s = r.get(c).map_or("", String::as_str);
                    format!("{s}{}", " ".repeat(w - s.chars().count()))
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
                out.push('\n');
            }
        }
        out
    }

    pub(super) fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.head.join(" | "));
        // Numbers right, text left.
        for i in 0..self.head.len() {
            let numeric = self.rows.iter().all(|r| {
                r.get(i)
                    .and_then(|c| c.chars().next())
                    .is_none_or(|c| c.is_ascii_digit() || c == '?')
            });
            s.push_str(if numeric { "---:|" } else { "---|" });
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        s
    }
}

/// A duration formatter (`msec` or `sec`).
pub(super) type Fmt = fn(Duration) -> String;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.text(), "a    bb\n-------\nxyz  1\n");
        assert_eq!(t.markdown(), "| a | bb |\n|---|---:|\n| xyz | 1 |\n");
    }
}
