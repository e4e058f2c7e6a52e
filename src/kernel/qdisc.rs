//! Egress shaping with a token-bucket (tbf) root qdisc.
//!
//! netlink-packet-route 0.34 has no tbf type (it knows ingress, fq_codel and
//! some filters), so TCA_OPTIONS is built by hand from the kernel's
//! `struct tc_tbf_qopt` and sent as opaque attributes; dumps come back the
//! same way (`TcOption::Other` holding the whole nested TCA_OPTIONS).

use std::collections::HashMap;

use futures::TryStreamExt;
use netlink_packet_core::{
    DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, Nla, NlaBuffer, NlasIterator,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcHandle, TcMessage, TcOption},
};
use rtnetlink::Handle;

use super::{
    error::{Context, Result},
    netlink::request,
};

const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
/// `struct tc_ratespec.linklayer`: with a link layer set the kernel needs no
/// rate table (TCA_TBF_RTAB).
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// Kernel time unit of `tc_tbf_qopt.buffer`: 2^6 ns (PSCHED_SHIFT).
const PSCHED_SHIFT: u32 = 6;
/// The Ethernet header a veth frame carries on top of its MTU (ETH_HLEN):
/// tbf counts it in a packet's length.
const ETHERNET_HEADER: u32 = 14;
/// The least burst: 16 KiB.
const MIN_BURST: u64 = 16 * 1024;

/// A token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tbf {
    /// Bytes per second.
    pub rate: u64,
    /// Bucket size in bytes: how much may leave at line speed at once.
    pub burst: u32,
    /// Queue size in bytes; packets beyond it are dropped.
    pub limit: u32,
}

impl Tbf {
    /// A bucket for `bits_per_second` ("100mbit" = 100_000_000) on a link
    /// of MTU `mtu`, with the choices `tc` users typically make: a burst of
    /// 4 ms of traffic (at least 16 KiB) and a queue of 50 ms of traffic on
    /// top of it. The burst always holds a full-size frame: tbf drops every
    /// packet longer than its burst, so with a smaller one a large transfer
    /// stalls (the kernel only warns "burst is lower than device mtu").
    pub fn for_rate(bits_per_second: u64, mtu: u32) -> Self {
        let rate = bits_per_second / 8;
        let burst = (rate / 250)
            .max(MIN_BURST)
            .max(u64::from(Self::frame(mtu)))
            .min(u64::from(u32::MAX)) as u32;
        let limit = (u64::from(burst) + rate / 20).min(u64::from(u32::MAX)) as u32;
        Self { rate, burst, limit }
    }

    /// The longest frame a link of MTU `mtu` sends, as tbf measures it.
    fn frame(mtu: u32) -> u32 {
        mtu.saturating_add(ETHERNET_HEADER)
    }

    /// Whether every frame of a link of MTU `mtu` fits the burst.
    pub fn holds_frames_of(&self, mtu: u32) -> bool {
        self.burst >= Self::frame(mtu)
    }

    /// TCA_OPTIONS: TCA_TBF_PARMS (rate, limit; the kernel derives `buffer`
    /// from TCA_TBF_BURST), TCA_TBF_BURST, and TCA_TBF_RATE64 when the rate
    /// does not fit the 32-bit field.
    fn options(&self) -> Vec<TcOption> {
        let mut parms = Vec::with_capacity(36);
        // struct tc_ratespec rate: cell_log u8, linklayer u8, overhead u16,
        // cell_align i16, mpu u16, rate u32.
        parms.extend_from_slice(&[0, TC_LINKLAYER_ETHERNET, 0, 0, 0, 0, 0, 0]);
        parms.extend_from_slice(&u32::try_from(self.rate).unwrap_or(u32::MAX).to_ne_bytes());
        // struct tc_ratespec peakrate: unused.
        parms.extend_from_slice(&[0; 12]);
        // limit, buffer (derived from TCA_TBF_BURST), mtu (peakrate only).
        for field in [self.limit, 0, 0] {
            parms.extend_from_slice(&field.to_ne_bytes());
        }
        let mut options = vec![
            TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, parms)),
            TcOption::Other(DefaultNla::new(
                TCA_TBF_BURST,
                self.burst.to_ne_bytes().to_vec(),
            )),
        ];
        if self.rate > u64::from(u32::MAX) {
            options.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                self.rate.to_ne_bytes().to_vec(),
            )));
        }
        options
    }

    /// Reads the bucket back from a dumped TCA_OPTIONS payload (the nested
    /// attributes).
    fn decode(nested: &[u8]) -> Option<Self> {
        let mut rate = None;
        let mut rate64 = None;
        let mut limit_and_buffer = None;
        for nla in NlasIterator::new(nested) {
            let nla: NlaBuffer<&[u8]> = nla.ok()?;
            let value = nla.value();
            match nla.kind() {
                TCA_TBF_PARMS if value.len() >= 36 => {
                    rate = Some(u64::from(u32_at(value, 8)?));
                    limit_and_buffer = Some((u32_at(value, 24)?, u32_at(value, 28)?));
                }
                TCA_TBF_RATE64 => rate64 = Some(u64::from_ne_bytes(value.try_into().ok()?)),
                _ => {}
            }
        }
        let rate = rate64.or(rate)?;
        let (limit, buffer_ticks) = limit_and_buffer?;
        // buffer is the time to send `burst` bytes at `rate`.
        let buffer_ns = u128::from(buffer_ticks) << PSCHED_SHIFT;
        let burst = (u128::from(rate) * buffer_ns / 1_000_000_000) as u32;
        Some(Self { rate, burst, limit })
    }
}

