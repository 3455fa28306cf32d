//! The compact records of types evicted from memory ([`Cold`]), bounded.
//!
//! Knowing a type is forever, so the number of cold records grows with
//! the number of distinct types ever seen, and a hash map of them grew
//! with it (about 60–100 bytes a type with the table's slack and its
//! growth copies): past ~2M types with a state, past 1 GiB. The set keeps
//! memory bounded instead, whatever the number of types:
//!
//! - Up to `baseline.max_cold_in_memory` records live in a hash map.
//! - When the map is full, all of it is written in one transaction to a
//!   temporary on-disk table (redb, in an unnamed file the OS deletes when
//!   faultline exits, however it exits) and the map is emptied, keeping its
//!   allocation for the next batch.
//! - A bit filter (`baseline.cold_filter_bytes`, a Bloom filter over the
//!   fingerprints, which are already uniform 64-bit hashes) sits in front of
//!   the table: a fingerprint it has never seen (every new type, the hot
//!   path of a storm) costs one probe of memory and no disk read.
//!
//! The policy beyond memory is therefore "to disk, never forgotten": a
//! type evicted an hour or a billion types ago is still known and is never
//! alerted as novel again while faultline runs. The filter's size is fixed,
//! so its false positives rise with the count (with the default 16 MiB:
//! about 1 in 2,700 lookups at 5M types, 1 in 8 at 30M); a false
//! positive costs one table lookup, never a wrong answer.
//!
//! With a state store (`--state`) evicted types go to the store's rows
//! instead (see [`super::Pager`]); this set then holds only types evicted
//! before a store was attached, and a set loaded from an old state file.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Cold, Origin};
use crate::fingerprint::{Fingerprint, PrehashedMap};

/// Revived spilled records are deleted from the table in batches of this
/// many (until then a small set says they are gone).
const GONE_BATCH: usize = 4096;

/// (first_seen, last_seen, count, flags): flags bit 0 = baseline origin,
/// bit 1 = novel alert done.
type Row = (i64, i64, u64, u8);
const COLD: TableDefinition<u64, Row> = TableDefinition::new("cold");

/// The cold records: a bounded map, spilling to a temporary table.
pub struct ColdSet {
    mem: PrehashedMap<Fingerprint, Cold>,
    spill: Option<Spill>,
    max_mem: usize,
    filter_bytes: usize,
    /// Records held, in memory and spilled.
    len: usize,
    /// Types whose only copy is a row of the state store (evicted through
    /// a [`super::Pager`]): a filter of them, so that a type never evicted
    /// asks the store nothing, and their count.
    stored: Option<Filter>,
    stored_len: usize,
}

/// The on-disk part: the table, its filter, and the spilled records
/// revived since the last write (deleted with the next one).
struct Spill {
    db: Database,
    filter: Filter,
    gone: PrehashedMap<Fingerprint, ()>,
}

impl Default for ColdSet {
    /// With the default limits (a set read from a file; the run's
    /// configuration then applies its own, [`ColdSet::set_limits`]).
    fn default() -> ColdSet {
        let d = crate::config::BaselineConfig::default();
        ColdSet::new(d.max_cold_in_memory, d.cold_filter_bytes)
    }
}

impl Clone for ColdSet {
    /// Reads every record (a baseline is cloned only offline: baseline
    /// files and re-derivation after a pattern change).
    fn clone(&self) -> ColdSet {
        let mut c = ColdSet::new(self.max_mem, self.filter_bytes);
        for (fp, cold) in self.iter() {
            c.insert(fp, cold);
        }
        c.stored = self.stored.clone();
        c.stored_len = self.stored_len;
        c
    }
}

impl std::fmt::Debug for ColdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdSet")
            .field("len", &self.len)
            .field("in_memory", &self.mem.len())
            .field("spilled", &self.spill.is_some())
            .finish()
    }
}

impl ColdSet {
    pub fn new(max_mem: usize, filter_bytes: usize) -> ColdSet {
        ColdSet {
            mem: PrehashedMap::default(),
            spill: None,
            max_mem: max_mem.max(1),
            filter_bytes: filter_bytes.max(8),
            len: 0,
            stored: None,
            stored_len: 0,
        }
    }

    /// `fp` was evicted to the state store: from now on only its row
    /// there keeps it (see [`ColdSet::may_be_stored`]).
    pub fn note_stored(&mut self, fp: Fingerprint) {
        let bytes = self.filter_bytes;
        self.stored
            .get_or_insert_with(|| Filter::new(bytes))
            .add(fp.0);
        self.stored_len += 1;
    }

