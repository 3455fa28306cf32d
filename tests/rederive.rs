//! Editing pattern rules must not cause a storm of "new" error types:
//! `baseline::rederive` re-derives every known type from its stored
//! samples under the new rules, and old ids become aliases.

use faultline::baseline::{Baseline, Origin, rederive::rederive};
use faultline::config::{Config, FingerprintConfig};
use faultline::detect::Detector;
use faultline::fingerprint::{self, Fingerprint, Fingerprinter};
use faultline::record::Record;
use faultline::state::State;

fn rec(msg: &str) -> Record {
    Record {
        service: Some("api".into()),
        message: msg.into(),
        ..Record::default()
    }
}

/// Messages of six bugs; the tenant names are words, not digits, so the
/// shipped rules alone leave them in the template.
fn traffic(round: usize) -> Vec<String> {
    let tenants = ["acme", "globex", "initech", "umbrella", "hooli", "wonka"];
    let mut v = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let n = round * 10 + i;
        v.push(format!("quota exceeded for tenant-{t} after {n} requests"));
        v.push(format!("Invalid user {t} from 10.0.{n}.1 port 22"));
        v.push(format!("payment {n} declined for tenant-{t}"));
        v.push(format!("timeout connecting to redis after {n}ms"));
        v.push(format!("timeout connecting to postgres after {n}ms"));
        v.push(format!("disk /dev/sda{n} is full"));
    }
    v
}

fn fingerprinter(cfg: &FingerprintConfig) -> Fingerprinter {
    Fingerprinter::new(cfg).expect("rules load")
}

/// Feeds `msgs` into the state's baseline; returns the fingerprints and
/// how many records were of a type the baseline did not know.
fn feed(
    state: &mut State,
    fp: &Fingerprinter,
    msgs: &[String],
    origin: Origin,
) -> (Vec<Fingerprint>, usize) {
    let mut fps = Vec::new();
    let mut novel = 0;
    for (i, m) in msgs.iter().enumerate() {
        let r = rec(m);
        let typed = fingerprint::classify(&mut state.baseline.learner, fp.identify(&r, None))
            .expect("no ignore rules");
        if state.baseline.observe(&typed, &r, i as i64 * 1000, origin) {
            novel += 1;
        }
        fps.push(typed.fingerprint);
    }
    (fps, novel)
}

#[test]
fn a_changed_rule_re_derives_known_types_without_novel_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::default();
    let old_fp = fingerprinter(&cfg.fingerprint);
    let mut state = State::new(
        Baseline::new(&cfg, old_fp.patterns().digest),
        Detector::new(&cfg),
    );
    let (old_ids, _) = feed(&mut state, &old_fp, &traffic(0), Origin::Baseline);

    // The edit: tenant ids become a masked value, and the shipped duration
    // rule is switched off.
    let rules = dir.path().join("50-tenant.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"tenant\"\nregex = '(?-u:\\b)tenant-[a-z0-9]+'\nreplace = \"tenant-<*>\"\n\n\
         [[rule]]\nname = \"duration\"\nregex = 'x'\nenabled = false\n",
    )
    .unwrap();
    let mut new_cfg = cfg.fingerprint.clone();
    new_cfg.patterns = vec![rules];
    let new_fp = fingerprinter(&new_cfg);
    assert_ne!(old_fp.patterns().digest, new_fp.patterns().digest);

    rederive(&mut state, &new_fp);

    for id in &old_ids {
        assert!(
            state.baseline.is_known(*id),
            "old id {id} no longer resolves to a known type"
        );
    }
    // The same bugs, with new values, under the new rules: nothing novel.
    let (_, novel) = feed(&mut state, &new_fp, &traffic(1), Origin::Live);
    assert_eq!(novel, 0, "re-derivation left types to be reported as new");
    // And a genuinely new bug still is.
    let (_, novel) = feed(
        &mut state,
        &new_fp,
        &["certificate expired for tenant-acme".to_string()],
        Origin::Live,
    );
    assert_eq!(novel, 1);
}
