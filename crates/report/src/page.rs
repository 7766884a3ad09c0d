//! Page — the report's [`Document`] built from [`Results`] and the figures drawn from them: the
//! headline against the goals, the machine baseline and storage layouts, throughput over
//! partitions/queues, durability modes, latency at half of peak, throughput over time, the
//! simulator's durability table when there is one, and the exact configuration and versions.

use crate::date::utc_minute;
use crate::document::{Block, Document, FigureRef, Table};
use crate::figures::{Figure, size_words, workload_words};
use crate::headline::{headlines, thousands};
use crate::matrix::{Mode, Model, Series};
use crate::results::{LoadResult, Results};

/// The report page of `results` with `figures`.
pub fn page(results: &Results, figures: &[Figure]) -> Document {
    let setup = &results.setup;
    let host = setup.host.hostname.as_deref().unwrap_or("unknown host");
    let mut page = Document::new(format!(
        "twinmq compare: Kafka and RocketMQ models on {host}, {}",
        utc_minute(setup.started_at_ms)
    ));
    page.paragraph(format!(
        "Both broker models of twinmq, on one shared storage core, measured on the same machine \
         in one run ({} scale, {:.0} s). Every table and chart below is drawn from \
         `results.json` beside this page. To measure again and rewrite this report:",
        setup.scale.name(),
        (setup.finished_at_ms - setup.started_at_ms) as f64 / 1e3
    ));
    page.blocks.push(Block::Code(setup.command.clone()));
    headline(&mut page, results);
    storage(&mut page, results, figures);
    sweep(&mut page, results, figures);
    modes(&mut page, results, figures);
    durability(&mut page, results);
    failures(&mut page, results);
    configuration(&mut page, results);
    page
}

fn figure(page: &mut Document, figures: &[Figure], stem: &str) {
    if let Some(figure) = figures.iter().find(|f| f.stem == stem) {
        page.blocks.push(Block::Figure(FigureRef {
            stem: figure.stem.clone(),
            title: figure.chart.title().to_owned(),
            caption: figure.caption.clone(),
        }));
    }
}

fn headline(page: &mut Document, results: &Results) {
    page.section("Headline: the goals, measured in this run");
    let mut table = Table::new(["goal", "target", "measured", "measured / target", "met"]);
    for line in headlines(results) {
        table.row([
            line.goal,
            line.target,
            line.measured,
            line.ratio.map_or_else(|| "n/a".to_owned(), |ratio| format!("{ratio:.2}")),
            match line.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "not measured",
            }
            .to_owned(),
        ]);
    }
    page.table(table);
}