    /// A type noted as stored came back into memory. (The filter keeps
    /// its bits: a later lookup of it costs one store lookup, no more.)
    pub fn unnote_stored(&mut self) {
        self.stored_len = self.stored_len.saturating_sub(1);
    }

    /// Whether `fp` may be a type that lives only in the state store:
    /// false means certainly not, true must be confirmed by the store.
    pub fn may_be_stored(&self, fp: Fingerprint) -> bool {
        self.stored.as_ref().is_some_and(|f| f.may_hold(fp.0))
    }

    /// Types that live only in the state store.
    pub fn stored_len(&self) -> usize {
        self.stored_len
    }

    /// Applies new limits (a set read from a file gets them from the
    /// configuration of the run that loads it).
    pub fn set_limits(&mut self, max_mem: usize, filter_bytes: usize) {
        self.max_mem = max_mem.max(1);
        if self.spill.is_none() && self.stored.is_none() {
            self.filter_bytes = filter_bytes.max(8);
        }
        if self.mem.len() >= self.max_mem {
            self.spill_all();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records in memory (the rest are spilled).
    pub fn in_memory(&self) -> usize {
        self.mem.len()
    }

    pub fn contains(&self, fp: Fingerprint) -> bool {
        self.get(fp).is_some()
    }

    pub fn get(&self, fp: Fingerprint) -> Option<Cold> {
        if let Some(c) = self.mem.get(&fp) {
            return Some(*c);
        }
        let s = self.spill.as_ref()?;
        if !s.filter.may_hold(fp.0) || s.gone.contains_key(&fp) {
            return None;
        }
        match s.read(fp) {
            Ok(c) => c,
            Err(e) => {
                // The temporary file failed under us (disk gone): say so;
                // the type is then treated as known-and-done rather than
                // new, the conservative answer for "never re-alert".
                tracing::warn!(type_id = %fp, "cold records on disk: {e}; the type is taken as known");
                Some(Cold {
                    first_seen: 0,
                    last_seen: 0,
                    count: 0,
                    origin: Origin::Live,
                    novel_done: true,
                })
            }
        }
    }

    /// Adds or replaces the record of `fp`; true when it was not held.
    pub fn insert(&mut self, fp: Fingerprint, cold: Cold) -> bool {
        let held = self.contains(fp);
        if let Some(s) = self.spill.as_mut() {
            s.gone.remove(&fp);
        }
        self.mem.insert(fp, cold);
        if !held {
            self.len += 1;
        }
        if self.mem.len() >= self.max_mem {
            self.spill_all();
        }
        !held
    }

    /// Takes the record of `fp` out of the set.
    pub fn remove(&mut self, fp: Fingerprint) -> Option<Cold> {
        if let Some(c) = self.mem.remove(&fp) {
            // A spilled copy of it (revived, evicted again, revived) is
            // stale: mark it gone too.
            if let Some(s) = self.spill.as_mut()
                && s.filter.may_hold(fp.0)
            {
                s.gone.insert(fp, ());
                s.flush_gone_if_full();
            }
            self.len -= 1;
            return Some(c);
        }
        let c = self.get(fp)?;
        if let Some(s) = self.spill.as_mut() {
            s.gone.insert(fp, ());
            s.flush_gone_if_full();
        }
        self.len -= 1;
        Some(c)
    }

    /// Every record (memory first, then the table in fingerprint order).
    pub fn iter(&self) -> impl Iterator<Item = (Fingerprint, Cold)> + '_ {
        let spilled: Vec<(Fingerprint, Cold)> = match &self.spill {
            Some(s) => s.all().unwrap_or_else(|e| {
                tracing::warn!("cold records on disk: {e}; they are not listed");
                Vec::new()
            }),
            None => Vec::new(),
        };
        let mem = &self.mem;
        let gone = self.spill.as_ref().map(|s| &s.gone);
        self.mem
            .iter()
            .map(|(fp, c)| (*fp, *c))
            .chain(spilled.into_iter().filter(move |(fp, _)| {
                !mem.contains_key(fp) && !gone.is_some_and(|g| g.contains_key(fp))
            }))
    }

    /// Writes the in-memory records to the table and empties the map.
    /// A failure (no temporary file, disk full) keeps them in memory:
    /// memory then grows past the bound rather than a type being lost.
    fn spill_all(&mut self) {
        if self.spill.is_none() {
            match Spill::open(self.filter_bytes) {
                Ok(s) => self.spill = Some(s),
                Err(e) => {
                    tracing::warn!(
                        "cold records stay in memory: no temporary table ({e}); set TMPDIR to a writable directory"
                    );
                    self.max_mem = self.max_mem.saturating_mul(2);
                    return;
                }
            }
        }
        let Some(s) = self.spill.as_mut() else {
            return;
        };
        match s.write(&self.mem) {
            Ok(()) => {
                for fp in self.mem.keys() {
                    s.filter.add(fp.0);
                }
                tracing::debug!(
                    records = self.mem.len(),
                    total = self.len,
                    "cold records spilled"
                );
                self.mem.clear();
            }
            Err(e) => {
                tracing::warn!("cold records stay in memory: {e}");
                self.max_mem = self.max_mem.saturating_mul(2);
            }
        }
    }
}

impl Spill {
    fn open(filter_bytes: usize) -> Result<Spill, String> {
        let file = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
        let db = Database::builder()
            // Lookups are rare (only types the filter may hold); the OS
            // page cache serves repeats.
            .set_cache_size(4 << 20)
            .create_with_backend(redb::backends::FileBackend::new(file))
            .map_err(|e| format!("temporary table: {e}"))?;
        Ok(Spill {
            db,
            filter: Filter::new(filter_bytes),
            gone: PrehashedMap::default(),
        })
    }

