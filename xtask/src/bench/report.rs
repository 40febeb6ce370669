//! Results: metrics over repeated runs (median, min, max, against a target), printed as a text
//! table and written into `BENCHMARKS.md`.
//!
//! Each section of `BENCHMARKS.md` that `cargo xtask bench` produces sits between two markers,
//! `<!-- xtask-bench:begin ID -->` and `<!-- xtask-bench:end ID -->`: a run replaces its own
//! sections and leaves the rest of the file (hand-written sections, other scenarios) alone.
use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

/// A target a metric should meet.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

impl Goal {
    fn met_by(self, v: f64) -> bool {
        match self {
            Goal::AtMost(t) => v <= t,
            Goal::AtLeast(t) => v >= t,
        }
    }
}

/// One measured quantity, one sample per run.
#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub unit: &'static str,
    pub samples: Vec<f64>,
    pub goal: Option<Goal>,
    /// Digits after the decimal point when printed.
    pub decimals: usize,
}

impl Metric {
    pub fn new(name: &str, unit: &'static str, decimals: usize, goal: Option<Goal>) -> Metric {
        Metric { name: name.into(), unit, samples: Vec::new(), goal, decimals }
    }

    /// A metric measured once (a scenario that runs once).
    pub fn single(name: &str, unit: &'static str, decimals: usize, goal: Option<Goal>, v: f64) -> Metric {
        Metric { name: name.into(), unit, samples: vec![v], goal, decimals }
    }

    pub fn median(&self) -> f64 {
        median(&self.samples)
    }

    pub fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub fn max(&self) -> f64 {
        self.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    fn num(&self, v: f64) -> String {
        if !v.is_finite() {
            return "-".into();
        }
        let s = format!("{v:.*}", self.decimals);
        // Thousands separators for large numbers (events/s).
        if self.decimals == 0 && v.abs() >= 10_000.0 { group_thousands(&s) } else { s }
    }

    fn target(&self) -> String {
        match self.goal {
            None => String::new(),
            Some(Goal::AtMost(t)) => format!("≤ {} {}", self.num(t), self.unit),
            Some(Goal::AtLeast(t)) => format!("≥ {} {}", self.num(t), self.unit),
        }
    }

    /// "met" or "MISSED" by the median; "…, inside the noise" when the target lies within the
    /// runs' spread (some runs on either side of it).
    fn verdict(&self) -> &'static str {
        let Some(g) = self.goal else { return "" };
        if self.samples.is_empty() {
            return "";
        }
        let t = match g {
            Goal::AtMost(t) | Goal::AtLeast(t) => t,
        };
        let noisy = self.samples.len() > 1 && self.min() < t && t < self.max();
        match (g.met_by(self.median()), noisy) {
            (true, false) => "met",
            (true, true) => "met, inside the noise",
            (false, false) => "MISSED",
            (false, true) => "MISSED, inside the noise",
        }
    }

    fn cells(&self) -> [String; 6] {
        [
            format!("{} ({})", self.name, self.unit),
            self.num(self.median()),
            self.num(self.min()),
            self.num(self.max()),
            self.target(),
            self.verdict().into(),
        ]
    }
}

pub fn median(samples: &[f64]) -> f64 {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

/// `1234567` → `1,234,567`.
pub fn group_thousands(s: &str) -> String {
    let (int, frac) = s.split_once('.').map_or((s, None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// The results of one scenario.
#[derive(Debug, Clone)]
pub struct Table {
    pub caption: String,
    pub runs: usize,
    pub metrics: Vec<Metric>,
    /// Lines under the table: configuration, anomalies.
    pub notes: Vec<String>,
}

const HEADER: [&str; 6] = ["metric", "median", "min", "max", "target", ""];

impl Table {
    /// The table for a terminal.
    pub fn to_text(&self) -> String {
        let rows: Vec<[String; 6]> = self.metrics.iter().map(Metric::cells).collect();
        let mut widths = HEADER.map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut l = String::new();
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - c.chars().count();
                if i == 0 {
                    let _ = write!(l, "  {c}{}", " ".repeat(pad));
                } else {
                    let _ = write!(l, "  {}{c}", " ".repeat(pad));
                }
            }
            l.trim_end().to_owned()
        };
        let mut out = format!("{} ({} run{})\n", self.caption, self.runs, if self.runs == 1 { "" } else { "s" });
        out.push_str(&line(&HEADER.map(String::from)));
        out.push('\n');
        for r in &rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "  - {n}");
        }
        out
    }

    fn to_markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.caption);
        let _ = writeln!(out, "| {} |", HEADER.join(" | "));
        out.push_str("|---|---:|---:|---:|---|---|\n");
        for m in &self.metrics {
            let _ = writeln!(out, "| {} |", m.cells().join(" | "));
        }
        let _ = writeln!(out, "\n{} run{}, medians.", self.runs, if self.runs == 1 { "" } else { "s" });
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

/// A section of BENCHMARKS.md: a title, an introduction (Markdown paragraphs), and the tables
/// of the scenarios that belong to it.
#[derive(Debug, Clone)]
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub intro: Vec<String>,
    pub tables: Vec<Table>,
}

