//! The RocketMQ remoting wire at its edges, spoken byte by byte to `twinmq serve
//! rocketmq-namesrv` and `rocketmq-broker`: garbage, inconsistent and oversized frames close only
//! the offending connection; requests the server cannot serve get an error response with their
//! opaque; neither process panics, and a well-behaved client keeps sending and pulling
//! throughout.

use twinmq_e2e::rocketmq::{raw_frame, request_frame};
use twinmq_e2e::{RemotingConnection, RocketmqCluster};

const SEND_MESSAGE: i32 = 10;
const PULL_MESSAGE: i32 = 11;
const UPDATE_AND_CREATE_TOPIC: i32 = 17;
const HEART_BEAT: i32 = 34;
const LOCK_BATCH_MQ: i32 = 41;
const REGISTER_BROKER: i32 = 103;
const GET_ROUTEINFO_BY_TOPIC: i32 = 105;
const SEND_BATCH_MESSAGE: i32 = 320;
const SUCCESS: i32 = 0;
const REQUEST_CODE_NOT_SUPPORTED: i32 = 3;
/// The broker's and the nameserver's default `frame_bytes_max` (16 MiB).
const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The broker's default `maxMessageSize` (4 MiB).
const MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A request as (what it tries, request code, extFields, body).
type BadRequest<'a> = (&'a str, i32, Vec<(&'a str, &'a str)>, Vec<u8>);

/// A producer and consumer speaking correct frames on one long-lived broker connection.
struct GoodClient {
    broker: RemotingConnection,
    sent: u64,
}

impl GoodClient {
    fn connect(cluster: &RocketmqCluster) -> Self {
        Self { broker: RemotingConnection::connect(&cluster.broker.addr), sent: 0 }
    }

    /// Sends one message to `Good` queue 0 and pulls it back by its offset.
    fn round_trip(&mut self) {
        let body = format!("good-{}", self.sent);
        let born = self.sent.to_string();
        let sent = self.broker.request(
            SEND_MESSAGE,
            &[
                ("producerGroup", "good-producer"),
                ("topic", "Good"),
                ("defaultTopic", "TBW102"),
                ("defaultTopicQueueNums", "4"),
                ("queueId", "0"),
                ("sysFlag", "0"),
                ("bornTimestamp", &born),
                ("flag", "0"),
                ("properties", "TAGS\u{1}good\u{2}"),
                ("reconsumeTimes", "0"),
                ("unitMode", "false"),
                ("batch", "false"),
            ],
            body.as_bytes(),
        );
        assert_eq!(sent.code, SUCCESS, "good send refused: {sent:?}");
        let offset = sent.ext.get("queueOffset").cloned().expect("queueOffset in the send reply");
        assert_eq!(offset, self.sent.to_string());
        let pulled = self.broker.request(
            PULL_MESSAGE,
            &[
                ("consumerGroup", "good-consumer"),
                ("topic", "Good"),
                ("queueId", "0"),
                ("queueOffset", &offset),
                ("maxMsgNums", "1"),
                ("sysFlag", "0"),
                ("commitOffset", "0"),
                ("suspendTimeoutMillis", "0"),
                ("subscription", "*"),
                ("subVersion", "0"),
                ("expressionType", "TAG"),
            ],
            &[],
        );
        assert_eq!(pulled.code, SUCCESS, "good pull failed: {pulled:?}");
        assert_eq!(stored_body(&pulled.body), body.as_bytes());
        self.sent += 1;
    }
}

/// The body of the first stored message in a pull response (RocketMQ's stored layout, the
/// body length at byte 84).
fn stored_body(records: &[u8]) -> &[u8] {
    let length = u32::from_be_bytes(records[84..88].try_into().unwrap()) as usize;
    &records[88..88 + length]
}

/// Both servers still run and never panicked.
fn assert_healthy(cluster: &mut RocketmqCluster) {
    assert!(cluster.namesrv.is_running(), "the nameserver died:\n{}", cluster.logs());
    assert!(cluster.broker.is_running(), "the broker died:\n{}", cluster.logs());
    let logs = cluster.logs();
    assert!(!logs.contains("panicked"), "a server panicked:\n{logs}");
}