    fn write(&mut self, mem: &PrehashedMap<Fingerprint, Cold>) -> Result<(), String> {
        let e = |x: &dyn std::fmt::Display| format!("temporary table: {x}");
        let mut tx = self.db.begin_write().map_err(|x| e(&x))?;
        // A file nobody reopens: nothing to make durable.
        tx.set_durability(redb::Durability::None)
            .map_err(|x| e(&x))?;
        {
            let mut t = tx.open_table(COLD).map_err(|x| e(&x))?;
            for fp in self.gone.keys() {
                t.remove(fp.0).map_err(|x| e(&x))?;
            }
            let mut sorted: Vec<(&Fingerprint, &Cold)> = mem.iter().collect();
            sorted.sort_unstable_by_key(|(fp, _)| **fp);
            for (fp, c) in sorted {
                t.insert(fp.0, row(c)).map_err(|x| e(&x))?;
            }
        }
        tx.commit().map_err(|x| e(&x))?;
        self.gone.clear();
        Ok(())
    }

    fn flush_gone_if_full(&mut self) {
        if self.gone.len() < GONE_BATCH {
            return;
        }
        if let Err(e) = self.write(&PrehashedMap::default()) {
            // Kept in `gone` (still correct), retried with the next batch.
            tracing::warn!("cold records on disk: {e}");
        }
    }

    fn read(&self, fp: Fingerprint) -> Result<Option<Cold>, String> {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let r = self.db.begin_read().map_err(|x| e(&x))?;
        let t = match r.open_table(COLD) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(x) => return Err(e(&x)),
        };
        Ok(t.get(fp.0).map_err(|x| e(&x))?.map(|v| unrow(v.value())))
    }

    fn all(&self) -> Result<Vec<(Fingerprint, Cold)>, String> {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        let r = self.db.begin_read().map_err(|x| e(&x))?;
        let t = match r.open_table(COLD) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(x) => return Err(e(&x)),
        };
        let mut out = Vec::new();
        for kv in t.iter().map_err(|x| e(&x))? {
            let (k, v) = kv.map_err(|x| e(&x))?;
            out.push((Fingerprint(k.value()), unrow(v.value())));
        }
        Ok(out)
    }
}

fn row(c: &Cold) -> Row {
    let flags = u8::from(c.origin == Origin::Baseline) | (u8::from(c.novel_done) << 1);
    (c.first_seen, c.last_seen, c.count, flags)
}

fn unrow((first_seen, last_seen, count, flags): Row) -> Cold {
    Cold {
        first_seen,
        last_seen,
        count,
        origin: if flags & 1 != 0 {
            Origin::Baseline
        } else {
            Origin::Live
        },
        novel_done: flags & 2 != 0,
    }
}

/// A Bloom filter over fingerprints. They are xxh3 hashes already, so the
/// probes are cut from the fingerprint itself (double hashing with its two
/// halves), no second hash: four probes, the best count for 8–16 bits a
/// key, the filter's range up to ~10M spilled types at the default size.
#[derive(Clone)]
struct Filter {
    bits: Vec<u64>,
}

impl Filter {
    const PROBES: u64 = 4;

    fn new(bytes: usize) -> Filter {
        Filter {
            bits: vec![0; (bytes / 8).max(1)],
        }
    }

