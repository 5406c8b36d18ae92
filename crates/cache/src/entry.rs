//! What both cache levels store: the value with the versions its tags had when it was
//! stored, and the hit and miss counts per keyspace.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A cached value and the tag versions it was computed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tagged {
    pub versions: Vec<(String, u64)>,
    pub value: Vec<u8>,
}

impl Tagged {
    /// Compact binary form: tag count, then each tag (length, bytes, version), then the value.
    pub fn encode(&self) -> Vec<u8> {
        let tags_len: usize = self.versions.iter().map(|(t, _)| 12 + t.len()).sum();
        let mut out = Vec::with_capacity(4 + tags_len + self.value.len());
        out.extend_from_slice(&(self.versions.len() as u32).to_le_bytes());
        for (tag, version) in &self.versions {
            out.extend_from_slice(&(tag.len() as u32).to_le_bytes());
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(&version.to_le_bytes());
        }
        out.extend_from_slice(&self.value);
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
        let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
        let mut versions = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            let tag = String::from_utf8(take(len)?.to_vec()).ok()?;
            let version = u64::from_le_bytes(take(8)?.try_into().ok()?);
            versions.push((tag, version));
        }
        Some(Self {
            versions,
            value: rest.to_vec(),
        })
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
}
