//! Message properties as RocketMQ writes them: `name \u{1} value \u{2}` repeated, with a
//! trailing `\u{2}`, in no fixed order. Travels in the SEND header's `properties` field and in
//! the stored record's PROPERTIES bytes.

use std::collections::BTreeMap;

/// Separates a name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends each property.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// The message's tags.
pub const TAGS: &str = "TAGS";
/// The message's keys, joined by one space.
pub const KEYS: &str = "KEYS";
/// The producer's unique id for the message.
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// The delay level of a delayed message.
pub const DELAY: &str = "DELAY";
/// Marks a transactional (half) message.
pub const TRAN_MSG: &str = "TRAN_MSG";
/// The producer group of a half message.
pub const PGROUP: &str = "PGROUP";
/// The topic a scheduled, half or retried message really belongs to.
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Its real queue id.
pub const REAL_QID: &str = "REAL_QID";
/// The original topic of a retried message.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// The original offset message id of a retried message.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Wait for the store before answering (sync flush).
pub const WAIT: &str = "WAIT";

/// Parses a properties string (lenient: a pair without a separator is skipped).
pub fn decode(text: &str) -> BTreeMap<String, String> {
    text.split(PROPERTY_SEPARATOR)
        .filter_map(|pair| pair.split_once(NAME_VALUE_SEPARATOR))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// Writes properties, each followed by the separator.
pub fn encode(properties: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (name, value) in properties {
        out.push_str(name);
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(value);
        out.push(PROPERTY_SEPARATOR);
    }
    out
}

/// Java's `String.hashCode`: the tag hash in a ConsumeQueue entry and in a subscription's
/// `codeSet`.
pub fn tag_hash(tag: &str) -> i64 {
    i64::from(
        tag.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_client_sends_and_round_trips() {
        let sent = "WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}C0000202\u{2}KEYS\u{1}K0 order-0\u{2}";
        let properties = decode(sent);
        assert_eq!(properties[TAGS], "TagA");
        assert_eq!(properties[KEYS], "K0 order-0");
        assert_eq!(properties.len(), 4);
        let encoded = encode(&properties);
        assert!(encoded.ends_with(PROPERTY_SEPARATOR));
        assert_eq!(decode(&encoded), properties);
        assert!(decode("garbage without separators").is_empty());
    }

    #[test]
    fn tag_hash_is_javas_string_hash_code() {
        assert_eq!(tag_hash("TagA"), 2_598_919, "the codeSet value seen on the wire");
        assert_eq!(tag_hash(""), 0);
    }
}
