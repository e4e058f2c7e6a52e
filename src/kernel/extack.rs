//! The kernel's extended ack: what it says along with an errno when a
//! socket asks for it (NETLINK_EXT_ACK, see `netlink::connect_here`) — its
//! own sentence ("mtu greater than device maximum"), and the attribute of
//! the request it refused, which is named and shown here.
//!
//! netlink-packet-core 0.9 keeps an NLMSG_ERROR's payload after the errno
//! as raw bytes (`ErrorMessage::header`): the request (whole, since
//! netloom's sockets never set NETLINK_CAP_ACK; just its header when
//! capped), then the NLMSGERR_ATTR_* attributes.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NlaBuffer, NlasIterator};

const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;
const NLMSGERR_ATTR_MISS_NEST: u16 = 6;
/// struct nlmsghdr.
const HEADER_LEN: usize = 16;
/// An attribute's type without NLA_F_NESTED and NLA_F_NET_BYTEORDER.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// What the kernel added to an errno.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtAck {
    /// The kernel's own words.
    pub message: Option<String>,
    /// The attribute of the request the kernel pointed at.
    pub attribute: Option<RejectedAttribute>,
    /// An attribute the kernel needed and did not get, by name.
    pub missing: Option<String>,
}

/// An attribute of a request, as a message shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedAttribute {
    /// Its name, with the nests it is in: `IFLA_LINKINFO > IFLA_INFO_KIND`.
    pub name: String,
    /// Its value as text: a number, an address, a quoted name.
    pub value: String,
}

impl ExtAck {
    /// Reads the payload of an NLMSG_ERROR after its errno; `None` when the
    /// kernel added nothing.
    pub fn parse(payload: &[u8]) -> Option<ExtAck> {
        let request_len = u32_at(payload, 0)? as usize;
        // Whole request echoed: the attributes follow it (4-byte aligned).
        // Capped: only its header is there.
        let (request, attributes_at) = if request_len >= HEADER_LEN && payload.len() >= request_len
        {
            (&payload[..request_len], align(request_len))
        } else {
            (payload.get(..HEADER_LEN)?, HEADER_LEN)
        };
        let message_type = u16_at(request, 4)?;
        let mut ack = ExtAck::default();
        let mut missing_type = None;
        let mut missing_in_nest = false;
        for nla in NlasIterator::new(payload.get(attributes_at..)?) {
            let Ok(nla): Result<NlaBuffer<&[u8]>, _> = nla else {
                break;
            };
            let value = nla.value();
            match nla.kind() {
                NLMSGERR_ATTR_MSG => {
                    let text = String::from_utf8_lossy(value);
                    let text = text.trim_end_matches('\0').trim();
                    ack.message = (!text.is_empty()).then(|| text.to_string());
                }
                NLMSGERR_ATTR_OFFS => {
                    ack.attribute = u32_at(value, 0)
                        .and_then(|offset| rejected(request, message_type, offset as usize));
                }
                NLMSGERR_ATTR_MISS_TYPE => missing_type = u32_at(value, 0),
                NLMSGERR_ATTR_MISS_NEST => missing_in_nest = true,
                _ => {}
            }
        }
        ack.missing = missing_type.map(|kind| match u16::try_from(kind) {
            Ok(kind) if !missing_in_nest => attribute_name(message_type, &[kind]),
            _ => format!("attribute {kind}"),
        });
        (ack != ExtAck::default()).then_some(ack)
    }
}

/// The attribute that starts at byte `offset` of the request, nested
/// attributes included.
fn rejected(request: &[u8], message_type: u16, offset: usize) -> Option<RejectedAttribute> {
    let body = HEADER_LEN + align(fixed_header_len(message_type)?);
    let mut path = Vec::new();
    let (mut at, mut end) = (body, request.len());
    while at + 4 <= end {
        let len = usize::from(u16_at(request, at)?);
        let kind = u16_at(request, at + 2)? & NLA_TYPE_MASK;
        if len < 4 || at + len > end {
            return None;
        }
        if at == offset {
            path.push(kind);
            let name = attribute_name(message_type, &path);
            let value = shown(&name, &request[at + 4..at + len]);
            return Some(RejectedAttribute { name, value });
        }
        if offset > at && offset < at + len {
            // Inside this one: a nest.
            path.push(kind);
            end = at + len;
            at += 4;
        } else {
            at += align(len);
        }
    }
    None
}

/// The fixed header after the nlmsghdr of the messages netloom sends.
fn fixed_header_len(message_type: u16) -> Option<usize> {
    Some(match message_type {
        // RTM_{NEW,DEL,GET,SET}LINK: struct ifinfomsg.
        16..=19 => 16,
        // RTM_*ADDR: struct ifaddrmsg.
        20..=23 => 8,
        // RTM_*ROUTE: struct rtmsg; RTM_*NEIGH: struct ndmsg.
        24..=31 => 12,
        // RTM_*QDISC: struct tcmsg.
        36..=39 => 20,
        // RTM_*NSID: struct rtgenmsg.
        88..=90 => 1,
        _ => return None,
    })
}