fn storage(page: &mut Document, results: &Results, figures: &[Figure]) {
    page.section("Machine baseline and the two storage layouts");
    page.paragraph(format!(
        "The storage core in-process, without network or brokers, against the machine's own \
         sequential-write ceiling: a plain file written with the same record size and fsync \
         policy in the same directory (`{}`). Each figure is the median of the runs listed; a \
         share above 100 % means the layout outran the plain loop in this run.",
        results.setup.work_dir
    ));
    figure(page, figures, "storage-ceiling");
    figure(page, figures, "storage-partitions");
    let mut table = Table::new([
        "writer",
        "record size",
        "partitions/queues",
        "durability",
        "records",
        "MB/s",
        "records/s",
        "share of ceiling",
        "every run (MB/s)",
    ]);
    for result in &results.storage {
        let ceiling =
            results.storage_of("ceiling", result.record_bytes, 1, result.group_commit_appends);
        let share = ceiling
            .filter(|c| c.bytes_per_sec > 0.0)
            .map_or_else(|| "n/a".to_owned(), |c| percent(result.bytes_per_sec / c.bytes_per_sec));
        table.row([
            result.writer.clone(),
            size_words(result.record_bytes),
            result.partitions.to_string(),
            result.durability_label(),
            thousands(result.records as f64),
            format!("{:.1}", result.bytes_per_sec / 1e6),
            thousands(result.records_per_sec),
            share,
            result
                .runs_bytes_per_sec
                .iter()
                .map(|rate| format!("{:.0}", rate / 1e6))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    page.table(table);
}

fn sweep(page: &mut Document, results: &Results, figures: &[Figure]) {
    page.section("Throughput over partitions and queues");
    page.paragraph(format!(
        "Each model's embedded servers on 127.0.0.1, driven through its own wire protocol by \
         twinmq's load generator: one Kafka broker with acks=1, one RocketMQ master with batch \
         sends, async flush. {}.",
        workload_words(results, Series::PartitionSweep)
    ));
    for stem in ["throughput-partitions-100b", "throughput-partitions-1024b"] {
        figure(page, figures, stem);
    }
    let mut table = load_table(&["partitions/queues", "size"]);
    for model in Model::BOTH {
        for result in results.load_of(Series::PartitionSweep, model) {
            let lead = [result.partitions.to_string(), size_words(result.message_bytes)];
            table.row(load_row(result, &lead));
        }
    }
    page.table(table);
}

fn modes(page: &mut Document, results: &Results, figures: &[Figure]) {
    page.section("Durability modes: replication, acknowledgement, flush");
    page.paragraph(
        "The same workload (8 partitions or queues, 100 B) under each mode. Kafka's replication \
         is 3 brokers with replication factor 3 and min.insync.replicas 2, acks=1 or acks=all; \
         RocketMQ's is a master and one slave, ASYNC_MASTER or SYNC_MASTER. Sync flush fsyncs \
         before a send is acknowledged (group commit); async flush every 500 ms.",
    );
    figure(page, figures, "modes-throughput");
    let mut table = load_table(&["mode"]);
    for model in Model::BOTH {
        for result in results.load_of(Series::ModeSweep, model) {
            table.row(load_row(result, &[result.mode.label(model)]));
        }
    }
    page.table(table);
    page.subsection("Latency at half of peak load");
    page.paragraph(
        "Each mode again, paced at half of the rate its peak run sustained end to end (the \
         lower of its produce and consume rates): latency without queueing at the limit.",
    );
    figure(page, figures, "modes-latency");
    let mut table = load_table(&["mode", "paced at (msgs/s)"]);
    for model in Model::BOTH {
        for result in results.load_of(Series::HalfPeak, model) {
            let rate = thousands(result.summary.config.rate_msgs_per_sec as f64);
            table.row(load_row(result, &[result.mode.label(model), rate]));
        }
    }
    page.table(table);
    page.subsection("Throughput over time");
    figure(page, figures, "throughput-time");
    let base: Vec<String> = Model::BOTH
        .iter()
        .map(|&model| format!("{}: {}", model.name(), Mode::BASE.label(model)))
        .collect();
    page.paragraph(format!("Per second of the peak runs of {}.", base.join(" and ")));
}

/// A table of load results: `lead` columns, then the figures every run has.
fn load_table(lead: &[&str]) -> Table {
    let mut header = vec!["model"];
    header.extend_from_slice(lead);
    header.extend_from_slice(&[
        "produced (msgs/s)",
        "produced (MB/s)",
        "consumed (msgs/s)",
        "send→ack p50 (µs)",
        "send→ack p99 (µs)",
        "produce→consume p50 (µs)",
        "produce→consume p99 (µs)",
        "produce→consume p99.9 (µs)",
        "failed",
        "duplicates",
    ]);
    Table::new(header)
}

fn load_row(result: &LoadResult, lead: &[String]) -> Vec<String> {
    let summary = &result.summary;
    let mut row = vec![result.model.name().to_owned()];
    row.extend_from_slice(lead);
    row.extend([
        thousands(summary.produce.msgs_per_sec),
        format!("{:.1}", summary.produce.bytes_per_sec / 1e6),
        thousands(summary.consume.msgs_per_sec),
        thousands(summary.latency_send_ack_us.p50_us as f64),
        thousands(summary.latency_send_ack_us.p99_us as f64),
        thousands(summary.latency_end_to_end_us.p50_us as f64),
        thousands(summary.latency_end_to_end_us.p99_us as f64),
        thousands(summary.latency_end_to_end_us.p999_us as f64),
        summary.measured.failed.to_string(),
        summary.measured.duplicates.to_string(),
    ]);
    row
}

fn durability(page: &mut Document, results: &Results) {
    page.section("Durability under faults (simulator)");
    let Some(table) = &results.durability else {
        page.paragraph(
            "Not part of this run: no durability table was given. The simulator's table \
             (configurations × fault families) is rendered here when `twinmq compare` sweeps \
             the simulator itself (its default) or is given a table with `--durability FILE` \
             (the CSV format of `twinmq_report::durability`).",
        );
        return;
    };
    page.paragraph(
        "From the deterministic simulator: each configuration under each fault family over a \
         sweep of seeds; every failing seed replays from its number. Times are simulated; \
         n/a: not measured.",
    );
    if let Some(method) = &table.method {
        page.paragraph(method);
    }
    page.table(table.rendered());
}

fn failures(page: &mut Document, results: &Results) {
    if results.failures.is_empty() {
        return;
    }
    page.section("Points without figures");
    let mut table = Table::new(["point", "why"]);
    for failure in &results.failures {
        table.row([failure.what.clone(), failure.error.clone()]);
    }
    page.table(table);
}

fn configuration(page: &mut Document, results: &Results) {
    let setup = &results.setup;
    let host = &setup.host;
    page.section("Configuration and versions");
    let unknown = || "unknown".to_owned();
    let mut table = Table::new(["setting", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("command", setup.command.clone()),
        ("scale and time budget", format!("{}, {} s", setup.scale.name(), setup.budget_secs)),
        ("started", utc_minute(setup.started_at_ms)),
        ("twinmq", setup.tool_version.clone()),
        ("compiler", setup.rustc.clone()),
        ("build profile", setup.profile.clone()),
        ("target", setup.target.clone()),
        ("host", host.hostname.clone().unwrap_or_else(unknown)),
        ("processor", host.cpu_model.clone().unwrap_or_else(unknown)),
        ("cores", host.cores.map_or_else(unknown, |c| c.to_string())),
        (
            "memory",
            host.memory_bytes.map_or_else(unknown, |b| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30))),
        ),
        ("operating system", host.os.clone().unwrap_or_else(unknown)),
        ("kernel", host.kernel.clone().unwrap_or_else(unknown)),
        ("data directory", setup.work_dir.clone()),
        ("servers", "in-process (tokio), 127.0.0.1, ephemeral ports, sharing the machine with the load generator".to_owned()),
        ("Kafka broker", "twinmq kafka: segment 1 GiB, async flush every 500 ms or 256 MiB, replication factor 3 and min.insync.replicas 2 when replicated".to_owned()),
        ("RocketMQ broker", "twinmq rocketmq: CommitLog files of 1 GiB, ASYNC_FLUSH every 500 ms or 256 MiB, one slave when replicated".to_owned()),
        ("load generator", workload_words(results, Series::PartitionSweep)),
    ];
    for (name, value) in rows {
        table.row([name.to_owned(), value]);
    }
    page.table(table);
}

fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}
