//! DurabilityTable — what the simulator found per configuration and fault family: how many
//! seeds lost acknowledged messages, how many were lost, duplicated or reordered, how long the
//! cluster was unavailable and how long it took to recover. The simulator produces it
//! (`twinmq compare` sweeps `twinmq_sim::durability`'s configurations, or reads a table from a
//! file); the report only renders it, and says so when there is none.
//!
//! ## Format (`durability.csv`)
//!
//! One header line, [`CSV_HEADER`], then one line per configuration × fault family:
//!
//! ```text
//! configuration,fault_family,seeds,seeds_with_loss,acked_lost,duplicates,order_violations,unavailability_ms,time_to_recover_ms
//! kafka acks=all RF=3,broker crash,32,0,0,12,0,4200,1800
//! ```
//!
//! Counts are whole numbers; the two times are milliseconds, empty when not measured.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::document::{Document, Table};
use crate::headline::thousands;

/// The CSV's header line.
pub const CSV_HEADER: &str = "configuration,fault_family,seeds,seeds_with_loss,acked_lost,\
duplicates,order_violations,unavailability_ms,time_to_recover_ms";

/// The file name the report gives the table it renders.
pub const CSV_FILE: &str = "durability.csv";

/// The simulator's findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurabilityTable {
    /// One row per configuration × fault family, in the simulator's order.
    pub rows: Vec<DurabilityRow>,
    /// How the table was made (the sweep, messages per seed, how to replay a seed), when the
    /// run that made it said; a table read from CSV has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// One configuration under one fault family, over a sweep of seeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurabilityRow {
    /// The cluster's configuration (model, replication, acks or role, flush).
    pub configuration: String,
    /// The faults injected (crashes, partitions, torn writes, …).
    pub fault_family: String,
    /// Seeds run.
    pub seeds: u64,
    /// Seeds in which an acknowledged message was lost.
    pub seeds_with_loss: u64,
    /// Acknowledged messages lost, over all seeds.
    pub acked_lost: u64,
    /// Messages delivered more than once, over all seeds.
    pub duplicates: u64,
    /// Per-key order violations, over all seeds.
    pub order_violations: u64,
    /// Mean per seed of the simulated milliseconds the cluster took no writes (stretches of a
    /// second or more without an acknowledgement, while the faults were acting).
    pub unavailability_ms: Option<u64>,
    /// Mean per seed of the simulated milliseconds from the heal of every fault until the last
    /// acknowledged message to arrive had arrived.
    pub time_to_recover_ms: Option<u64>,
}

/// Why a durability CSV cannot be read, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    /// The header is not [`CSV_HEADER`].
    #[error("line 1: the header must be `{CSV_HEADER}`, found `{0}`")]
    Header(String),
    /// A line has the wrong number of fields or an unreadable value.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl DurabilityTable {
    /// Reads the CSV format above. Fields may not contain commas.
    pub fn from_csv(text: &str) -> Result<Self, DurabilityError> {
        let mut lines = text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
        let header = lines.next().map(|(_, line)| line.trim()).unwrap_or_default();
        if header != CSV_HEADER {
            return Err(DurabilityError::Header(header.to_owned()));
        }
        let rows = lines
            .map(|(index, line)| {
                parse_row(line).map_err(|reason| DurabilityError::Line { line: index + 1, reason })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rows, method: None })
    }

    /// The table for a page, its units in the headers; n/a where not measured.
    pub fn rendered(&self) -> Table {
        let mut rendered = Table::new([
            "configuration",
            "fault family",
            "seeds",
            "seeds with loss",
            "acked lost",
            "duplicates",
            "order violations",
            "unavailability (ms/seed)",
            "time to recover (ms/seed)",
        ]);
        let optional =
            |value: Option<u64>| value.map_or_else(|| "n/a".to_owned(), |v| thousands(v as f64));
        for row in &self.rows {
            rendered.row([
                row.configuration.clone(),
                row.fault_family.clone(),
                row.seeds.to_string(),
                row.seeds_with_loss.to_string(),
                row.acked_lost.to_string(),
                row.duplicates.to_string(),
                row.order_violations.to_string(),
                optional(row.unavailability_ms),
                optional(row.time_to_recover_ms),
            ]);
        }
        rendered
    }

    /// The table alone as a Markdown page titled `title`, with how it was made.
    pub fn to_markdown(&self, title: &str) -> String {
        let mut page = Document::new(title);
        if let Some(method) = &self.method {
            page.paragraph(method);
        }
        page.table(self.rendered());
        crate::markdown::render(&page)
    }

    /// The table as the CSV format above.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        let optional = |value: Option<u64>| value.map(|v| v.to_string()).unwrap_or_default();
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{}",
                row.configuration,
                row.fault_family,
                row.seeds,
                row.seeds_with_loss,
                row.acked_lost,
                row.duplicates,
                row.order_violations,
                optional(row.unavailability_ms),
                optional(row.time_to_recover_ms)
            );
        }
        out
    }
}

