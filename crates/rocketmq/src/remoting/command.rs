//! RemotingCommand — one request or response: the header (code, language, version, opaque,
//! flag, remark, extFields) and a body.
//!
//! ## Header formats
//!
//! - JSON (serialize type 0), what every client sends: keys `code, language, version, opaque,
//!   flag, remark, extFields, serializeTypeCurrentRPC`; every `extFields` value is a string; a
//!   reply without `language` or `serializeTypeCurrentRPC` is silently unusable to the Rust
//!   client, so both are always written.
//! - ROCKETMQ (serialize type 1), RocketMQ's binary form: `code i16 | language u8 | version i16
//!   | opaque i32 | flag i32 | remark (i32 length + bytes) | extFields (i32 length + repeated
//!   (i16 key length, key, i32 value length, value))`. Decoded when received; twinmq answers in
//!   JSON, as the reference servers do.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::frame::{RawFrame, put_frame};

/// The remoting version twinmq announces (the value the reference servers send).
pub const REMOTING_VERSION: i32 = 474;
/// `flag` bit: this is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// `flag` bit: this request wants no response.
pub const FLAG_ONEWAY: i32 = 2;

/// How a header is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerializeType {
    /// JSON (type 0).
    Json,
    /// RocketMQ's binary header (type 1).
    RocketMq,
}

/// The client languages RocketMQ knows, with their binary codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguageCode;

impl LanguageCode {
    /// Names in binary code order.
    pub const NAMES: [&'static str; 14] = [
        "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO",
        "PHP", "OMS", "RUST", "NODE_JS",
    ];

    /// The name of a binary language code ("OTHER" when unknown).
    pub fn name(code: u8) -> &'static str {
        Self::NAMES.get(usize::from(code)).copied().unwrap_or("OTHER")
    }

    /// The binary code of a language name (OTHER when unknown).
    pub fn code(name: &str) -> u8 {
        Self::NAMES.iter().position(|n| *n == name).map_or(7, |p| u8::try_from(p).unwrap_or(7))
    }
}

/// Why a command cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The JSON header does not parse.
    #[error("invalid JSON header: {0}")]
    Json(String),
    /// The binary header is cut short or inconsistent.
    #[error("invalid binary header: {0}")]
    Binary(&'static str),
    /// A serialize type other than 0 and 1.
    #[error("unknown serialize type {0}")]
    SerializeType(u8),
}

/// One remoting command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code, or response code.
    pub code: i32,
    /// The sender's language.
    pub language: String,
    /// The sender's version.
    pub version: i32,
    /// Matches a response to its request.
    pub opaque: i32,
    /// Bit 0: response; bit 1: oneway.
    pub flag: i32,
    /// Free text (errors, statuses).
    pub remark: Option<String>,
    /// The custom header fields, all strings.
    pub ext_fields: BTreeMap<String, String>,
    /// The body.
    pub body: Bytes,
}

#[derive(Serialize, Deserialize)]
struct JsonHeader {
    code: i32,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(rename = "extFields", default)]
    ext_fields: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "serializeTypeCurrentRPC", default)]
    serialize_type: Option<String>,
}

impl RemotingCommand {
    /// A request from twinmq (a broker's callback or our client's request).
    pub fn request(code: i32, ext_fields: BTreeMap<String, String>, body: Bytes) -> Self {
        Self {
            code,
            language: "RUST".into(),
            version: REMOTING_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields,
            body,
        }
    }

    /// The response to `request` with `code`.
    pub fn response_to(request: &Self, code: i32, remark: Option<String>) -> Self {
        Self {
            code,
            language: "RUST".into(),
            version: REMOTING_VERSION,
            opaque: request.opaque,
            flag: FLAG_RESPONSE,
            remark,
            ext_fields: BTreeMap::new(),
            body: Bytes::new(),
        }
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this request wants no response.
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks this request oneway.
    pub fn oneway(mut self) -> Self {
        self.flag |= FLAG_ONEWAY;
        self
    }

    /// An extFields value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.ext_fields.get(name).map(String::as_str)
    }

