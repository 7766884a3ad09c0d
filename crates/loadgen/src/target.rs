//! Target — the broker a run drives, named by a URL: `kafka://HOST:PORT[,HOST:PORT…]` for any
//! Kafka-protocol cluster (its bootstrap servers) or `rocketmq://HOST:PORT[;HOST:PORT…]` for any
//! RocketMQ cluster (its nameservers). A missing port is the protocol's well-known one.

use std::fmt;
use std::str::FromStr;

/// Kafka's well-known broker port.
pub const KAFKA_PORT_DEFAULT: u16 = 9092;
/// RocketMQ's well-known nameserver port.
pub const ROCKETMQ_PORT_DEFAULT: u16 = 9876;

/// Where the load goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Target {
    /// A Kafka-protocol cluster, reached through these bootstrap servers (`host:port`).
    Kafka {
        /// Bootstrap servers.
        bootstrap: Vec<String>,
    },
    /// A RocketMQ cluster, reached through these nameservers (`host:port`).
    RocketMq {
        /// Nameservers.
        namesrv: Vec<String>,
    },
}

/// A target URL that cannot be used, with the URL in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No `scheme://`.
    #[error("target `{url}` has no scheme: write kafka://HOST:PORT or rocketmq://NAMESRV:PORT")]
    MissingScheme {
        /// The URL as given.
        url: String,
    },
    /// A scheme other than kafka or rocketmq.
    #[error("target `{url}`: unknown scheme `{scheme}` (expected kafka:// or rocketmq://)")]
    UnknownScheme {
        /// The URL as given.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// Nothing after the scheme.
    #[error("target `{url}` names no host: write {scheme}://HOST:PORT")]
    MissingHost {
        /// The URL as given.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// A port that is not a number in 1..=65535.
    #[error("target `{url}`: `{port}` is not a port (1-65535)")]
    BadPort {
        /// The URL as given.
        url: String,
        /// The text where a port should be.
        port: String,
    },
    /// A path, query or user part: the target is only hosts and ports.
    #[error("target `{url}`: `{rest}` is not a host:port (no paths, queries or credentials)")]
    BadHost {
        /// The URL as given.
        url: String,
        /// The offending part.
        rest: String,
    },
}

impl Target {
    /// The model's name as reports show it (`kafka`, `rocketmq`).
    pub fn model(&self) -> &'static str {
        match self {
            Self::Kafka { .. } => "kafka",
            Self::RocketMq { .. } => "rocketmq",
        }
    }

    /// Its endpoints (`host:port`).
    pub fn endpoints(&self) -> &[String] {
        match self {
            Self::Kafka { bootstrap } => bootstrap,
            Self::RocketMq { namesrv } => namesrv,
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let trimmed = url.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(TargetError::MissingScheme { url: url.to_owned() });
        };
        let scheme_lower = scheme.to_ascii_lowercase();
        let port_default = match scheme_lower.as_str() {
            "kafka" => KAFKA_PORT_DEFAULT,
            "rocketmq" => ROCKETMQ_PORT_DEFAULT,
            _ => {
                return Err(TargetError::UnknownScheme {
                    url: url.to_owned(),
                    scheme: scheme.to_owned(),
                });
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let endpoints = rest
            .split([',', ';'])
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| endpoint(url, part, port_default))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(TargetError::MissingHost { url: url.to_owned(), scheme: scheme_lower });
        }
        Ok(match scheme_lower.as_str() {
            "kafka" => Self::Kafka { bootstrap: endpoints },
            _ => Self::RocketMq { namesrv: endpoints },
        })
    }
}

/// One `host[:port]`, checked, with the default port filled in.
fn endpoint(url: &str, part: &str, port_default: u16) -> Result<String, TargetError> {
    if part.contains(['/', '?', '#', '@']) {
        return Err(TargetError::BadHost { url: url.to_owned(), rest: part.to_owned() });
    }
    let bad_host = || TargetError::BadHost { url: url.to_owned(), rest: part.to_owned() };
    // An IPv6 literal keeps its brackets: `[::1]:9092`.
    let (host, port) = match part.strip_prefix('[') {
        Some(bracketed) => {
            let (_, tail) = bracketed.split_once(']').ok_or_else(bad_host)?;
            let host = part.get(..part.len() - tail.len()).ok_or_else(bad_host)?;
            match tail {
                "" => (host, None),
                _ => (host, Some(tail.strip_prefix(':').ok_or_else(bad_host)?)),
            }
        }
        None => match part.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (part, None),
        },
    };
    if host.is_empty() {
        return Err(bad_host());
    }
    let port = match port {
        None => port_default,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(TargetError::BadPort { url: url.to_owned(), port: text.to_owned() }),
        },
    };
    Ok(format!("{host}:{port}"))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kafka { bootstrap } => write!(f, "kafka://{}", bootstrap.join(",")),
            Self::RocketMq { namesrv } => write!(f, "rocketmq://{}", namesrv.join(";")),
        }
    }
}

impl From<Target> for String {
    fn from(target: Target) -> Self {
        target.to_string()
    }
}

impl TryFrom<String> for Target {
    type Error = TargetError;

    fn try_from(url: String) -> Result<Self, Self::Error> {
        url.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_with_lists_and_default_ports() {
        assert_eq!(
            "kafka://127.0.0.1:9092".parse::<Target>(),
            Ok(Target::Kafka { bootstrap: vec!["127.0.0.1:9092".into()] })
        );
        assert_eq!(
            "KAFKA://a:1,b".parse::<Target>(),
            Ok(Target::Kafka { bootstrap: vec!["a:1".into(), "b:9092".into()] })
        );
        assert_eq!(
            "rocketmq://ns1:9876;ns2/".parse::<Target>(),
            Ok(Target::RocketMq { namesrv: vec!["ns1:9876".into(), "ns2:9876".into()] })
        );
        assert_eq!(
            "kafka://[::1]:19092".parse::<Target>(),
            Ok(Target::Kafka { bootstrap: vec!["[::1]:19092".into()] })
        );
        let round_trip: Target = "rocketmq://a:1;b:2".parse().unwrap();
        assert_eq!(round_trip.to_string().parse::<Target>(), Ok(round_trip));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let cases = [
            ("localhost:9092", "has no scheme"),
            ("http://localhost:80", "unknown scheme `http`"),
            ("kafka://", "names no host"),
            ("kafka://host:notaport", "`notaport` is not a port"),
            ("kafka://host:0", "`0` is not a port"),
            ("kafka://host:70000", "`70000` is not a port"),
            ("rocketmq://user@host:9876", "no paths, queries or credentials"),
            ("kafka://host:9092/topic", "no paths"),
            ("kafka://::1", "is not a host:port"),
        ];
        for (url, expected) in cases {
            let error = url.parse::<Target>().expect_err(url).to_string();
            assert!(error.contains(expected), "{url}: {error}");
            assert!(error.contains(url.trim_end_matches('/')), "{url} not named in: {error}");
        }
    }
}
