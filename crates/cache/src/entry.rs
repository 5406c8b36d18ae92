//! What both cache levels store: the value with the versions its tags had when it was
//! stored, and the hit and miss counts per keyspace.

use std::collections::BTreeMap;
use std::sync::Mutex;

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

/// The first byte of every encoded entry, so bytes in an earlier layout decode to `None`
/// (an earlier layout began with a small tag count).
const FORMAT: u8 = 0xC1;
/// The value follows as it is.
const RAW: u8 = 0;
/// The value follows deflated.
const DEFLATED: u8 = 1;
/// Values longer than this are deflated, when that makes them smaller: a month of slots
/// or a dashboard, not a clinic's settings.
const DEFLATE_ABOVE: usize = 1024;
/// No cached value inflates beyond this; anything larger is treated as corrupt.
const MAX_VALUE: u64 = 16 << 20;

/// A cached value and the tag versions it was computed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tagged {
    pub versions: Vec<(String, u64)>,
    pub value: Vec<u8>,
}

fn deflate(value: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(value).ok()?;
    encoder.finish().ok()
}

fn inflate(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    DeflateDecoder::new(bytes)
        .take(MAX_VALUE + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_VALUE).then_some(out)
}

impl Tagged {
    /// Compact binary form: format, codec, tag count, then each tag (length, bytes,
    /// version), then the value, deflated when it is large and that pays.
    pub fn encode(&self) -> Vec<u8> {
        let deflated = (self.value.len() > DEFLATE_ABOVE)
            .then(|| deflate(&self.value))
            .flatten()
            .filter(|d| d.len() < self.value.len());
        let (codec, payload) = match &deflated {
            Some(d) => (DEFLATED, d.as_slice()),
            None => (RAW, self.value.as_slice()),
        };
        let tags_len: usize = self.versions.iter().map(|(t, _)| 12 + t.len()).sum();
        let mut out = Vec::with_capacity(6 + tags_len + payload.len());
        out.extend_from_slice(&[FORMAT, codec]);
        out.extend_from_slice(&(self.versions.len() as u32).to_le_bytes());
        for (tag, version) in &self.versions {
            out.extend_from_slice(&(tag.len() as u32).to_le_bytes());
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(&version.to_le_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    /// The form [`Tagged::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut rest = bytes;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
            rest = tail;
            Some(head)
        };
        let [format, codec] = take(2)? else {
            return None;
        };
        if *format != FORMAT {
            return None;
        }
        let codec = *codec;
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut versions = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            let tag = String::from_utf8(take(len)?.to_vec()).ok()?;
            let version = u64::from_le_bytes(take(8)?.try_into().ok()?);
            versions.push((tag, version));
        }
        let value = match codec {
            RAW => rest.to_vec(),
            DEFLATED => inflate(rest)?,
            _ => return None,
        };
        Some(Self { versions, value })
    }
}

/// Hits and misses of one keyspace (the part of a key before its first `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookups {
    /// The keyspace, such as `clinic` or `dashboard`.
    pub keyspace: String,
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found none.
    pub misses: u64,
}

/// Counts reads per keyspace.
#[derive(Debug, Default)]
pub(crate) struct LookupCounter(Mutex<BTreeMap<String, (u64, u64)>>);

impl LookupCounter {
    pub fn count(&self, key: &str, hit: bool) {
        // Keys are `keyspace:rest`; the keyspaces are a handful of fixed names, so the map stays small.
        let keyspace = key.split(':').next().unwrap_or(key);
        let mut lookups = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = match lookups.get_mut(keyspace) {
            Some(counts) => counts,
            None => lookups.entry(keyspace.to_owned()).or_default(),
        };
        if hit {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<Lookups> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(keyspace, (hits, misses))| Lookups {
                keyspace: keyspace.clone(),
                hits: *hits,
                misses: *misses,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let entry = Tagged {
            versions: vec![("clinic:1".into(), 7), ("patient:9".into(), 0)],
            value: b"{\"zone\":\"Europe/Berlin\"}".to_vec(),
        };
        assert_eq!(Tagged::decode(&entry.encode()), Some(entry));
        let untagged = Tagged {
            versions: Vec::new(),
            value: Vec::new(),
        };
        assert_eq!(Tagged::decode(&untagged.encode()), Some(untagged));
        assert_eq!(Tagged::decode(&[9, 0, 0, 0, 1]), None);
        assert_eq!(Tagged::decode(&[]), None);
    }

    #[test]
    fn large_values_are_stored_deflated_and_small_ones_as_they_are() {
        // A month of slots: 16 bytes each, mostly alike.
        let slots: Vec<u8> = (0..600u64)
            .flat_map(|i| {
                let start = 1_764_576_000_000_000 + i * 1_800_000_000;
                [start.to_le_bytes(), (start + 1_800_000_000).to_le_bytes()].concat()
            })
            .collect();
        let large = Tagged {
            versions: vec![("practitioner:1".into(), 3)],
            value: slots.clone(),
        };
        let encoded = large.encode();
        assert_eq!(encoded[1], DEFLATED);
        assert!(
            encoded.len() < slots.len() / 2,
            "{} bytes for {}",
            encoded.len(),
            slots.len()
        );
        assert_eq!(Tagged::decode(&encoded), Some(large));

        let small = Tagged {
            versions: Vec::new(),
            value: vec![7; DEFLATE_ABOVE],
        };
        assert_eq!(small.encode()[1], RAW);
        assert_eq!(Tagged::decode(&small.encode()), Some(small));
        // Random bytes do not shrink: kept raw although large.
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let noisy = Tagged {
            versions: Vec::new(),
            value: noise,
        };
        assert_eq!(Tagged::decode(&noisy.encode()), Some(noisy));
    }

    #[test]
    fn an_earlier_layout_or_a_broken_deflate_stream_is_a_miss() {
        // The layout before the format byte: tag count 1, tag "a", version 0, value "v".
        let earlier = [
            &1u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            b"a",
            &0u64.to_le_bytes(),
            b"v",
        ]
        .concat();
        assert_eq!(Tagged::decode(&earlier), None);
        assert_eq!(
            Tagged::decode(&[FORMAT, DEFLATED, 0, 0, 0, 0, 0xFF, 0x13]),
            None
        );
        assert_eq!(Tagged::decode(&[FORMAT, 9, 0, 0, 0, 0]), None);
    }
}
