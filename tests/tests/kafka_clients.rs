//! Real Kafka clients against `twinmq serve kafka`: kafka-python (in the test virtualenv) and
//! kcat (librdkafka), each producing 100,000 keyed records per compression codec into a
//! 6-partition topic and consuming them all back, keys staying in their partition, in order.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use twinmq_e2e::{KafkaServer, run_python_client};

const RECORDS: usize = 100_000;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn kafka_python_round_trips_keyed_records_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let server = KafkaServer::start(&dir.path().join("data"), &[]);
    let b = server.bootstrap.clone();
    let count = RECORDS.to_string();
    for codec in CODECS {
        let topic = format!("python-{codec}");
        run_python_client(
            "kafka_python_client.py",
            &["create", "--bootstrap", &b, "--topic", &topic, "--partitions", "6"],
        );
        let produced = json(&run_python_client(
            "kafka_python_client.py",
            &[
                "produce",
                "--bootstrap",
                &b,
                "--topic",
                &topic,
                "--count",
                &count,
                "--compression",
                codec,
            ],
        ));
        assert_eq!(produced["acked"], RECORDS, "{codec}: {produced}\n{}", server.log());
        let consumed = json(&run_python_client(
            "kafka_python_client.py",
            &["consume", "--bootstrap", &b, "--topic", &topic, "--expect", &count],
        ));
        assert_eq!(consumed["consumed"], RECORDS, "{codec}: {consumed}");
        assert_eq!(consumed["distinct"], RECORDS, "{codec}: {consumed}");
        assert_eq!(consumed["ordered"], true, "{codec}: {consumed}");
        assert_eq!(consumed["keys_stay_in_partition"], true, "{codec}: {consumed}");
        assert_eq!(consumed["partitions"], 6, "{codec}: {consumed}");
    }
    assert!(server.stop().success());
}

#[test]
fn kcat_round_trips_keyed_records_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let server = KafkaServer::start(&dir.path().join("data"), &["--partitions", "6"]);
    let b = server.bootstrap.clone();
    for codec in CODECS {
        let topic = format!("kcat-{codec}");
        let mut producer = Command::new("kcat")
            .args(["-P", "-b", &b, "-t", &topic, "-K", ":", "-z", codec, "-X", "linger.ms=5"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat is installed (./test.sh installs it)");
        {
            let mut stdin = std::io::BufWriter::new(producer.stdin.take().unwrap());
            for i in 0..RECORDS {
                writeln!(stdin, "key-{}:{}", i % 97, i).unwrap();
            }
        }
        let status = producer.wait_with_output().unwrap();
        assert!(status.status.success(), "{codec}: {}", String::from_utf8_lossy(&status.stderr));
        let consumed = Command::new("kcat")
            .args([
                "-C",
                "-b",
                &b,
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%p %o %k %s\n",
            ])
            .output()
            .unwrap();
        assert!(
            consumed.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&consumed.stderr)
        );
        let text = String::from_utf8(consumed.stdout).unwrap();
        let mut partition_of_key = std::collections::BTreeMap::new();
        let mut last_offset = std::collections::BTreeMap::new();
        let mut last_value = std::collections::BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (p, o, k, v): (u32, u64, &str, u64) = (
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
                fields[2],
                fields[3].parse().unwrap(),
            );
            assert_eq!(
                *partition_of_key.entry(k.to_owned()).or_insert(p),
                p,
                "{codec}: {k} moved partition"
            );
            assert!(
                last_offset.insert(p, o).is_none_or(|prev| prev < o),
                "{codec}: offsets out of order in {p}"
            );
            assert!(
                last_value.insert(k.to_owned(), v).is_none_or(|prev| prev < v),
                "{codec}: {k} reordered"
            );
            seen.insert(v);
        }
        assert_eq!(seen.len(), RECORDS, "{codec}: every record once");
        assert_eq!(last_offset.len(), 6, "{codec}: all six partitions used");
    }
    assert!(server.stop().success());
}

#[test]
fn a_consumer_group_splits_partitions_takes_over_and_resumes_from_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let server = KafkaServer::start(&dir.path().join("data"), &[]);
    let b = server.bootstrap.clone();
    run_python_client(
        "kafka_python_client.py",
        &["create", "--bootstrap", &b, "--topic", "grouped", "--partitions", "6"],
    );
    run_python_client(
        "kafka_python_client.py",
        &["produce", "--bootstrap", &b, "--topic", "grouped", "--count", "30000"],
    );
    let outcome = json(&run_python_client(
        "kafka_python_client.py",
        &["group", "--bootstrap", &b, "--topic", "grouped", "--group", "g1"],
    ));
    // On failure, the broker's own account of the group's rebalances.
    let log = || server.log().lines().filter(|l| l.contains("g1")).collect::<Vec<_>>().join("\n");
    for step in ["split", "taken_over", "consumed", "committed_all", "resumed_at_commit"] {
        assert_eq!(outcome[step], true, "step {step} failed: {outcome}\n{}", log());
    }
    assert_eq!(outcome["resumed_partitions"], outcome["partitions_with_records_left"], "{outcome}");
    assert!(outcome["resumed_partitions"].as_u64().unwrap() > 0, "{outcome}");
    let committed = |b: &str| {
        json(&run_python_client(
            "kafka_python_client.py",
            &["committed", "--bootstrap", b, "--topic", "grouped", "--group", "g1"],
        ))
    };
    let before = committed(&b);
    assert!(server.stop().success());
    let server = KafkaServer::start(&dir.path().join("data"), &[]);
    let after = committed(&server.bootstrap);
    assert_eq!(before, after, "committed offsets survive a restart");
    let total: i64 =
        before["committed"].as_object().unwrap().values().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(total, outcome["consumed_before_commit"].as_i64().unwrap(), "{before} {outcome}");
    assert!(server.stop().success());
}

#[test]
fn a_toml_config_file_configures_the_broker_and_a_bad_one_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "node_id = 7\npartitions = 3\nflush = \"sync\"\nretention_ms = 3600000\n",
    )
    .unwrap();
    let config_arg = config.to_string_lossy().into_owned();
    let server = KafkaServer::start(&dir.path().join("data"), &["--config", &config_arg]);
    let b = server.bootstrap.clone();
    run_python_client(
        "kafka_python_client.py",
        &["produce", "--bootstrap", &b, "--topic", "auto", "--count", "10"],
    );
    let isr = json(&run_python_client(
        "kafka_python_client.py",
        &["isr", "--bootstrap", &b, "--topic", "auto"],
    ));
    assert_eq!(isr["isr"].as_object().unwrap().len(), 3, "partitions = 3 from the file: {isr}");
    assert!(server.stop().success());

    std::fs::write(&config, "node_id = 7\nno_such_setting = 1\n").unwrap();
    let output = Command::new(twinmq_e2e::twinmq_binary())
        .args(["serve", "kafka", "--config", &config_arg])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broker.toml") && stderr.contains("no_such_setting"), "{stderr}");
}
