//! The machine-readable result: a `[table]` header and one `[row]` per run, whitespace-
//! separated and aligned, `-` where a value was not measured.

use crate::broker::{BrokerConf, Usage};
use crate::stats::Totals;

/// What one run measured.
pub struct Outcome {
    pub totals: Totals,
    pub usage: Option<Usage>,
}

/// One row: a run, by its label.
pub struct Row {
    pub label: String,
    pub workload: String,
    pub outcome: Outcome,
    pub brokers: Vec<BrokerConf>,
}

pub const COLUMNS: [&str; 11] = [
    "label",
    "workload",
    "msgs",
    "tps",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "cpu_us_msg",
    "rss_mib",
    "flush",
    "role",
];

/// A value without whitespace, so a row splits into its columns.
fn word(s: &str) -> String {
    let w = s.split_whitespace().collect::<Vec<_>>().join("_");
    if w.is_empty() {
        "-".into()
    } else {
        w
    }
}

/// The brokers' distinct values of one setting, comma-separated (`-` if none was read).
fn distinct(brokers: &[BrokerConf], pick: fn(&(String, String)) -> &String) -> String {
    let mut v: Vec<&str> = brokers
        .iter()
        .filter_map(|b| b.conf.as_ref().ok().map(|c| pick(c).as_str()))
        .collect();
    v.sort();
    v.dedup();
    word(&v.join(","))
}

impl Row {
    fn cells(&self) -> Vec<String> {
        let t = &self.outcome.totals;
        let lat = |i: usize| {
            t.latency_ms
                .map(|l| format!("{:.2}", l[i]))
                .unwrap_or_else(|| "-".into())
        };
        let usage = self.outcome.usage;
        vec![
            word(&self.label),
            word(&self.workload),
            t.ok.to_string(),
            format!("{:.0}", t.tps),
            lat(0),
            lat(1),
            lat(2),
            usage
                .map(|u| format!("{:.1}", u.us_per_msg))
                .unwrap_or_else(|| "-".into()),
            usage
                .and_then(|u| u.rss_bytes)
                .map(|b| format!("{:.1}", b / 1_048_576.0))
                .unwrap_or_else(|| "-".into()),
            distinct(&self.brokers, |c| &c.0),
            distinct(&self.brokers, |c| &c.1),
        ]
    }
}

/// The header and the rows, each column as wide as its widest cell.
pub fn table(rows: &[Row]) -> String {
    let mut lines: Vec<Vec<String>> = vec![COLUMNS.iter().map(|c| c.to_string()).collect()];
    lines.extend(rows.iter().map(Row::cells));
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        let prefix = if n == 0 { "[table]" } else { "[row]  " };
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(prefix);
        out.push(' ');
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, usage: Option<Usage>, latency: bool) -> Row {
        Row {
            label: label.into(),
            workload: "send 1k".into(),
            outcome: Outcome {
                totals: Totals {
                    ok: 1200,
                    tps: 1234.4,
                    latency_ms: latency.then_some([0.5, 2.25, 9.0]),
                },
                usage,
            },
            brokers: vec![BrokerConf {
                name: "b".into(),
                addr: "127.0.0.1:1".into(),
                conf: Ok(("ASYNC_FLUSH".into(), "ASYNC_MASTER".into())),
            }],
        }
    }

    #[test]
    fn rows_align_and_split_into_the_columns() {
        let usage = Usage {
            us_per_msg: 24.56,
            rss_bytes: Some(3.0 * 1_048_576.0),
        };
        let t = table(&[
            row("127.0.0.1:9876", Some(usage), true),
            row("b", None, false),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        let head: Vec<&str> = lines[0].split_whitespace().skip(1).collect();
        assert_eq!(head, COLUMNS);
        let a: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            a,
            [
                "[row]",
                "127.0.0.1:9876",
                "send_1k",
                "1200",
                "1234",
                "0.50",
                "2.25",
                "9.00",
                "24.6",
                "3.0",
                "ASYNC_FLUSH",
                "ASYNC_MASTER"
            ]
        );
        let b: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(&b[4..10], ["1234", "-", "-", "-", "-", "-"]);
        // Aligned: every column starts at the same offset on every line.
        let at = |l: &str, word: &str| l.find(word).unwrap();
        assert_eq!(at(lines[0], "tps"), at(lines[1], "1234"));
        assert_eq!(at(lines[1], "1234"), at(lines[2], "1234"));
    }
}
