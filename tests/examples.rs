//! The worked examples of `docs/patterns.md` are real files under
//! `examples/`; this test loads each one and checks that it does what the
//! documentation says. An example file without a check here fails.

use std::path::{Path, PathBuf};

use faultline::config::{Config, FingerprintConfig};
use faultline::fingerprint::{self, Fingerprinter, IdentityKind, Learner};
use faultline::record::{Level, Record};

fn examples(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(dir)
}

fn with_file(name: &str) -> Fingerprinter {
    let cfg = FingerprintConfig {
        patterns: vec![examples("patterns").join(name)],
        ..FingerprintConfig::default()
    };
    Fingerprinter::new(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rec(msg: &str) -> Record {
    Record {
        service: Some("api".into()),
        message: msg.into(),
        ..Record::default()
    }
}

/// The type id of each record, through one learner (as a running service).
fn ids(f: &Fingerprinter, recs: &[Record]) -> Vec<Option<String>> {
    let mut l = Learner::from_config(&FingerprintConfig::default().learn);
    recs.iter()
        .map(|r| {
            fingerprint::classify(&mut l, f.identify(r, None)).map(|t| t.fingerprint.to_string())
        })
        .collect()
}

fn tenant_id() {
    let f = with_file("tenant-id.toml");
    let a = ids(
        &f,
        &[
            rec("quota exceeded for tenant=acme-corp"),
            rec("quota exceeded for tenant=globex"),
        ],
    );
    assert_eq!(a[0], a[1], "two tenants, one type from the first line on");
    assert_eq!(
        f.masker().mask("quota exceeded for tenant=acme-corp"),
        "quota exceeded for tenant=<*>"
    );
    // Without the rule the tenant name stays in the template.
    let plain = Fingerprinter::new(&FingerprintConfig::default()).unwrap();
    assert_eq!(
        plain.masker().mask("quota exceeded for tenant=globex"),
        "quota exceeded for tenant=globex"
    );
}

fn http_status() {
    let f = with_file("http-status.toml");
    let m = f.masker();
    assert_eq!(
        m.mask("upstream returned HTTP 404"),
        "upstream returned HTTP client-error"
    );
    assert_eq!(
        m.mask("upstream returned HTTP 503"),
        "upstream returned HTTP server-error"
    );
    assert_eq!(
        m.mask("request failed status=429"),
        "request failed status=client-error"
    );
    let a = ids(
        &f,
        &[
            rec("upstream returned HTTP 404"),
            rec("upstream returned HTTP 410"),
            rec("upstream returned HTTP 503"),
        ],
    );
    assert_eq!(a[0], a[1], "4xx codes are one type");
    assert_ne!(a[0], a[2], "4xx and 5xx are two types");
    // Other numbers are still plain values.
    assert_eq!(m.mask("retry 404 of 500"), "retry <*> of <*>");
}

fn connection_reset() {
    let f = with_file("connection-reset.toml");
    let a = ids(
        &f,
        &[
            rec("Connection reset by peer"),
            rec("read ECONNRESET"),
            rec("upstream: connection reset while reading response header from 10.0.0.7"),
            rec("Connection refused"),
        ],
    );
    assert_eq!(a[0], a[1]);
    assert_eq!(a[0], a[2]);
    assert_ne!(a[0], a[3], "a refused connection is another error");
    let mut declined = rec("card 4242 declined");
    declined.service = Some("checkout".into());
    declined.error_type = Some("com.shop.PaymentDeclined".into());
    let id = f.identify(&declined, None);
    assert_eq!(id.kind, IdentityKind::Fixed, "the template rule fires");
    assert_eq!(id.template, "payment declined by the card issuer");
    let mut elsewhere = declined.clone();
    elsewhere.service = Some("billing".into());
    assert!(
        f.identify(&elsewhere, None).kind == IdentityKind::Learned,
        "every condition must hold"
    );
}

fn ignore_noisy() {
    let f = with_file("ignore-noisy.toml");
    let mut noise = rec("health check failed: 503 from 10.0.0.9");
    noise.logger = Some("lb.health".into());
    assert!(matches!(
        f.identify(&noise, None).kind,
        IdentityKind::Ignored { .. }
    ));
    assert_eq!(ids(&f, &[noise.clone()]), [None]);
    let mut other_logger = noise.clone();
    other_logger.logger = Some("app.db".into());
    assert_eq!(f.identify(&other_logger, None).kind, IdentityKind::Learned);
}

const PATTERN_EXAMPLES: &[(&str, fn())] = &[
    ("tenant-id.toml", tenant_id),
    ("http-status.toml", http_status),
    ("connection-reset.toml", connection_reset),
    ("ignore-noisy.toml", ignore_noisy),
];

#[test]
fn every_pattern_example_loads_and_does_what_the_docs_say() {
    let mut files: Vec<String> = std::fs::read_dir(examples("patterns"))
        .expect("examples/patterns exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for name in &files {
        let check = PATTERN_EXAMPLES
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| {
                panic!("examples/patterns/{name} has no check in tests/examples.rs")
            });
        (check.1)();
    }
}

#[test]
fn the_logger_warn_example_config_lowers_the_bar_for_one_logger() {
    let path = examples("config").join("logger-warn.toml");
    let text = std::fs::read_to_string(&path).expect("example config exists");
    let cfg = Config::from_toml(&text, &path, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.input.min_level, Level::Error);
    assert_eq!(
        cfg.input.logger_min_level.get("com.acme.payments.Gateway"),
        Some(&Level::Warn)
    );
}

#[test]
fn every_example_pattern_file_passes_patterns_check() {
    for (name, _) in PATTERN_EXAMPLES {
        let p = examples("patterns").join(name);
        assert!(
            faultline::fingerprint::PatternSet::check_file(&p).is_ok(),
            "{name}"
        );
    }
}
