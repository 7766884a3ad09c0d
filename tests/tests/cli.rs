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
fn unbuilt_subcommands_fail_loudly() {
    let output = Command::new(twinmq_binary()).arg("sim").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "sim must exit 2");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("not built yet"), "sim said: {stderr}");
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
