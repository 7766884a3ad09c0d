//! `twinmq compare` as a user runs it: the real binary measures both models on embedded
//! servers (at the smallest scale, so a debug build on two cores finishes in seconds) and writes
//! a report whose files exist, whose tables parse, whose every figure names its unit and
//! configuration, and whose data file holds a figure for every planned point, with the
//! durability table of the simulator sweep the run makes itself (each configuration under each
//! fault family); the report is drawn again from that data with a durability table given as a
//! file. Bad input is refused with a clear message.

use std::path::Path;
use std::process::{Command, Output};

use twinmq_e2e::twinmq_binary;
use twinmq_report::Results;
use twinmq_report::matrix::{Mode, Model, Plan, Scale, Series};

/// The configurations `twinmq compare` sweeps in the simulator, in the table's order.
const SWEPT_CONFIGURATIONS: [&str; 6] = [
    "kafka acks=1 RF=3",
    "kafka acks=all RF=3 min.insync.replicas=2 unclean election",
    "kafka acks=all RF=3 min.insync.replicas=2",
    "rocketmq ASYNC_MASTER ASYNC_FLUSH",
    "rocketmq SYNC_MASTER ASYNC_FLUSH",
    "rocketmq SYNC_MASTER SYNC_FLUSH",
];

/// The simulator's fault families, in the table's order.
const FAULT_FAMILIES: [&str; 4] = ["network", "crash", "disk", "mixed"];

fn compare(args: &[&str], out: &Path) -> Output {
    Command::new(twinmq_binary())
        .arg("compare")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("twinmq runs")
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Markdown tables of a page: (header, rows), each row checked to be as wide as its header.
fn tables(markdown: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let cells = |line: &str| -> Vec<String> {
        let inner = line.trim().strip_prefix('|').and_then(|l| l.strip_suffix('|')).unwrap();
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'|') => cell.push(chars.next().unwrap()),
                '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
                _ => cell.push(c),
            }
        }
        cells.push(cell.trim().to_owned());
        cells
    };
    let lines: Vec<&str> = markdown.lines().collect();
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if !lines[index].starts_with('|') {
            index += 1;
            continue;
        }
        let header = cells(lines[index]);
        let rule = cells(lines[index + 1]);
        assert!(rule.iter().all(|c| c == "---"), "a table's second line is its rule: {rule:?}");
        assert_eq!(rule.len(), header.len(), "rule and header differ: {header:?}");
        let mut rows = Vec::new();
        index += 2;
        while index < lines.len() && lines[index].starts_with('|') {
            let row = cells(lines[index]);
            assert_eq!(row.len(), header.len(), "row {row:?} under {header:?}");
            rows.push(row);
            index += 1;
        }
        found.push((header, rows));
    }
    found
}