    /// Sets an extFields value.
    pub fn with_field(mut self, name: &str, value: impl ToString) -> Self {
        self.ext_fields.insert(name.to_owned(), value.to_string());
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Decodes a frame's header and takes its body.
    pub fn decode(frame: RawFrame) -> Result<Self, CommandError> {
        let mut command = match frame.serialize_type {
            0 => Self::decode_json(&frame.header)?,
            1 => Self::decode_binary(frame.header)?,
            other => return Err(CommandError::SerializeType(other)),
        };
        command.body = frame.body;
        Ok(command)
    }

    fn decode_json(header: &[u8]) -> Result<Self, CommandError> {
        let parsed: JsonHeader =
            serde_json::from_slice(header).map_err(|e| CommandError::Json(e.to_string()))?;
        let ext_fields = parsed
            .ext_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, value)| match value {
                serde_json::Value::String(text) => Some((key, text)),
                serde_json::Value::Null => None,
                other => Some((key, other.to_string())),
            })
            .collect();
        Ok(Self {
            code: parsed.code,
            language: parsed.language.unwrap_or_else(|| "OTHER".into()),
            version: parsed.version,
            opaque: parsed.opaque,
            flag: parsed.flag,
            remark: parsed.remark,
            ext_fields,
            body: Bytes::new(),
        })
    }

    fn decode_binary(mut header: Bytes) -> Result<Self, CommandError> {
        fn need(buf: &Bytes, n: usize) -> Result<(), CommandError> {
            if buf.remaining() < n { Err(CommandError::Binary("header cut short")) } else { Ok(()) }
        }
        fn take_string(buf: &mut Bytes, len: usize) -> Result<String, CommandError> {
            need(buf, len)?;
            String::from_utf8(buf.split_to(len).to_vec())
                .map_err(|_| CommandError::Binary("text is not UTF-8"))
        }
        need(&header, 2 + 1 + 2 + 4 + 4 + 4)?;
        let code = i32::from(header.get_i16());
        let language = LanguageCode::name(header.get_u8()).to_owned();
        let version = i32::from(header.get_i16());
        let opaque = header.get_i32();
        let flag = header.get_i32();
        let remark_len = usize::try_from(header.get_i32())
            .map_err(|_| CommandError::Binary("negative remark length"))?;
        let remark =
            if remark_len > 0 { Some(take_string(&mut header, remark_len)?) } else { None };
        need(&header, 4)?;
        let ext_len = usize::try_from(header.get_i32())
            .map_err(|_| CommandError::Binary("negative extFields length"))?;
        need(&header, ext_len)?;
        let mut ext = header.split_to(ext_len);
        let mut ext_fields = BTreeMap::new();
        while ext.has_remaining() {
            need(&ext, 2)?;
            let key_len = usize::from(ext.get_u16());
            let key = take_string(&mut ext, key_len)?;
            need(&ext, 4)?;
            let value_len = usize::try_from(ext.get_i32())
                .map_err(|_| CommandError::Binary("negative value length"))?;
            let value = take_string(&mut ext, value_len)?;
            ext_fields.insert(key, value);
        }
        Ok(Self { code, language, version, opaque, flag, remark, ext_fields, body: Bytes::new() })
    }

    /// Appends this command as one JSON-header frame to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) {
        let header = JsonHeader {
            code: self.code,
            language: Some(self.language.clone()),
            version: self.version,
            opaque: self.opaque,
            flag: self.flag,
            remark: self.remark.clone(),
            ext_fields: (!self.ext_fields.is_empty() || !self.is_response()).then(|| {
                self.ext_fields
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect()
            }),
            serialize_type: Some("JSON".into()),
        };
        let json = serde_json::to_vec(&header).unwrap_or_default();
        put_frame(out, 0, &json, &self.body);
    }

    /// Appends this command with a binary header (tests, peers that want it).
    pub fn encode_binary_into(&self, out: &mut BytesMut) {
        let mut header = Vec::new();
        header.extend_from_slice(&i16::try_from(self.code).unwrap_or(i16::MAX).to_be_bytes());
        header.push(LanguageCode::code(&self.language));
        header.extend_from_slice(&i16::try_from(self.version).unwrap_or(i16::MAX).to_be_bytes());
        header.extend_from_slice(&self.opaque.to_be_bytes());
        header.extend_from_slice(&self.flag.to_be_bytes());
        let remark = self.remark.as_deref().unwrap_or("").as_bytes();
        header.extend_from_slice(&i32::try_from(remark.len()).unwrap_or(0).to_be_bytes());
        header.extend_from_slice(remark);
        let mut ext = Vec::new();
        for (key, value) in &self.ext_fields {
            ext.extend_from_slice(&u16::try_from(key.len()).unwrap_or(0).to_be_bytes());
            ext.extend_from_slice(key.as_bytes());
            ext.extend_from_slice(&i32::try_from(value.len()).unwrap_or(0).to_be_bytes());
            ext.extend_from_slice(value.as_bytes());
        }
        header.extend_from_slice(&i32::try_from(ext.len()).unwrap_or(0).to_be_bytes());
        header.extend_from_slice(&ext);
        put_frame(out, 1, &header, &self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::try_frame;
    use super::*;

    fn round_trip(out: &mut BytesMut) -> RemotingCommand {
        let frame = try_frame(out, 1 << 20).unwrap().unwrap();
        RemotingCommand::decode(frame).unwrap()
    }

    #[test]
    fn decodes_what_the_rust_client_sends() {
        let header = br#"{"code":105,"language":"RUST","version":474,"opaque":0,"flag":0,"remark":null,"extFields":{"topic":"CapS1"},"serializeTypeCurrentRPC":"JSON"}"#;
        let mut wire = BytesMut::new();
        put_frame(&mut wire, 0, header, b"");
        let command = round_trip(&mut wire);
        assert_eq!((command.code, command.opaque, command.field("topic")), (105, 0, Some("CapS1")));
        assert!(!command.is_response() && !command.is_oneway());
    }

    #[test]
    fn a_response_carries_every_key_the_client_requires() {
        let request = RemotingCommand::request(105, BTreeMap::new(), Bytes::new());
        let response = RemotingCommand::response_to(
            &RemotingCommand { opaque: 41, ..request },
            17,
            Some("no route".into()),
        );
        let mut wire = BytesMut::new();
        response.encode_into(&mut wire);
        let text = String::from_utf8(wire[8..].to_vec()).unwrap();
        for key in [
            "\"code\":17",
            "\"language\":\"RUST\"",
            "\"opaque\":41",
            "\"flag\":1",
            "\"serializeTypeCurrentRPC\":\"JSON\"",
            "\"extFields\":null",
        ] {
            assert!(text.contains(key), "{key} missing in {text}");
        }
        let decoded = round_trip(&mut wire);
        assert_eq!(decoded.remark.as_deref(), Some("no route"));
        assert!(decoded.is_response());
    }

    #[test]
    fn ext_values_are_strings_even_when_a_peer_sends_numbers() {
        let header =
            br#"{"code":10,"extFields":{"queueId":3,"batch":false,"topic":"t","gone":null}}"#;
        let mut wire = BytesMut::new();
        put_frame(&mut wire, 0, header, b"payload");
        let command = round_trip(&mut wire);
        assert_eq!(command.field("queueId"), Some("3"));
        assert_eq!(command.field("batch"), Some("false"));
        assert_eq!(command.field("gone"), None);
        assert_eq!(&command.body[..], b"payload");
        assert_eq!(command.language, "OTHER", "a missing language decodes, as OTHER");
    }

    #[test]
    fn the_binary_header_round_trips_and_bad_ones_are_refused() {
        let command = RemotingCommand::request(
            11,
            BTreeMap::from([("topic".into(), "t".into()), ("queueId".into(), "0".into())]),
            Bytes::from_static(b"b"),
        )
        .oneway();
        let mut wire = BytesMut::new();
        command.encode_binary_into(&mut wire);
        let decoded = round_trip(&mut wire);
        assert_eq!(decoded, command);
        for bad in [
            &b""[..],
            &[0, 1, 12, 1][..],
            &[0, 1, 12, 1, 0xd2, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0, 0][..],
        ] {
            let frame = RawFrame {
                serialize_type: 1,
                header: Bytes::copy_from_slice(bad),
                body: Bytes::new(),
            };
            assert!(RemotingCommand::decode(frame).is_err(), "{bad:?}");
        }
        let frame = RawFrame {
            serialize_type: 0,
            header: Bytes::from_static(b"{not json"),
            body: Bytes::new(),
        };
        assert!(matches!(RemotingCommand::decode(frame), Err(CommandError::Json(_))));
        let frame = RawFrame { serialize_type: 9, header: Bytes::new(), body: Bytes::new() };
        assert_eq!(RemotingCommand::decode(frame), Err(CommandError::SerializeType(9)));
    }
}
