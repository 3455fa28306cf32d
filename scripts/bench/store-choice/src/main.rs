//! Measures candidate embedded stores on faultline's checkpoint workload:
//! many small per-type records, a checkpoint every 5,000 records committing
//! only the types those records touched plus a small global part, one
//! durable transaction per checkpoint. Prints one line per store:
//! wall time, bytes the process wrote (write amplification = written /
//! logical bytes committed), size on disk, and reopen + full scan time
//! (what a restart after kill -9 pays). Usage: store-choice redb|fjall DIR [TYPES]
use std::path::Path;
use std::time::Instant;

const EVERY: usize = 5_000;

fn value(i: u64, generation: u32) -> Vec<u8> {
    // ~450 bytes, shaped like a compact per-type record: some template text
    // from a small vocabulary, a service name, then small varint-like counts.
    const WORDS: [&str; 12] = [
        "connection", "refused", "timeout", "user", "<num>", "failed", "db", "write",
        "request", "<hex>", "to", "error",
    ];
    let mut v = Vec::with_capacity(480);
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ generation as u64;
    while v.len() < 200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(WORDS[(x % 12) as usize].as_bytes());
        v.push(b' ');
    }
    v.extend_from_slice(b"checkout-service");
    while v.len() < 450 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push((x % 4) as u8);
    }
    v.extend_from_slice(&generation.to_le_bytes());
    v
}

fn written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("write_bytes:"))
                .and_then(|l| l[12..].trim().parse().ok())
        })
        .unwrap_or(0)
}

fn du(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() { du(&e.path()) } else { m.len() };
        }
    }
    n
}

/// The touched types of checkpoint `c`: first every type once (new types),
/// then a skewed mix of updates.
fn touched(c: usize, types: u64) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::with_capacity(EVERY);
    let mut x = 0x1234_5678u64 ^ (c as u64) << 20;
    for k in 0..EVERY {
        let r = (c * EVERY + k) as u64;
        if r < types {
            out.push(r);
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // half the updates go to 1 % of types (hot), half anywhere
            out.push(if x & 1 == 0 { x % (types / 100).max(1) } else { x % types });
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = args[1].as_str();
    let dir = Path::new(&args[2]);
    let types: u64 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(300_000);
    let records = types as usize * 2;
    let checkpoints = records / EVERY;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let global = vec![7u8; 4096];
    let w0 = written();
    let t0 = Instant::now();
    let mut logical = 0u64;
    match engine {
        "redb" => {
            use redb::{Database, Durability, TableDefinition};
            const T: TableDefinition<u64, &[u8]> = TableDefinition::new("types");
            const G: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
            let db = Database::create(dir.join("state.redb")).unwrap();
            for c in 0..checkpoints {
                let mut tx = db.begin_write().unwrap();
                tx.set_durability(Durability::Immediate).unwrap();
                {
                    let mut t = tx.open_table(T).unwrap();
                    for id in touched(c, types) {
                        let v = value(id, c as u32);
                        logical += v.len() as u64 + 8;
                        t.insert(id, v.as_slice()).unwrap();
                    }
                    let mut g = tx.open_table(G).unwrap();
                    g.insert("global", global.as_slice()).unwrap();
                    logical += global.len() as u64;
                }
                tx.commit().unwrap();
            }
        }
        "fjall" => {
            use fjall::{Database, KeyspaceCreateOptions, PersistMode};
            let db = Database::builder(dir).open().unwrap();
            let t = db.keyspace("types", KeyspaceCreateOptions::default).unwrap();
            let g = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
            for c in 0..checkpoints {
                let mut b = db.batch().durability(Some(PersistMode::SyncAll));
                for id in touched(c, types) {
                    let v = value(id, c as u32);
                    logical += v.len() as u64 + 8;
                    b.insert(&t, id.to_be_bytes(), v);
                }
                b.insert(&g, "global", global.as_slice());
                logical += global.len() as u64;
                b.commit().unwrap();
            }
            db.persist(PersistMode::SyncAll).unwrap();
        }
        _ => panic!("redb|fjall"),
    }
    let wall = t0.elapsed().as_secs_f64();
    let wrote = written() - w0;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let disk = du(dir);
    // Recovery: reopen and read every record back.
    let t1 = Instant::now();
    let mut n = 0u64;
    match engine {
        "redb" => {
            use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
            const T: TableDefinition<u64, &[u8]> = TableDefinition::new("types");
            let db = Database::open(dir.join("state.redb")).unwrap();
            let r = db.begin_read().unwrap();
            let t = r.open_table(T).unwrap();
            for e in t.iter().unwrap() {
                let (_, v) = e.unwrap();
                n += v.value().len() as u64;
            }
        }
        _ => {
            use fjall::{Database, KeyspaceCreateOptions};
            let db = Database::builder(dir).open().unwrap();
            let t = db.keyspace("types", KeyspaceCreateOptions::default).unwrap();
            for kv in t.iter() {
                n += kv.value().unwrap().len() as u64;
            }
        }
    }
    let recover = t1.elapsed().as_secs_f64();
    println!(
        "{engine}: types {types} checkpoints {checkpoints} wall {wall:.2}s ({:.1} ms/checkpoint) written {:.0} MB for {:.0} MB committed (amplification {:.2}) disk {:.0} MB ({:.0} B/type) reopen+scan {recover:.2}s ({n} bytes)",
        wall * 1000.0 / checkpoints as f64,
        wrote as f64 / 1e6,
        logical as f64 / 1e6,
        wrote as f64 / logical as f64,
        disk as f64 / 1e6,
        disk as f64 / types as f64,
    );
}