/// `IFLA_MTU`, or `IFLA_LINKINFO > IFLA_INFO_KIND` for a nested one.
fn attribute_name(message_type: u16, path: &[u16]) -> String {
    let mut names = Vec::with_capacity(path.len());
    for (depth, &kind) in path.iter().enumerate() {
        let known = match (message_type, &path[..depth]) {
            (16..=19, []) => LINK.get(usize::from(kind)).copied(),
            (16..=19, [18]) => LINK_INFO.get(usize::from(kind)).copied(),
            (20..=23, []) => ADDRESS.get(usize::from(kind)).copied(),
            (24..=27, []) => ROUTE.get(usize::from(kind)).copied(),
            (28..=31, []) => NEIGHBOUR.get(usize::from(kind)).copied(),
            (36..=39, []) => QDISC.get(usize::from(kind)).copied(),
            (36..=39, [2]) => TBF.get(usize::from(kind)).copied(),
            (88..=90, []) => NSID.get(usize::from(kind)).copied(),
            _ => None,
        };
        names.push(match known.filter(|name| !name.is_empty()) {
            Some(name) => name.to_string(),
            None => format!("attribute {kind}"),
        });
    }
    names.join(" > ")
}

// Attribute names by number, from the kernel's uapi headers ("" = unused
// here or unassigned).
const LINK: &[&str] = &[
    "",
    "IFLA_ADDRESS",
    "IFLA_BROADCAST",
    "IFLA_IFNAME",
    "IFLA_MTU",
    "IFLA_LINK",
    "IFLA_QDISC",
    "IFLA_STATS",
    "",
    "",
    "IFLA_MASTER",
    "",
    "",
    "IFLA_TXQLEN",
    "",
    "",
    "IFLA_OPERSTATE",
    "IFLA_LINKMODE",
    "IFLA_LINKINFO",
    "IFLA_NET_NS_PID",
    "IFLA_IFALIAS",
    "",
    "",
    "",
    "",
    "",
    "IFLA_AF_SPEC",
    "IFLA_GROUP",
    "IFLA_NET_NS_FD",
];
const LINK_INFO: &[&str] = &[
    "",
    "IFLA_INFO_KIND",
    "IFLA_INFO_DATA",
    "IFLA_INFO_XSTATS",
    "IFLA_INFO_SLAVE_KIND",
    "IFLA_INFO_SLAVE_DATA",
];
const ADDRESS: &[&str] = &[
    "",
    "IFA_ADDRESS",
    "IFA_LOCAL",
    "IFA_LABEL",
    "IFA_BROADCAST",
    "IFA_ANYCAST",
    "IFA_CACHEINFO",
    "IFA_MULTICAST",
    "IFA_FLAGS",
    "IFA_RT_PRIORITY",
];
const ROUTE: &[&str] = &[
    "",
    "RTA_DST",
    "RTA_SRC",
    "RTA_IIF",
    "RTA_OIF",
    "RTA_GATEWAY",
    "RTA_PRIORITY",
    "RTA_PREFSRC",
    "RTA_METRICS",
    "RTA_MULTIPATH",
    "",
    "RTA_FLOW",
    "RTA_CACHEINFO",
    "",
    "",
    "RTA_TABLE",
];
const NEIGHBOUR: &[&str] = &[
    "",
    "NDA_DST",
    "NDA_LLADDR",
    "NDA_CACHEINFO",
    "NDA_PROBES",
    "NDA_VLAN",
    "NDA_PORT",
    "NDA_VNI",
    "NDA_IFINDEX",
    "NDA_MASTER",
];
const QDISC: &[&str] = &["", "TCA_KIND", "TCA_OPTIONS"];
const TBF: &[&str] = &[
    "",
    "TCA_TBF_PARMS",
    "TCA_TBF_RTAB",
    "TCA_TBF_PTAB",
    "TCA_TBF_RATE64",
    "TCA_TBF_PRATE64",
    "TCA_TBF_BURST",
    "TCA_TBF_PBURST",
];
const NSID: &[&str] = &["", "NETNSA_NSID", "NETNSA_PID", "NETNSA_FD"];