/// As `tc` words it: `rate 10000000bit burst 16384b limit 78884b`.
impl std::fmt::Display for Tbf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rate, burst, limit) = (self.rate * 8, self.burst, self.limit);
        write!(f, "rate {rate}bit burst {burst}b limit {limit}b")
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bytes.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

/// Sets `tbf` as the root qdisc of link `index`, like `tc qdisc replace dev
/// DEV root tbf rate R burst B limit L`: created if absent, changed in place
/// if already tbf.
pub async fn set_tbf(handle: &Handle, index: u32, tbf: &Tbf) -> Result<()> {
    let mut message = TcMessage::with_index(index as i32);
    message.header.parent = TcHandle::ROOT;
    message.attributes.push(TcAttribute::Kind("tbf".into()));
    message.attributes.push(TcAttribute::Options(tbf.options()));
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    request(
        handle,
        RouteNetlinkMessage::NewQueueDiscipline(message),
        flags,
    )
    .await
    .map(drop)
    .op(|| format!("set tbf {tbf} on ifindex {index}"))
}

/// Removes the root qdisc of link `index` (back to the default one).
pub async fn delete_root_qdisc(handle: &Handle, index: u32) -> Result<()> {
    let mut delete = handle.qdisc().del(index as i32);
    delete.message_mut().header.parent = TcHandle::ROOT;
    delete
        .execute()
        .await
        .op(|| format!("delete root qdisc of ifindex {index}"))
}

/// The rate of every link's tbf root qdisc in the handle's namespace, by
/// ifindex.
pub async fn dump_tbfs(handle: &Handle) -> Result<HashMap<u32, Tbf>> {
    let qdiscs: Vec<TcMessage> = handle
        .qdisc()
        .get()
        .execute()
        .try_collect()
        .await
        .op(|| "dump qdiscs".to_string())?;
    Ok(qdiscs
        .iter()
        .filter(|q| {
            q.header.parent == TcHandle::ROOT
                && q.attributes.contains(&TcAttribute::Kind("tbf".into()))
        })
        .filter_map(|q| {
            let tbf = q.attributes.iter().find_map(|attribute| match attribute {
                TcAttribute::Options(options) => options.iter().find_map(|option| match option {
                    TcOption::Other(nested) => {
                        let mut payload = vec![0; nested.value_len()];
                        nested.emit_value(&mut payload);
                        Tbf::decode(&payload)
                    }
                    _ => None,
                }),
                _ => None,
            })?;
            Some((u32::try_from(q.header.index).ok()?, tbf))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::Tbf;

    #[test]
    fn the_burst_is_4_ms_of_traffic_and_at_least_16_kib() {
        assert_eq!(Tbf::for_rate(100_000_000, 1500).burst, 50_000);
        assert_eq!(Tbf::for_rate(10_000_000, 1500).burst, 16 * 1024);
        assert_eq!(Tbf::for_rate(10_000_000, 1500).limit, 16 * 1024 + 62_500);
    }

    #[test]
    fn the_burst_holds_a_full_size_frame() {
        for mtu in [1500, 9000, 16_371, 30_000, 65_535] {
            let tbf = Tbf::for_rate(10_000_000, mtu);
            assert!(tbf.holds_frames_of(mtu), "{mtu}: {tbf:?}");
        }
        let tbf = Tbf::for_rate(10_000_000, 30_000);
        assert_eq!(tbf.burst, 30_014);
        assert!(!Tbf::for_rate(10_000_000, 1500).holds_frames_of(30_000));
    }
}