fn parse_row(line: &str) -> Result<DurabilityRow, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let expected = CSV_HEADER.split(',').count();
    if fields.len() != expected {
        return Err(format!("{} fields, the header has {expected}", fields.len()));
    }
    let count = |index: usize| {
        fields[index].parse::<u64>().map_err(|_| {
            let name = CSV_HEADER.split(',').nth(index).unwrap_or("?");
            format!("{name} `{}` is not a whole number", fields[index])
        })
    };
    let optional = |index: usize| {
        if fields[index].is_empty() { Ok(None) } else { count(index).map(Some) }
    };
    if fields[0].is_empty() || fields[1].is_empty() {
        return Err("configuration and fault_family must not be empty".to_owned());
    }
    let row = DurabilityRow {
        configuration: fields[0].to_owned(),
        fault_family: fields[1].to_owned(),
        seeds: count(2)?,
        seeds_with_loss: count(3)?,
        acked_lost: count(4)?,
        duplicates: count(5)?,
        order_violations: count(6)?,
        unavailability_ms: optional(7)?,
        time_to_recover_ms: optional(8)?,
    };
    if row.seeds_with_loss > row.seeds {
        return Err(format!("{} seeds with loss out of {} seeds", row.seeds_with_loss, row.seeds));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_survives_its_csv() {
        let table = DurabilityTable {
            rows: vec![
                DurabilityRow {
                    configuration: "rocketmq SYNC_MASTER SYNC_FLUSH".into(),
                    fault_family: "power-off".into(),
                    seeds: 8,
                    seeds_with_loss: 0,
                    acked_lost: 0,
                    duplicates: 3,
                    order_violations: 0,
                    unavailability_ms: Some(2_500),
                    time_to_recover_ms: None,
                },
                DurabilityRow {
                    configuration: "rocketmq ASYNC_MASTER ASYNC_FLUSH".into(),
                    fault_family: "power-off".into(),
                    seeds: 8,
                    seeds_with_loss: 5,
                    acked_lost: 1_234,
                    duplicates: 0,
                    order_violations: 2,
                    unavailability_ms: None,
                    time_to_recover_ms: Some(900),
                },
            ],
            method: None,
        };
        assert_eq!(DurabilityTable::from_csv(&table.to_csv()), Ok(table));
    }

    #[test]
    fn bad_csv_names_its_line() {
        let wrong_header = DurabilityTable::from_csv("config,faults\n");
        assert!(matches!(wrong_header, Err(DurabilityError::Header(_))));
        let text = format!("{CSV_HEADER}\na,b,8,0,0,0,0,,\na,b,eight,0,0,0,0,,\n");
        let error = DurabilityTable::from_csv(&text).unwrap_err().to_string();
        assert!(error.starts_with("line 3: seeds `eight`"), "{error}");
        let short = format!("{CSV_HEADER}\na,b,8\n");
        assert!(DurabilityTable::from_csv(&short).unwrap_err().to_string().contains("3 fields"));
        let impossible = format!("{CSV_HEADER}\na,b,2,3,0,0,0,,\n");
        assert!(DurabilityTable::from_csv(&impossible).is_err());
    }
}