impl Section {
    pub fn to_markdown(&self) -> String {
        let mut out = format!("<!-- xtask-bench:begin {} -->\n## {}\n\n", self.id, self.title);
        for p in &self.intro {
            out.push_str(p);
            out.push_str("\n\n");
        }
        for t in &self.tables {
            out.push_str(&t.to_markdown());
            out.push('\n');
        }
        let _ = writeln!(out, "<!-- xtask-bench:end {} -->", self.id);
        out
    }
}

/// The summary of a full run: every metric with a target, from every table, with the
/// baseline's figure beside it where one ran (a metric named "…, current" has its
/// "…, baseline" twin in the same table). Markdown.
pub fn summary(tables: &[Table]) -> String {
    let mut out = String::from(
        "| scenario | metric | median | min–max | baseline: median (min–max) | target | |\n|---|---|---:|---|---|---|---|\n",
    );
    for t in tables {
        for m in t.metrics.iter().filter(|m| m.goal.is_some() && !m.samples.is_empty()) {
            let base = m
                .name
                .strip_suffix(", current")
                .and_then(|n| t.metrics.iter().find(|b| b.name == format!("{n}, baseline")))
                .map(|b| format!("{} ({}–{})", b.num(b.median()), b.num(b.min()), b.num(b.max())))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {}–{} | {base} | {} | {} |",
                t.caption,
                m.name,
                m.unit,
                m.num(m.median()),
                m.num(m.min()),
                m.num(m.max()),
                m.target(),
                m.verdict()
            );
        }
    }
    out
}

/// Replaces each section's marked region of `path` (appending the sections not there yet);
/// creates the file with a title when it does not exist.
pub fn write_sections(path: &Path, sections: &[Section]) -> Result<()> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n\n".to_owned(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    for s in sections {
        text = replace_section(&text, s.id, &s.to_markdown());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn replace_section(text: &str, id: &str, section: &str) -> String {
    let begin = format!("<!-- xtask-bench:begin {id} -->");
    let end = format!("<!-- xtask-bench:end {id} -->");
    if let Some(b) = text.find(&begin)
        && let Some(e) = text[b..].find(&end).map(|e| b + e + end.len())
    {
        let after = text[e..].strip_prefix('\n').unwrap_or(&text[e..]);
        return format!("{}{section}{after}", &text[..b]);
    }
    let sep = if text.ends_with("\n\n") || text.is_empty() {
        ""
    } else if text.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{text}{sep}{section}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(group_thousands("1234567"), "1,234,567");
        assert_eq!(group_thousands("-12345.5"), "-12,345.5");
        assert_eq!(group_thousands("999"), "999");
    }

    #[test]
    fn sections_are_replaced_in_place() {
        let s = |body: &str| format!("<!-- xtask-bench:begin a -->\n{body}\n<!-- xtask-bench:end a -->\n");
        let text = format!("# B\n\nhand-written\n\n{}\n## Other\n", s("old"));
        let out = replace_section(&text, "a", &s("new"));
        assert_eq!(out, format!("# B\n\nhand-written\n\n{}\n## Other\n", s("new")));
        let appended = replace_section("# B\n", "a", &s("x"));
        assert_eq!(appended, format!("# B\n\n{}", s("x")));
    }

    #[test]
    fn verdicts() {
        let mut m = Metric::new("rate", "events/s", 0, Some(Goal::AtLeast(10.0)));
        m.samples = vec![9.0, 12.0, 11.0];
        assert_eq!(m.verdict(), "met, inside the noise");
        m.goal = Some(Goal::AtLeast(8.5));
        assert_eq!(m.verdict(), "met");
        m.goal = Some(Goal::AtMost(10.0));
        assert_eq!(m.verdict(), "MISSED, inside the noise");
        m.goal = Some(Goal::AtMost(8.0));
        assert_eq!(m.verdict(), "MISSED");
        m.goal = Some(Goal::AtMost(11.5));
        assert_eq!(m.verdict(), "met, inside the noise");
        m.goal = Some(Goal::AtMost(12.0));
        assert_eq!(m.verdict(), "met");
    }

    #[test]
    fn the_summary_lists_each_target_with_its_baseline() {
        let metric = |name: &str, goal: Option<Goal>, samples: Vec<f64>| Metric {
            name: name.into(),
            unit: "µs",
            samples,
            goal,
            decimals: 1,
        };
        let t = Table {
            caption: "storm".into(),
            runs: 3,
            metrics: vec![
                metric("cpu, baseline", None, vec![20.0, 22.0, 24.0]),
                metric("cpu, current", Some(Goal::AtMost(8.0)), vec![9.0, 10.0, 11.0]),
                metric("other", None, vec![1.0]),
            ],
            notes: Vec::new(),
        };
        let s = summary(&[t]);
        assert!(
            s.contains("| storm | cpu, current (µs) | 10.0 | 9.0–11.0 | 22.0 (20.0–24.0) | ≤ 8.0 µs | MISSED |"),
            "{s}"
        );
        assert!(!s.contains("other"));
    }
}
