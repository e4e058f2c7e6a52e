//! The scalar types of the file format and their parsers. Each parser's
//! error is a complete sentence that says what is wrong; validation adds the
//! location and, where there is one, the fix.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Serialize;

/// An interface address with its prefix length, e.g. `10.0.0.2/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfaceAddr(pub IpNet);

impl FromStr for IfaceAddr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if !text.contains('/') {
            return Err(format!(
                "`{text}` has no prefix length (an interface address is written like 10.0.0.2/24)"
            ));
        }
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not an address with a prefix length"))?;
        if net.addr().is_unspecified() || net.addr().is_multicast() {
            return Err(format!("`{text}` cannot be an interface address"));
        }
        Ok(IfaceAddr(net))
    }
}

/// A plain IP address, e.g. a route's `via`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ip(pub IpAddr);

impl FromStr for Ip {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        text.parse()
            .map(Ip)
            .map_err(|_| format!("`{text}` is not an IP address"))
    }
}

/// A network (no host bits), e.g. a `pod_cidr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network(pub IpNet);

impl FromStr for Network {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let net: IpNet = text
            .parse()
            .map_err(|_| format!("`{text}` is not a network in CIDR notation"))?;
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set; the network is {}",
                net.trunc()
            ));
        }
        Ok(Network(net))
    }
}

/// A route destination: a network, or `default` (whose family is the
/// family of the route's `via`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteDest {
    Default,
    Net(IpNet),
}

impl FromStr for RouteDest {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "default" {
            return Ok(RouteDest::Default);
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(RouteDest::Net(IpNet::new(addr, len).expect("full length")));
        }
        match text.parse::<Network>() {
            Ok(Network(net)) => Ok(RouteDest::Net(net)),
            Err(host_bits) if text.parse::<IpNet>().is_ok() => Err(host_bits),
            Err(_) => Err(format!(
                "`{text}` is neither `default` nor a network in CIDR notation"
            )),
        }
    }
}

/// A unicast Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Six colon-separated hex bytes (`02:00:00:00:00:01`), any value: the
/// syntax shared by the file's MACs and the kernel's.
pub fn parse_mac_bytes(text: &str) -> Result<[u8; 6], String> {
    let malformed = || format!("`{text}` is not a MAC address like 02:00:00:00:00:01");
    let mut bytes = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut bytes {
        let part = parts
            .next()
            .filter(|p| p.len() == 2)
            .ok_or_else(malformed)?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| malformed())?;
    }
    match parts.next() {
        Some(_) => Err(malformed()),
        None => Ok(bytes),
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bytes = parse_mac_bytes(text)?;
        if bytes[0] & 1 == 1 {
            return Err(format!(
                "`{text}` is a multicast address, not a unicast one"
            ));
        }
        if bytes == [0; 6] {
            return Err(format!("`{text}` is the all-zero address"));
        }
        Ok(Mac(bytes))
    }
}

/// A rate in bits per second, written as tc writes it: `100mbit`, `1gbit`,
/// `500kbit`, `8000bit`, or in bytes per second: `10mbps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rate {
    pub bits_per_second: u64,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        const UNITS: [(&str, u64); 9] = [
            ("tbit", 1_000_000_000_000),
            ("gbit", 1_000_000_000),
            ("mbit", 1_000_000),
            ("kbit", 1_000),
            ("bit", 1),
            ("gbps", 8_000_000_000),
            ("mbps", 8_000_000),
            ("kbps", 8_000),
            ("bps", 8),
        ];
        let malformed = || {
            format!(
                "`{text}` is not a rate; write a whole number and a unit, like 100mbit, 1gbit or 500kbit"
            )
        };
        let lower = text.to_ascii_lowercase();
        let (digits, factor) = UNITS
            .iter()
            .find_map(|(unit, factor)| lower.strip_suffix(unit).map(|d| (d, *factor)))
            .ok_or_else(malformed)?;
        let number: u64 = digits.parse().map_err(|_| malformed())?;
        let bits_per_second = number.checked_mul(factor).ok_or_else(malformed)?;
        if bits_per_second < 8 {
            return Err(format!("`{text}` is too slow to shape a link"));
        }
        // The kernel shapes in bytes per second.
        if bits_per_second % 8 != 0 {
            return Err(format!(
                "`{text}` is not a whole number of bytes per second (the kernel counts bytes); use a multiple of 8 bit"
            ));
        }
        Ok(Rate { bits_per_second })
    }
}

