//! A Kafka-model cluster as processes: a controller and three brokers, a topic with
//! replication factor 3 and min.insync.replicas 2, an acks=all producer (kafka-python) under
//! way when the broker leading a third of the partitions is killed with SIGKILL. New leaders
//! are elected, the producer finishes, every acknowledged record is consumed, and the killed
//! broker restarts, catches up and rejoins every ISR.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use twinmq_e2e::{KafkaServer, client_script, run_python_client, venv_python};

const RECORDS: u64 = 60_000;

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn broker(dir: &std::path::Path, node: u32, controller: &str, listen: &str) -> KafkaServer {
    let node = node.to_string();
    KafkaServer::start_as(
        "kafka",
        &dir.join(format!("broker-{node}")),
        listen,
        &[
            "--node-id",
            &node,
            "--controller",
            controller,
            "--replication-factor",
            "3",
            "--min-insync-replicas",
            "2",
            "--broker-session-timeout-ms",
            "3000",
        ],
    )
}

#[test]
fn killing_a_leader_under_acks_all_load_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let controller = KafkaServer::start_as(
        "kafka-controller",
        &dir.path().join("controller"),
        "127.0.0.1:0",
        &["--node-id", "100", "--replication-factor", "3", "--broker-session-timeout-ms", "3000"],
    );
    let at = format!("100@{}", controller.bootstrap);
    let one = broker(dir.path(), 1, &at, "127.0.0.1:0");
    let two = broker(dir.path(), 2, &at, "127.0.0.1:0");
    let three = broker(dir.path(), 3, &at, "127.0.0.1:0");
    let survivors = format!("{},{}", two.bootstrap, three.bootstrap);
    let everyone = format!("{},{survivors}", one.bootstrap);
    let topic = ["--topic", "replicated"];
    run_python_client(
        "kafka_python_client.py",
        &[
            "create",
            "--bootstrap",
            &everyone,
            topic[0],
            topic[1],
            "--partitions",
            "6",
            "--replication-factor",
            "3",
        ],
    );

    let count = RECORDS.to_string();
    let mut producer = Command::new(venv_python())
        .arg(client_script("kafka_python_client.py"))
        .args(["produce", "--bootstrap", &everyone, topic[0], topic[1], "--count", &count])
        .args(["--acks", "all", "--progress", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(producer.stdout.take().unwrap()).lines();
    // Kill broker 1 once the producer is under way: after its first 10,000 acknowledgements.
    let restart_listen = one.bootstrap.clone();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if json(&line)["progress"].as_u64().is_some_and(|acked| acked >= 10_000) {
            break;
        }
    }
    one.kill();
    let last = lines.map(|l| l.unwrap()).last().expect("the producer reports its result");
    assert!(producer.wait().unwrap().success());
    let produced = json(&last);
    assert_eq!(
        produced["acked"], RECORDS,
        "every record acknowledged despite the kill: {produced}"
    );

    let consumed = json(&run_python_client(
        "kafka_python_client.py",
        &["consume", "--bootstrap", &survivors, topic[0], topic[1], "--expect", &count],
    ));
    assert_eq!(consumed["distinct"], RECORDS, "every acknowledged record is there: {consumed}");
    assert_eq!(consumed["consumed"], RECORDS, "and none twice: {consumed}");
    assert_eq!(consumed["ordered"], true, "{consumed}");
    let log = controller.log();
    assert!(log.contains("fenced"), "the controller fenced the killed broker:\n{log}");

    // The killed broker comes back on its old address and data, and rejoins every ISR.
    let one = broker(dir.path(), 1, &at, &restart_listen);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let isr = json(&run_python_client(
            "kafka_python_client.py",
            &["isr", "--bootstrap", &everyone, topic[0], topic[1]],
        ));
        if isr["isr"].as_object().unwrap().values().all(|size| size == 3) {
            break;
        }
        assert!(Instant::now() < deadline, "broker 1 never rejoined the ISR: {isr}\n{}", one.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let again = json(&run_python_client(
        "kafka_python_client.py",
        &["consume", "--bootstrap", &one.bootstrap, topic[0], topic[1], "--expect", &count],
    ));
    assert_eq!(again["distinct"], RECORDS, "{again}");
    for server in [one, two, three, controller] {
        assert!(server.stop().success());
    }
}