    fn probes(&self, h: u64) -> impl Iterator<Item = (usize, u64)> + use<> {
        let m = self.bits.len() as u64 * 64;
        let (a, b) = (h, h.rotate_left(32) | 1);
        (0..Self::PROBES).map(move |i| {
            let bit = a.wrapping_add(i.wrapping_mul(b)) % m;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn add(&mut self, h: u64) {
        for (w, m) in self.probes(h) {
            self.bits[w] |= m;
        }
    }

    fn may_hold(&self, h: u64) -> bool {
        self.probes(h).all(|(w, m)| self.bits[w] & m != 0)
    }
}

impl serde::Serialize for ColdSet {
    /// As the map it replaced (fingerprint → record), spilled ones
    /// included: state and baseline files keep their format.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len))?;
        for (fp, c) in self.iter() {
            m.serialize_entry(&fp, &c)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for ColdSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ColdSet, D::Error> {
        let map = PrehashedMap::<Fingerprint, Cold>::deserialize(d)?;
        let mut c = ColdSet::default();
        for (fp, cold) in map {
            c.insert(fp, cold);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cold(i: u64) -> Cold {
        Cold {
            first_seen: i as i64,
            last_seen: i as i64 + 1,
            count: i,
            origin: if i.is_multiple_of(2) {
                Origin::Baseline
            } else {
                Origin::Live
            },
            novel_done: i.is_multiple_of(3),
        }
    }

    fn fp(i: u64) -> Fingerprint {
        Fingerprint(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()))
    }

    #[test]
    fn records_beyond_the_memory_bound_go_to_disk_and_stay_known() {
        let mut s = ColdSet::new(100, 1024);
        for i in 0..1000 {
            assert!(s.insert(fp(i), cold(i)));
        }
        assert_eq!(s.len(), 1000);
        assert!(s.in_memory() < 100, "{} in memory", s.in_memory());
        for i in 0..1000 {
            assert_eq!(s.get(fp(i)), Some(cold(i)), "record {i}");
        }
        assert!(!s.contains(fp(5000)));
        assert_eq!(s.iter().count(), 1000);
    }

    #[test]
    fn a_removed_spilled_record_is_gone_and_can_come_back_newer() {
        let mut s = ColdSet::new(10, 1024);
        for i in 0..50 {
            s.insert(fp(i), cold(i));
        }
        assert_eq!(s.remove(fp(3)), Some(cold(3)));
        assert!(!s.contains(fp(3)));
        assert_eq!(s.len(), 49);
        assert_eq!(s.remove(fp(3)), None);
        // Evicted again later with newer counts: the newer record wins,
        // in memory and after it is spilled in turn.
        s.insert(fp(3), cold(300));
        assert_eq!(s.get(fp(3)), Some(cold(300)));
        for i in 100..130 {
            s.insert(fp(i), cold(i));
        }
        assert_eq!(s.get(fp(3)), Some(cold(300)));
        assert_eq!(s.len(), 80);
        assert_eq!(s.iter().count(), 80);
    }

    #[test]
    fn many_removals_are_written_in_batches_and_stay_removed() {
        let mut s = ColdSet::new(1000, 4096);
        let n = GONE_BATCH as u64 * 3;
        for i in 0..n {
            s.insert(fp(i), cold(i));
        }
        for i in 0..n / 2 {
            assert!(s.remove(fp(i)).is_some());
        }
        for i in 0..n {
            assert_eq!(s.contains(fp(i)), i >= n / 2, "record {i}");
        }
        assert_eq!(s.len() as u64, n - n / 2);
    }

    #[test]
    fn the_set_serialises_as_the_map_it_replaced() {
        let mut s = ColdSet::new(5, 64);
        for i in 0..20 {
            s.insert(fp(i), cold(i));
        }
        let json = serde_json::to_string(&s).unwrap();
        let map: PrehashedMap<Fingerprint, Cold> = serde_json::from_str(&json).unwrap();
        assert_eq!(map.len(), 20);
        let back: ColdSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 20);
        assert_eq!(back.get(fp(7)), Some(cold(7)));
        assert_eq!(s.clone().len(), 20);
    }

    #[test]
    fn the_filter_never_misses_what_it_holds() {
        let mut f = Filter::new(1024);
        for i in 0..2000 {
            f.add(fp(i).0);
        }
        assert!((0..2000).all(|i| f.may_hold(fp(i).0)));
        let false_hits = (10_000..20_000).filter(|&i| f.may_hold(fp(i).0)).count();
        assert!(false_hits < 2000, "{false_hits} false positives of 10000");
    }
}