/// An attribute's value as text, by what its name says it holds.
fn shown(name: &str, value: &[u8]) -> String {
    let leaf = name.rsplit(" > ").next().unwrap_or(name);
    match leaf {
        "IFLA_IFNAME" | "IFLA_IFALIAS" | "IFLA_QDISC" | "IFLA_INFO_KIND" | "IFA_LABEL"
        | "TCA_KIND" => {
            let text = String::from_utf8_lossy(value);
            return format!("{:?}", text.trim_end_matches('\0'));
        }
        "IFA_ADDRESS" | "IFA_LOCAL" | "IFA_BROADCAST" | "RTA_DST" | "RTA_SRC" | "RTA_GATEWAY"
        | "RTA_PREFSRC" | "NDA_DST" => {
            if let Some(ip) = ip(value) {
                return ip.to_string();
            }
        }
        "IFLA_ADDRESS" | "IFLA_BROADCAST" | "NDA_LLADDR" if value.len() == 6 => {
            let hex: Vec<String> = value.iter().map(|b| format!("{b:02x}")).collect();
            return hex.join(":");
        }
        _ => {}
    }
    match value.len() {
        0 => "(empty)".to_string(),
        1 => value[0].to_string(),
        2 => u16_at(value, 0).map_or_else(String::new, |v| v.to_string()),
        4 => u32_at(value, 0).map_or_else(String::new, |v| v.to_string()),
        8 => u64::from_ne_bytes(value.try_into().expect("8 bytes")).to_string(),
        len if len <= 16 => value.iter().fold("0x".to_string(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        }),
        len => format!("({len} bytes)"),
    }
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(bytes).ok()?,
        ))),
        _ => None,
    }
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An attribute: length, type, value, padding.
    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(align(out.len()), 0);
        out
    }

    /// What the kernel sends after the errno for a request of
    /// `message_type` with a fixed header of `fixed` bytes and `attributes`,
    /// followed by `ack` (NLMSGERR_ATTR_*).
    pub(in crate::kernel) fn payload(
        message_type: u16,
        fixed: usize,
        attributes: &[Vec<u8>],
        ack: &[Vec<u8>],
    ) -> Vec<u8> {
        let body: Vec<u8> = attributes.concat();
        let len = HEADER_LEN + align(fixed) + body.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&message_type.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.resize(HEADER_LEN + align(fixed), 0);
        out.extend_from_slice(&body);
        out.extend_from_slice(&ack.concat());
        out
    }

    pub(in crate::kernel) fn message(text: &str) -> Vec<u8> {
        nla(NLMSGERR_ATTR_MSG, format!("{text}\0").as_bytes())
    }

    pub(in crate::kernel) fn offset(at: usize) -> Vec<u8> {
        nla(NLMSGERR_ATTR_OFFS, &(at as u32).to_ne_bytes())
    }

    /// RTM_NEWLINK: ifname "eth0", mtu 70000 (at byte 44), linkinfo kind
    /// "veth" (at 52; the kind itself at 56).
    pub(in crate::kernel) fn link_request() -> Vec<Vec<u8>> {
        vec![
            nla(3, b"eth0\0"),
            nla(4, &70000u32.to_ne_bytes()),
            nla(18, &nla(1, b"veth\0")),
        ]
    }

    #[test]
    fn the_message_and_the_attribute_pointed_at() {
        let bytes = payload(
            16,
            16,
            &link_request(),
            &[message("mtu greater than device maximum"), offset(44)],
        );
        let ack = ExtAck::parse(&bytes).expect("an ack");
        assert_eq!(
            ack.message.as_deref(),
            Some("mtu greater than device maximum")
        );
        let attribute = ack.attribute.expect("an attribute");
        assert_eq!(
            (attribute.name.as_str(), attribute.value.as_str()),
            ("IFLA_MTU", "70000")
        );
    }

    #[test]
    fn a_nested_attribute_is_named_with_its_nests() {
        let bytes = payload(16, 16, &link_request(), &[offset(56)]);
        let attribute = ExtAck::parse(&bytes)
            .and_then(|a| a.attribute)
            .expect("one");
        assert_eq!(attribute.name, "IFLA_LINKINFO > IFLA_INFO_KIND");
        assert_eq!(attribute.value, "\"veth\"");
    }

    #[test]
    fn addresses_and_unknown_attributes_are_shown_readably() {
        // RTM_NEWROUTE: RTA_GATEWAY 10.0.0.255 at byte 28, then a made-up 99.
        let bytes = payload(
            24,
            12,
            &[nla(5, &[10, 0, 0, 255]), nla(99, &[1, 2, 3])],
            &[offset(28)],
        );
        let attribute = ExtAck::parse(&bytes)
            .and_then(|a| a.attribute)
            .expect("one");
        assert_eq!(
            (attribute.name.as_str(), attribute.value.as_str()),
            ("RTA_GATEWAY", "10.0.0.255")
        );
        let bytes = payload(
            24,
            12,
            &[nla(5, &[10, 0, 0, 255]), nla(99, &[1, 2, 3])],
            &[offset(36)],
        );
        let attribute = ExtAck::parse(&bytes)
            .and_then(|a| a.attribute)
            .expect("one");
        assert_eq!(
            (attribute.name.as_str(), attribute.value.as_str()),
            ("attribute 99", "0x010203")
        );
    }

    #[test]
    fn nothing_added_is_no_ack() {
        assert_eq!(ExtAck::parse(&payload(16, 16, &link_request(), &[])), None);
        assert_eq!(ExtAck::parse(&[]), None);
        // An offset that is no attribute's start names nothing.
        let bytes = payload(16, 16, &link_request(), &[offset(41)]);
        assert_eq!(ExtAck::parse(&bytes), None);
    }
}