#[test]
fn compare_writes_a_report_whose_files_exist_and_whose_tables_parse() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let output =
        compare(&["--smoke", "--no-progress", "--work-dir", dir.path().to_str().unwrap()], &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "twinmq compare --smoke failed:\n{stderr}");

    // The data: every planned point measured, nothing failed.
    let results: Results = serde_json::from_str(&text(&out.join("results.json"))).unwrap();
    assert!(results.failures.is_empty(), "{:?}", results.failures);
    let plan = Plan::standard(Scale::Smoke);
    assert_eq!(results.storage.len(), plan.storage.len());
    assert_eq!(results.load.len(), plan.load.len());
    for model in Model::BOTH {
        for mode in Mode::all() {
            for series in [Series::ModeSweep, Series::HalfPeak] {
                let run = results
                    .load
                    .iter()
                    .find(|r| r.model == model && r.mode == mode && r.series == series);
                let run = run.unwrap_or_else(|| panic!("no {series:?} run of {model:?} {mode:?}"));
                let measured = &run.summary.measured;
                // Refused sends are the brokers' answer and the report's to show; what was
                // acknowledged must all come back.
                assert!(measured.acked > 0, "{model:?} {mode:?}: {measured:?}");
                assert_eq!(
                    measured.consumed, measured.acked,
                    "{model:?} {mode:?}: every ack consumed"
                );
            }
        }
    }
    assert!(results.storage.iter().all(|s| s.bytes_per_sec > 0.0));
    assert_eq!(results.setup.scale, Scale::Smoke);

    // The page: its tables parse and hold numbers where they say so.
    let markdown = text(&out.join("index.md"));
    let tables = tables(&markdown);
    assert!(tables.len() >= 6, "{} tables in:\n{markdown}", tables.len());
    let (header, rows) =
        tables.iter().find(|(h, _)| h.contains(&"produced (msgs/s)".to_owned())).unwrap();
    let column = header.iter().position(|h| h == "produced (msgs/s)").unwrap();
    for row in rows {
        let rate: f64 = row[column].replace(',', "").parse().unwrap_or_else(|_| panic!("{row:?}"));
        assert!(rate > 0.0, "{row:?}");
    }
    let (_, headline) = &tables[0];
    assert_eq!(headline.len(), 7, "one row per goal: {headline:?}");
    assert!(
        markdown.contains(&format!("--smoke --out {}", out.display())),
        "the command to regenerate it"
    );

    // Every figure: both files, a unit and a configuration in its caption and on the chart.
    let html = text(&out.join("index.html"));
    let mut figures = 0;
    for (number, line) in markdown.lines().enumerate() {
        let Some(stem) = line.split("](").nth(1).and_then(|rest| rest.strip_suffix(".png)")) else {
            continue;
        };
        figures += 1;
        let caption = markdown.lines().nth(number + 2).unwrap_or_default();
        assert!(
            caption.contains("Unit: ") && caption.contains("Configuration: "),
            "{stem}: {caption}"
        );
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png is a PNG");
        let svg = text(&out.join(format!("{stem}.svg")));
        assert!(svg.starts_with("<svg"), "{stem}.svg");
        let units = ["(msgs/s)", "(MB/s)", "(ms, log scale)", "(s)"];
        assert!(units.iter().any(|unit| svg.contains(unit)), "{stem}.svg names no unit");
        assert!(html.contains(&format!("<img src=\"{stem}.svg\"")), "index.html shows {stem}");
    }
    assert!(figures >= 6, "{figures} figures");
    assert_eq!(html.matches("<table>").count(), tables.len(), "the HTML has the same tables");

    // The durability table of the run's own simulator sweep: one seed of each configuration
    // under each fault family.
    let durability = results.durability.as_ref().expect("the run swept the simulator");
    let cells: Vec<(&str, &str)> = SWEPT_CONFIGURATIONS
        .iter()
        .flat_map(|c| FAULT_FAMILIES.iter().map(move |family| (*c, *family)))
        .collect();
    let swept: Vec<(&str, &str)> = durability
        .rows
        .iter()
        .map(|row| (row.configuration.as_str(), row.fault_family.as_str()))
        .collect();
    assert_eq!(swept, cells);
    for row in &durability.rows {
        assert_eq!(row.seeds, 1, "{row:?}");
        assert!(row.seeds_with_loss <= row.seeds, "{row:?}");
        assert_eq!(row.seeds_with_loss > 0, row.acked_lost > 0, "{row:?}");
        assert!(row.unavailability_ms.is_some(), "measured on every seed: {row:?}");
    }
    let (header, rows) =
        tables.iter().find(|(h, _)| h.contains(&"seeds with loss".to_owned())).unwrap();
    assert_eq!(header[..2], ["configuration", "fault family"]);
    let rendered: Vec<(&str, &str)> =
        rows.iter().map(|row| (row[0].as_str(), row[1].as_str())).collect();
    assert_eq!(rendered, cells);
    assert!(rows.iter().all(|row| row[7] != "n/a"), "unavailability is measured: {rows:?}");
    assert!(markdown.contains("twinmq sim --model M --preset P --faults F --seed N"), "replays");
    assert!(!markdown.contains("no durability table was given"));
    let written = text(&out.join("durability.csv"));
    assert_eq!(twinmq_report::DurabilityTable::from_csv(&written).unwrap().rows, durability.rows);

    // Drawn again from its data, now with the simulator's durability table.
    let csv = dir.path().join("durability.csv");
    std::fs::write(
        &csv,
        format!(
            "{}\nrocketmq SYNC_MASTER SYNC_FLUSH,power-off,8,0,0,3,0,2500,900\n\
             rocketmq ASYNC_MASTER ASYNC_FLUSH,power-off,8,5,1234,0,2,,\n",
            twinmq_report::durability::CSV_HEADER
        ),
    )
    .unwrap();
    let redraw = compare(&["--redraw", "--durability", csv.to_str().unwrap()], &out);
    assert!(redraw.status.success(), "{}", String::from_utf8_lossy(&redraw.stderr));
    let markdown = text(&out.join("index.md"));
    assert!(!markdown.contains("kafka acks=1 RF=3"), "the given table replaces the sweep's");
    assert!(
        markdown.contains(
            "| rocketmq ASYNC_MASTER ASYNC_FLUSH | power-off | 8 | 5 | 1234 | 0 | 2 | n/a | n/a |"
        ),
        "{markdown}"
    );
    assert!(!markdown.contains("no durability table was given"));
    assert_eq!(text(&out.join("durability.csv")), text(&csv));
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("durability.csv");
    std::fs::write(&csv, "configuration,faults\nx,y\n").unwrap();
    let output = compare(&["--durability", csv.to_str().unwrap()], &dir.path().join("out"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 1: the header must be"), "{stderr}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let output = compare(&["--smoke"], &file.join("report"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("creating the report directory"), "{stderr}");

    let output = compare(&["--redraw"], &dir.path().join("nothing-here"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("results.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
