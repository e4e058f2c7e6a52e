//! An Ethernet address as the kernel holds it. Unlike the file format's
//! `spec::Mac` (a unicast address a user may write), any six bytes: the
//! all-zero MAC of a VXLAN flood entry is one too.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A locally administered unicast address from the first bytes of a hash.
    pub fn local_from_hash(hash: &[u8]) -> Mac {
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(&hash[..6]);
        bytes[0] = (bytes[0] & 0xfc) | 0x02;
        Mac(bytes)
    }
}

impl From<crate::spec::Mac> for Mac {
    fn from(mac: crate::spec::Mac) -> Mac {
        Mac(mac.0)
    }
}

/// Written as the file writes one.
impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::spec::Mac(self.0), f)
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        crate::spec::parse_mac_bytes(text).map(Mac)
    }
}

/// As text (`02:00:00:00:01:0a`): the state record and journal keep it so.
impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs_are_local_unicast() {
        assert!(Mac::local_from_hash(&[0xff; 6]).0[0] == 0xfe);
    }

    #[test]
    fn any_six_bytes_round_trip_as_text() {
        for text in [
            "02:00:00:00:01:0a",
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
        ] {
            let mac: Mac = text.parse().unwrap();
            assert_eq!(mac.to_string(), text);
            let json = serde_json::to_string(&mac).unwrap();
            assert_eq!(serde_json::from_str::<Mac>(&json).unwrap(), mac);
        }
        assert!("02:00:00:00:01".parse::<Mac>().is_err());
        assert!("02:00:00:00:01:01:01".parse::<Mac>().is_err());
        assert!("0g:00:00:00:01:01".parse::<Mac>().is_err());
    }
}