/// Byte strings no server can make sense of, each with what it tries.
fn malformed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let json = br#"{"code":105,"language":"RUST","version":474,"opaque":7,"flag":0}"#;
    let mut header_past_frame = 10u32.to_be_bytes().to_vec();
    header_past_frame.extend_from_slice(&100u32.to_be_bytes());
    header_past_frame.extend_from_slice(b"{\"code\":");
    let mut oversized = u32::try_from(FRAME_BYTES_MAX + 1).unwrap().to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0u8; 4096]);
    let mut short_binary = vec![0u8; 4];
    short_binary.extend_from_slice(&i32::MAX.to_be_bytes());
    vec![
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: twinmq\r\n\r\n".to_vec()),
        (
            "random bytes",
            (1..2048u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect(),
        ),
        ("a frame too short for its header length", vec![0, 0, 0, 2, 0, 0]),
        ("a header length larger than the frame", header_past_frame),
        ("a header that is not JSON", raw_frame(0, b"{\"code\": 105, \"opaque\"", b"")),
        ("a JSON header without a code", raw_frame(0, b"{\"opaque\":1}", b"")),
        ("a JSON header that is an array", raw_frame(0, b"[1,2,3]", b"")),
        ("an empty header", raw_frame(0, b"", b"body")),
        ("an unknown serialize type", raw_frame(7, json, b"")),
        ("a binary header cut short", raw_frame(1, &[0, 105, 12], b"")),
        ("a binary header with a remark past its end", raw_frame(1, &short_binary, b"")),
        ("a frame larger than frame_bytes_max", oversized),
    ]
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = RocketmqCluster::start(dir.path(), &[]);
    let mut good = GoodClient::connect(&cluster);
    let mut good_namesrv = RemotingConnection::connect(&cluster.namesrv.addr);
    good.round_trip();
    for (what, bytes) in malformed_inputs() {
        for (server, addr) in
            [("broker", &cluster.broker.addr), ("nameserver", &cluster.namesrv.addr)]
        {
            let mut bad = RemotingConnection::connect(addr);
            bad.send_raw(&bytes);
            assert!(bad.is_closed(), "{server} kept the connection open after {what}");
        }
        good.round_trip();
        let route = good_namesrv.request(GET_ROUTEINFO_BY_TOPIC, &[("topic", "TBW102")], &[]);
        assert_eq!(route.code, SUCCESS, "nameserver after {what}: {route:?}");
        assert_healthy(&mut cluster);
    }
}

#[test]
fn unknown_request_code_is_answered_with_its_opaque_and_the_connection_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = RocketmqCluster::start(dir.path(), &[]);
    for addr in [cluster.broker.addr.clone(), cluster.namesrv.addr.clone()] {
        let mut connection = RemotingConnection::connect(&addr);
        connection.send_raw(&request_frame(9_999, 4_242, 0, &[("topic", "X")], b"?"));
        let reply = connection.read_command().expect("an answer");
        assert_eq!(reply.code, REQUEST_CODE_NOT_SUPPORTED, "{addr}: {reply:?}");
        assert_eq!(reply.opaque, 4_242);
        assert_eq!(reply.flag & 1, 1, "marked as a response");
        assert!(reply.remark.is_some_and(|r| !r.is_empty()), "a remark says why");
        // A oneway request with an unknown code gets nothing back; the next request is served.
        connection.oneway(-1, &[], &[]);
        let again = connection.request(i32::from(i16::MAX), &[], &[]);
        assert_eq!(again.code, REQUEST_CODE_NOT_SUPPORTED);
    }
    let mut good = GoodClient::connect(&cluster);
    good.round_trip();
    assert_healthy(&mut cluster);
}