/// One end of a link: `OWNER:ifname`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub owner: String,
    pub ifname: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.owner, self.ifname)
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((owner, ifname)) if !owner.is_empty() && !ifname.is_empty() => Ok(Endpoint {
                owner: owner.to_string(),
                ifname: ifname.to_string(),
            }),
            _ => Err(format!(
                "`{text}` is not an endpoint; write OWNER:ifname, e.g. web:eth0"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_addresses_need_a_prefix() {
        assert!("10.0.0.2/24".parse::<IfaceAddr>().is_ok());
        assert!("fd00::1/64".parse::<IfaceAddr>().is_ok());
        assert!(
            "10.0.0.2"
                .parse::<IfaceAddr>()
                .unwrap_err()
                .contains("no prefix")
        );
        assert!("10.0.0.300/24".parse::<IfaceAddr>().is_err());
        assert!("0.0.0.0/0".parse::<IfaceAddr>().is_err());
    }

    #[test]
    fn route_destinations() {
        assert_eq!("default".parse::<RouteDest>(), Ok(RouteDest::Default));
        assert_eq!(
            "10.96.0.0/12".parse::<RouteDest>(),
            Ok(RouteDest::Net("10.96.0.0/12".parse().unwrap()))
        );
        assert_eq!(
            "10.0.0.7".parse::<RouteDest>(),
            Ok(RouteDest::Net("10.0.0.7/32".parse().unwrap()))
        );
        let err = "10.0.0.1/8".parse::<RouteDest>().unwrap_err();
        assert!(
            err.contains("host bits") && err.contains("10.0.0.0/8"),
            "{err}"
        );
        assert!("nowhere".parse::<RouteDest>().is_err());
    }

    #[test]
    fn macs_must_be_unicast() {
        assert_eq!(
            "02:00:00:00:01:0a".parse::<Mac>().unwrap().to_string(),
            "02:00:00:00:01:0a"
        );
        assert!(
            "01:00:5e:00:00:01"
                .parse::<Mac>()
                .unwrap_err()
                .contains("multicast")
        );
        assert!(
            "00:00:00:00:00:00"
                .parse::<Mac>()
                .unwrap_err()
                .contains("all-zero")
        );
        assert!("02:00:00:00:01".parse::<Mac>().is_err());
        assert!("02:00:00:00:01:01:01".parse::<Mac>().is_err());
        assert!("0g:00:00:00:01:01".parse::<Mac>().is_err());
    }

    #[test]
    fn rates_in_tc_units() {
        assert_eq!(
            "100mbit".parse::<Rate>().unwrap().bits_per_second,
            100_000_000
        );
        assert_eq!(
            "1GBit".parse::<Rate>().unwrap().bits_per_second,
            1_000_000_000
        );
        assert_eq!(
            "10mbps".parse::<Rate>().unwrap().bits_per_second,
            80_000_000
        );
        assert!("fast".parse::<Rate>().is_err());
        assert!(
            "1000001bit"
                .parse::<Rate>()
                .unwrap_err()
                .contains("bytes per second")
        );
        assert!("1.5mbit".parse::<Rate>().is_err());
        assert!("99999999999999999tbit".parse::<Rate>().is_err());
    }

    #[test]
    fn endpoints() {
        let end: Endpoint = "web:eth0".parse().unwrap();
        assert_eq!((end.owner.as_str(), end.ifname.as_str()), ("web", "eth0"));
        assert!("web".parse::<Endpoint>().is_err());
        assert!(":eth0".parse::<Endpoint>().is_err());
        assert!("web:".parse::<Endpoint>().is_err());
    }
}
