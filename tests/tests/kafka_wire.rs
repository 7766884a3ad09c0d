//! The Kafka wire at its edges, spoken byte by byte to `twinmq serve kafka`: bad input closes
//! only the offending connection (or gets the protocol's error code), and an idempotent
//! producer's retried batch is acknowledged without being appended twice.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use twinmq_e2e::KafkaServer;

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    fn connect(bootstrap: &str) -> Self {
        let stream = TcpStream::connect(bootstrap).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self { stream, correlation: 0 }
    }

    fn send_raw(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).unwrap();
    }

    /// The connection was closed by the broker: a read returns end of stream (or a reset).
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(self.stream.read(&mut byte), Ok(n) if n > 0)
    }

    fn request<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &R,
    ) -> Bytes {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")));
        let mut payload = BytesMut::new();
        header.encode(&mut payload, R::header_version(version)).unwrap();
        body.encode(&mut payload, version).unwrap();
        let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.send_raw(&frame);
        self.read_response(key.response_header_version(version))
    }

    fn read_response(&mut self, header_version: i16) -> Bytes {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut payload = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        let mut payload = Bytes::from(payload);
        let header = ResponseHeader::decode(&mut payload, header_version).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        payload
    }

    fn metadata(&mut self, topic: &str) -> MetadataResponse {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(topic.into())))),
            ]))
            .with_allow_auto_topic_creation(true);
        let mut body = self.request(ApiKey::Metadata, 12, &request);
        MetadataResponse::decode(&mut body, 12).unwrap()
    }

    fn produce(
        &mut self,
        topic: &str,
        records: Bytes,
    ) -> produce_response::PartitionProduceResponse {
        let request =
            ProduceRequest::default().with_acks(-1).with_timeout_ms(10_000).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.into())))
                    .with_partition_data(vec![
                        PartitionProduceData::default().with_index(0).with_records(Some(records)),
                    ]),
            ]);
        let mut body = self.request(ApiKey::Produce, 9, &request);
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        response.responses[0].partition_responses[0].clone()
    }
}

fn batch(producer_id: i64, base_sequence: i32, count: i32) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: base_sequence + i,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

fn frame(api_key: i16, version: i16, rest: &[u8]) -> Vec<u8> {
    let mut payload = api_key.to_be_bytes().to_vec();
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&7i32.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes());
    payload.extend_from_slice(rest);
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

#[test]
fn bad_input_closes_only_its_connection_or_gets_an_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = KafkaServer::start(&dir.path().join("data"), &[]);
    let mut bystander = Client::connect(&server.bootstrap);
    assert_eq!(bystander.metadata("edges").topics[0].error_code, 0);

    let mut garbage = Client::connect(&server.bootstrap);
    garbage.send_raw(&[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(garbage.is_closed(), "garbage closes the connection");

    let mut huge = Client::connect(&server.bootstrap);
    huge.send_raw(&(200 * 1024 * 1024i32).to_be_bytes());
    assert!(huge.is_closed(), "a frame over socket.request.max.bytes closes the connection");

    let mut unknown = Client::connect(&server.bootstrap);
    unknown.send_raw(&frame(999, 0, &[]));
    assert!(unknown.is_closed(), "an unknown API key closes the connection");

    let mut too_new = Client::connect(&server.bootstrap);
    too_new.send_raw(&frame(ApiKey::Metadata as i16, 13, &[0; 8]));
    assert!(too_new.is_closed(), "a version above the advertised maximum closes the connection");

    let mut versions = Client::connect(&server.bootstrap);
    versions.correlation = 7;
    versions.send_raw(&frame(ApiKey::ApiVersions as i16, 99, &[]));
    let mut body = versions.read_response(0);
    let answer = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(answer.error_code, 35, "ApiVersions above the maximum gets UNSUPPORTED_VERSION");
    assert!(
        answer.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0)
    );

    let mut corrupt = Client::connect(&server.bootstrap);
    corrupt.metadata("edges");
    let mut bytes = batch(-1, -1, 3).to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let refused = corrupt.produce("edges", Bytes::from(bytes));
    assert_eq!(refused.error_code, 2, "a corrupt batch gets CORRUPT_MESSAGE");
    let accepted = corrupt.produce("edges", batch(-1, -1, 3));
    assert_eq!((accepted.error_code, accepted.base_offset), (0, 0), "the connection goes on");

    assert_eq!(
        bystander.metadata("edges").topics[0].partitions.len(),
        1,
        "bystanders are unaffected"
    );
    let log = server.log();
    assert!(log.contains("unknown API key 999"), "every close is logged:\n{log}");
    assert!(log.contains("exceeds the limit"), "{log}");
    assert!(server.stop().success());
}

#[test]
fn an_idempotent_retry_is_acknowledged_once_and_a_sequence_gap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = KafkaServer::start(&dir.path().join("data"), &[]);
    let mut client = Client::connect(&server.bootstrap);
    client.metadata("idem");
    let mut body = client.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    let init = InitProducerIdResponse::decode(&mut body, 4).unwrap();
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;

    let first = client.produce("idem", batch(pid, 0, 5));
    let retried = client.produce("idem", batch(pid, 0, 5));
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    assert_eq!(
        (retried.error_code, retried.base_offset),
        (0, 0),
        "the retry maps to the first append"
    );
    let next = client.produce("idem", batch(pid, 5, 2));
    assert_eq!((next.error_code, next.base_offset), (0, 5), "the retry took no offsets");
    let gap = client.produce("idem", batch(pid, 9, 1));
    assert_eq!(gap.error_code, 45, "a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER");

    // The state survives a restart: the log is replayed, the retry is still recognised.
    assert!(server.stop().success());
    let server = KafkaServer::start(&dir.path().join("data"), &[]);
    let mut client = Client::connect(&server.bootstrap);
    client.metadata("idem");
    let again = client.produce("idem", batch(pid, 5, 2));
    assert_eq!((again.error_code, again.base_offset), (0, 5), "recognised after restart");
    let after = client.produce("idem", batch(pid, 7, 1));
    assert_eq!((after.error_code, after.base_offset), (0, 7));
    assert!(server.stop().success());
}