#[test]
fn requests_with_bad_fields_or_bodies_get_error_responses_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = RocketmqCluster::start(dir.path(), &[]);
    let mut good = GoodClient::connect(&cluster);
    let mut broker = RemotingConnection::connect(&cluster.broker.addr);
    let mut namesrv = RemotingConnection::connect(&cluster.namesrv.addr);
    let huge = "18446744073709551615";
    let big_body = vec![b'x'; MESSAGE_BYTES_MAX + 1];
    let broker_requests: Vec<BadRequest<'_>> = vec![
        ("a send without a topic", SEND_MESSAGE, vec![("queueId", "0")], b"x".to_vec()),
        ("a body over maxMessageSize", SEND_MESSAGE, vec![("topic", "Big")], big_body),
        (
            "a send to a path-like topic",
            SEND_MESSAGE,
            vec![("topic", "../../escape")],
            b"x".to_vec(),
        ),
        (
            "a send to the delay topic",
            SEND_MESSAGE,
            vec![("topic", "SCHEDULE_TOPIC_XXXX")],
            b"x".to_vec(),
        ),
        ("a batch cut short", SEND_BATCH_MESSAGE, vec![("b", "Good")], vec![0, 0, 0, 40, 0, 0]),
        ("a batch record of size zero", SEND_BATCH_MESSAGE, vec![("b", "Good")], vec![0; 24]),
        ("a pull without fields", PULL_MESSAGE, vec![], vec![]),
        (
            "a pull at the largest offset",
            PULL_MESSAGE,
            vec![
                ("consumerGroup", "g"),
                ("topic", "Good"),
                ("queueId", "0"),
                ("queueOffset", huge),
                ("maxMsgNums", huge),
            ],
            vec![],
        ),
        ("a heartbeat that is not JSON", HEART_BEAT, vec![], b"{{{".to_vec()),
        ("a lock request that is not JSON", LOCK_BATCH_MQ, vec![], b"[".to_vec()),
        (
            "a topic created with a path-like name",
            UPDATE_AND_CREATE_TOPIC,
            vec![("topic", "a/../../escape")],
            vec![],
        ),
    ];
    for (what, code, fields, body) in &broker_requests {
        let reply = broker.request(*code, fields, body);
        assert_ne!(reply.code, SUCCESS, "broker accepted {what}: {reply:?}");
        good.round_trip();
    }
    let namesrv_requests: Vec<BadRequest<'_>> = vec![
        ("a registration without fields", REGISTER_BROKER, vec![], vec![]),
        (
            "a registration whose body is not JSON",
            REGISTER_BROKER,
            vec![
                ("brokerAddr", "1.2.3.4:5"),
                ("brokerName", "b"),
                ("clusterName", "c"),
                ("brokerId", "0"),
            ],
            b"not json".to_vec(),
        ),
        ("a route lookup without a topic", GET_ROUTEINFO_BY_TOPIC, vec![], vec![]),
    ];
    for (what, code, fields, body) in &namesrv_requests {
        let reply = namesrv.request(*code, fields, body);
        assert_ne!(reply.code, SUCCESS, "nameserver accepted {what}: {reply:?}");
    }
    let escaped = dir.path().join("broker").join("escape");
    assert!(!escaped.exists(), "a topic name wrote outside the store: {}", escaped.display());
    good.round_trip();
    assert_healthy(&mut cluster);
}

#[test]
fn a_stream_of_random_frames_never_panics_either_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = RocketmqCluster::start(dir.path(), &[]);
    let mut good = GoodClient::connect(&cluster);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let codes = [
        10, 11, 14, 15, 17, 29, 30, 31, 34, 35, 36, 37, 38, 41, 42, 103, 104, 105, 106, 217, 310,
        320, 361,
    ];
    let keys = [
        "topic",
        "queueId",
        "queueOffset",
        "consumerGroup",
        "b",
        "e",
        "offset",
        "group",
        "delayLevel",
        "commitLogOffset",
        "maxMsgNums",
        "brokerId",
    ];
    let values = [
        "",
        "0",
        "-1",
        "1",
        "4294967296",
        "-9223372036854775808",
        "9223372036854775807",
        "%RETRY%g",
        "SCHEDULE_TOPIC_XXXX",
        "TBW102",
        "x\u{1}y\u{2}",
    ];
    for round in 0..300 {
        let addr = if round % 3 == 0 { &cluster.namesrv.addr } else { &cluster.broker.addr };
        let mut connection = RemotingConnection::connect(addr);
        let code = codes[(next() % codes.len() as u64) as usize];
        let fields: Vec<(&str, &str)> = (0..next() % 6)
            .map(|_| {
                (
                    keys[(next() % keys.len() as u64) as usize],
                    values[(next() % values.len() as u64) as usize],
                )
            })
            .collect();
        let body: Vec<u8> = (0..next() % 200).map(|_| next() as u8).collect();
        connection.send_raw(&request_frame(code, round, 0, &fields, &body));
        // An answer or a closed connection are both fine; only a hang or a crash is not.
        let _ = connection.read_command();
        if round % 50 == 0 {
            good.round_trip();
            assert_healthy(&mut cluster);
        }
    }
    good.round_trip();
    assert_healthy(&mut cluster);
}
