//! The `twinmq` binary as a user meets it.

use std::process::Command;

use twinmq_e2e::twinmq_binary;

#[test]
fn help_lists_every_subcommand() {
    let output = Command::new(twinmq_binary()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for command in ["serve", "sim", "bench", "compare", "dump"] {
        assert!(help.contains(command), "--help does not list {command}:\n{help}");
    }
}

#[test]
fn compare_help_lists_its_flags() {
    let output = Command::new(twinmq_binary()).args(["compare", "--help"]).output().unwrap();
    assert!(output.status.success(), "compare --help must succeed");
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in ["--quick", "--out", "--durability", "--redraw"] {
        assert!(help.contains(flag), "compare --help does not list {flag}:\n{help}");
    }
}

fn sim(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(twinmq_binary()).arg("sim").args(args).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn sim_runs_a_seed_replays_it_to_the_same_hash_and_sweeps() {
    let one = ["--model", "kafka", "--seed", "5", "--faults", "none", "--messages", "40"];
    let (code, first, _) = sim(&one);
    assert_eq!(code, Some(0), "{first}");
    assert!(first.contains("sent 40 acknowledged 40"), "{first}");
    let hash = |out: &str| out.lines().find(|l| l.starts_with("trace hash")).map(str::to_owned);
    assert!(hash(&first).is_some(), "{first}");
    let (_, again, _) = sim(&one);
    assert_eq!(hash(&first), hash(&again), "one seed, one trace");

    let sweep = ["--model", "rocketmq", "--seeds", "0..2", "--faults", "none", "--messages", "20"];
    let (code, summary, _) = sim(&sweep);
    assert_eq!(code, Some(0), "{summary}");
    assert!(summary.contains("over 2 seeds") && summary.contains("clean 2"), "{summary}");
}

#[test]
fn sim_compare_writes_the_durability_table_as_markdown_and_csv() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let args = ["compare", "--seeds", "3..4", "--messages", "40", "--faults", "crash,network"];
    let (code, markdown, stderr) = sim(&[&args[..], &["--out", out_dir]].concat());
    assert_eq!(code, Some(0), "{markdown}\n{stderr}");
    let csv = std::fs::read_to_string(out.path().join("durability.csv")).unwrap();
    let table = twinmq_report::DurabilityTable::from_csv(&csv).unwrap();
    assert_eq!(table.rows.len(), 6 * 2, "six configurations × two families:\n{csv}");
    for row in &table.rows {
        assert_eq!(row.seeds, 1, "{row:?}");
        assert!(["crash", "network"].contains(&row.fault_family.as_str()), "{row:?}");
        assert!(row.unavailability_ms.is_some(), "{row:?}");
        assert!(row.acked_lost <= 40 && row.order_violations <= 40, "{row:?}");
    }
    let written = std::fs::read_to_string(out.path().join("durability.md")).unwrap();
    assert_eq!(written.trim(), markdown.trim(), "stdout is the Markdown file");
    for label in
        ["kafka acks=1 RF=3", "rocketmq SYNC_MASTER SYNC_FLUSH", "unavailability (ms/seed)"]
    {
        assert!(markdown.contains(label), "{label} missing:\n{markdown}");
    }
    assert!(markdown.contains("seeds 3..4"), "the method names the seeds:\n{markdown}");
}

#[test]
fn sim_refuses_an_unknown_model_or_preset_naming_the_choices() {
    let (code, _, stderr) = sim(&["--model", "pulsar"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("kafka or rocketmq"), "{stderr}");
    let (code, _, stderr) = sim(&["--model", "kafka", "--preset", "fastest"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("durable") && stderr.contains("acks1"), "{stderr}");
    let (code, _, stderr) = sim(&["--seeds", "5..5"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("empty"), "{stderr}");
}

#[test]
fn bench_refuses_a_bad_target_naming_it() {
    let output = Command::new(twinmq_binary())
        .args(["bench", "--target", "amqp://127.0.0.1:5672"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("unknown scheme `amqp`"), "bench said: {stderr}");
    let output = Command::new(twinmq_binary())
        .args(["bench", "--target", "kafka://127.0.0.1:9092", "--message-bytes", "8"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("message_bytes = 8"), "bench said: {stderr}");
}

#[test]
fn dump_refuses_a_directory_without_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(twinmq_binary()).arg("dump").arg(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("no twinmq data files"), "dump said: {stderr}");
}
