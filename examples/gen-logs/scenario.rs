//! Seeded, deterministic log scenario: five services' logs around a canary
//! release, with known error types, injected new ones, surges, and the noise
//! that must not alert, plus the ground truth describing all of it.
//!
//! Shared by the `gen-logs` example and by integration tests, which include
//! this file with `#[path = "../examples/gen-logs/scenario.rs"] mod scenario;`.
//! That is why it depends on std, chrono, serde_json and rand only, never on
//! the faultline crate.

// Tests include this file and call only part of its API.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

/// One minute in microseconds, the unit of every time in this module.
pub const MINUTE_US: i64 = 60_000_000;
pub const WARMUP_MINUTES: f64 = 30.0;
pub const RELEASE_MINUTE: f64 = 60.0;
pub const OLD_VERSION: &str = "1.9.3";
pub const NEW_VERSION: &str = "2.0.0";
/// Lines per second that the per-type error rates below are calibrated for.
pub const REFERENCE_RATE: f64 = 20.0;
/// Canary traffic share of the new version from the given minute on
/// (stepped like an Argo Rollouts canary).
pub const CANARY_STEPS: [(f64, f64); 4] = [(60.0, 0.10), (70.0, 0.25), (80.0, 0.50), (95.0, 1.0)];

/// Lowest error rates (events per minute), so that a low `--rate` (as used
/// for the committed sample) still teaches every known type during warm-up
/// and still makes bursts and surges visible.
const KNOWN_FLOOR_PER_MIN: f64 = 0.15;
const SHAPED_FLOOR_PER_MIN: f64 = 0.5;
const NEW_FLOOR_PER_MIN: f64 = 0.3;
const MIN_WARMUP_EVENTS: usize = 6;
const MIN_NEW_EVENTS: usize = 6;

/// The instant the scenario starts: 2026-11-02T10:00:00Z.
pub fn start_us() -> i64 {
    Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, 0)
        .single()
        .expect("valid start instant")
        .timestamp_micros()
}

/// Share of a canary service's traffic served by the new version.
pub fn canary_share(minute: f64) -> f64 {
    let mut share = 0.0;
    for (from, s) in CANARY_STEPS {
        if minute >= from {
            share = s;
        }
    }
    share
}

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    pub minutes: u32,
    /// Overall lines (records) per second.
    pub rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 42,
            minutes: 120,
            rate: REFERENCE_RATE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Checkout,
    Payments,
    Search,
    Gateway,
    Auth,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Checkout,
        Service::Payments,
        Service::Search,
        Service::Gateway,
        Service::Auth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Checkout => "checkout",
            Service::Payments => "payments",
            Service::Search => "search",
            Service::Gateway => "gateway",
            Service::Auth => "auth",
        }
    }

    /// Only these two get the canary; the others keep running 1.9.3.
    pub fn is_canary(self) -> bool {
        matches!(self, Service::Checkout | Service::Payments)
    }

    pub fn json_style(self) -> &'static str {
        match self {
            Service::Checkout => "ecs_dotted",
            Service::Auth => "ecs_nested",
            Service::Payments | Service::Search | Service::Gateway => "flat",
        }
    }

    pub fn text_style(self) -> &'static str {
        match self {
            Service::Checkout => "log4j",
            Service::Payments => "syslog",
            Service::Search | Service::Auth => "iso",
            Service::Gateway => "apache",
        }
    }

    pub fn text_file(self) -> String {
        format!("text/{}.log", self.name())
    }

    fn background_share(self) -> f64 {
        match self {
            Service::Checkout => 0.24,
            Service::Payments => 0.12,
            Service::Search => 0.20,
            Service::Gateway => 0.30,
            Service::Auth => 0.14,
        }
    }

    /// Kubernetes replica-set hash per version; a new version gets a new one,
    /// which is what makes pod names drift after the release.
    fn replica_set(self, version: &str) -> &'static str {
        let v2 = version == NEW_VERSION;
        match self {
            Service::Checkout if v2 => "6b5c4d8f7",
            Service::Checkout => "7d9f8b6c5",
            Service::Payments if v2 => "84c6b9d7f",
            Service::Payments => "5f7c9d8b6",
            Service::Search => "9c8d7f6b5",
            Service::Gateway => "68d5f9c7b",
            Service::Auth => "7b9c5d6f8",
        }
    }

    fn subnet(self, version: &str) -> u8 {
        let v2 = version == NEW_VERSION;
        match self {
            Service::Gateway => 1,
            Service::Auth => 2,
            Service::Checkout if v2 => 7,
            Service::Checkout => 3,
            Service::Search => 4,
            Service::Payments if v2 => 11,
            Service::Payments => 6,
        }
    }
}

/// Normalised severity, named as faultline's `Level::as_str` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Debug,
    Info,
    Notice,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warn,
        Severity::Error,
        Severity::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Notice => "notice",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        }
    }

    pub fn is_error(self) -> bool {
        self >= Severity::Error
    }
}

/// Level spelling in JSON: each service's logging library spells it its way.
pub fn json_level(service: Service, sev: Severity) -> &'static str {
    use Severity::*;
    match (service, sev) {
        (Service::Checkout, Debug) => "DEBUG",
        (Service::Checkout, Info | Notice) => "INFO",
        (Service::Checkout, Warn) => "WARN",
        (Service::Checkout, Error) => "ERROR",
        (Service::Checkout, Fatal) => "FATAL",
        (Service::Payments, Debug) => "DEBUG",
        (Service::Payments, Info | Notice) => "INFO",
        (Service::Payments, Warn) => "WARNING",
        (Service::Payments, Error) => "ERROR",
        (Service::Payments, Fatal) => "CRITICAL",
        (Service::Search, Debug) => "debug",
        (Service::Search, Info | Notice) => "info",
        (Service::Search, Warn) => "warn",
        (Service::Search, Error) => "error",
        (Service::Search, Fatal) => "fatal",
        (Service::Gateway, Debug) => "DEBUG",
        (Service::Gateway, Info) => "INFO",
        (Service::Gateway, Notice) => "NOTICE",
        (Service::Gateway, Warn) => "WARN",
        (Service::Gateway, Error) => "ERR",
        (Service::Gateway, Fatal) => "CRIT",
        (Service::Auth, Debug) => "debug",
        (Service::Auth, Info | Notice) => "info",
        (Service::Auth, Warn) => "warning",
        (Service::Auth, Error) => "error",
        (Service::Auth, Fatal) => "fatal",
    }
}

/// Level spelling in the plain-text header.
pub fn text_level(service: Service, sev: Severity) -> &'static str {
    use Severity::*;
    match (service, sev) {
        (Service::Gateway, Debug) => "debug",
        (Service::Gateway, Info) => "info",
        (Service::Gateway, Notice) => "notice",
        (Service::Gateway, Warn) => "warn",
        (Service::Gateway, Error) => "error",
        (Service::Gateway, Fatal) => "crit",
        (Service::Payments | Service::Auth, Warn) => "WARNING",
        (Service::Payments, Fatal) => "CRITICAL",
        (_, Debug) => "DEBUG",
        (_, Info | Notice) => "INFO",
        (_, Warn) => "WARN",
        (_, Error) => "ERROR",
        (_, Fatal) => "FATAL",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Known,
    New,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Known => "known",
            Kind::New => "new",
        }
    }
}

/// What modulates a new type's rate: constant, or the canary share of a
/// service (the new code path only runs where the new version serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Constant,
    Canary(Service),
}

/// One error type of the scenario.
#[derive(Clone, Copy, Debug)]
pub struct ErrorType {
    pub id: &'static str,
    pub service: Service,
    pub kind: Kind,
    pub severity: Severity,
    pub logger: &'static str,
    /// Exception class / error type the record names ("" when none).
    pub exception: &'static str,
    /// Matches the first line of the message (the part after any header),
    /// unanchored; no other type's regex matches this type's messages.
    pub regex: &'static str,
    pub about: &'static str,
    /// Events per minute at [`REFERENCE_RATE`] (for new types: at full share).
    per_min: f64,
    /// New types: minute of the first event (plus up to 40 s of seeded jitter).
    first_minute: f64,
    driver: Driver,
    /// New types that only the new version emits.
    v2_only: bool,
}

#[allow(clippy::too_many_arguments)]
const fn known(
    id: &'static str,
    service: Service,
    severity: Severity,
    logger: &'static str,
    exception: &'static str,
    per_min: f64,
    regex: &'static str,
    about: &'static str,
) -> ErrorType {
    ErrorType {
        id,
        service,
        kind: Kind::Known,
        severity,
        logger,
        exception,
        regex,
        about,
        per_min,
        first_minute: 0.0,
        driver: Driver::Constant,
        v2_only: false,
    }
}

#[allow(clippy::too_many_arguments)]
const fn fresh(
    id: &'static str,
    service: Service,
    severity: Severity,
    logger: &'static str,
    exception: &'static str,
    per_min: f64,
    first_minute: f64,
    driver: Driver,
    v2_only: bool,
    regex: &'static str,
    about: &'static str,
) -> ErrorType {
    ErrorType {
        id,
        service,
        kind: Kind::New,
        severity,
        logger,
        exception,
        regex,
        about,
        per_min,
        first_minute,
        driver,
        v2_only,
    }
}

use Service::{Auth, Checkout, Gateway, Payments, Search};
use Severity::{Error, Fatal};

pub const ERROR_TYPES: &[ErrorType] = &[
    known(
        "checkout.payment_auth_timeout",
        Checkout,
        Error,
        "com.shop.checkout.PaymentClient",
        "java.net.SocketTimeoutException",
        3.0,
        r"Payment authorization failed for order ORD-\d{4}-\d+ after \d+ms",
        "Java read timeout calling the payment service; stack frame lines shift in 2.0.0",
    ),
    known(
        "checkout.inventory_rejected",
        Checkout,
        Error,
        "com.shop.checkout.InventoryGateway",
        "",
        4.0,
        r"Inventory reservation rejected for sku \S+ qty=\d+: insufficient stock",
        "no stack trace; SKUs, quantities and warehouses vary",
    ),
    known(
        "checkout.redis_timeout",
        Checkout,
        Error,
        "com.shop.checkout.cache.CartCache",
        "io.lettuce.core.RedisConnectionException",
        2.0,
        r"timeout connecting to redis at \S+ after \d+ms",
        "the old sibling of checkout.postgres_timeout",
    ),
    known(
        "checkout.smtp_send_failed",
        Checkout,
        Error,
        "com.shop.checkout.notify.MailNotifier",
        "jakarta.mail.MessagingException",
        0.8,
        r"Failed to send order confirmation to \S+@\S+: Could not connect to SMTP host",
        "e-mail addresses vary",
    ),
    known(
        "checkout.optimistic_lock",
        Checkout,
        Error,
        "com.shop.checkout.CartRepository",
        "org.springframework.orm.ObjectOptimisticLockingFailureException",
        1.0,
        r"Optimistic lock failure on com\.shop\.checkout\.model\.Cart@[0-9a-f]+ ",
        "hex identity hash and UUID in the first line; Caused by chain",
    ),
    known(
        "payments.card_declined",
        Payments,
        Error,
        "payments.charges",
        "stripe.CardError",
        5.0,
        r"Charge ch_\w+ failed for customer cus_\w+: card declined",
        "Python traceback; the old sibling of payments.charge_invalid_amount",
    ),
    known(
        "payments.processor_503",
        Payments,
        Error,
        "payments.processor_client",
        "requests.exceptions.HTTPError",
        2.0,
        r"Card processor returned HTTP 503 for charge ch_\w+",
        "surges after the release (external outage)",
    ),
    known(
        "payments.idempotency_conflict",
        Payments,
        Error,
        "payments.api",
        "",
        1.0,
        r"Idempotency key '[0-9a-f-]+' reused with a different request body",
        "quoted UUID",
    ),
    known(
        "payments.db_pool_exhausted",
        Payments,
        Fatal,
        "payments.refunds",
        "sqlalchemy.exc.TimeoutError",
        0.6,
        r"Could not persist refund rf_\w+ for payment pay_\w+: QueuePool limit",
        "logged at CRITICAL",
    ),
    known(
        "search.es_timeout",
        Search,
        Error,
        "search.backend",
        "",
        3.0,
        r"elasticsearch query timed out after \S+ on index products-v\d+",
        "Go durations; the index name moves from products-v7 to products-v8 at minute 85",
    ),
    known(
        "search.recs_deadline",
        Search,
        Error,
        "search.recs",
        "",
        2.0,
        r"recommendations call failed after \S+: rpc error: code = DeadlineExceeded",
        "gRPC deadline",
    ),
    known(
        "search.nil_panic",
        Search,
        Fatal,
        "search.http",
        "runtime.Error",
        0.5,
        r"http: panic serving \S+: runtime error: invalid memory address or nil pointer dereference",
        "recovered Go panic with goroutine dump; the old sibling of search.index_out_of_range",
    ),
    known(
        "gateway.upstream_timeout",
        Gateway,
        Error,
        "nginx",
        "",
        4.0,
        r"upstream timed out \(110: Connection timed out\) while reading response header from upstream",
        "nginx; surges late in the run",
    ),
    known(
        "gateway.connect_refused",
        Gateway,
        Error,
        "nginx",
        "",
        2.0,
        r"connect\(\) failed \(111: Connection refused\) while connecting to upstream",
        "nginx; upstream IPs change when pods move",
    ),
    known(
        "gateway.no_live_upstreams",
        Gateway,
        Error,
        "nginx",
        "",
        0.5,
        r"no live upstreams while connecting to upstream",
        "nginx",
    ),
    known(
        "auth.login_failed",
        Auth,
        Error,
        "auth.login",
        "InvalidCredentialsError",
        6.0,
        r"Login failed for user '[^']*' from \S+: invalid credentials",
        "user names with and without digits; new names after the release",
    ),
    known(
        "auth.jwt_expired",
        Auth,
        Error,
        "auth.tokens",
        "TokenExpiredError",
        3.0,
        r"JWT validation failed: token expired \d+s ago",
        "JWT expiry",
    ),
    known(
        "auth.ldap_timeout",
        Auth,
        Error,
        "auth.ldap",
        "LDAPTimeoutError",
        0.4,
        r"LDAP bind as \S+ failed: dial tcp \S+: i/o timeout",
        "rare",
    ),
    fresh(
        "checkout.postgres_timeout",
        Checkout,
        Error,
        "com.shop.checkout.cache.CartCache",
        "org.postgresql.util.PSQLException",
        2.5,
        61.5,
        Driver::Canary(Checkout),
        true,
        r"timeout connecting to postgres at \S+ after \d+ms",
        "a new constant word where only redis was known (2.0.0 moved carts to postgres)",
    ),
    fresh(
        "checkout.cart_totals_arithmetic",
        Checkout,
        Error,
        "com.shop.checkout.pricing.CartTotals",
        "java.lang.ArithmeticException",
        1.5,
        63.0,
        Driver::Canary(Checkout),
        true,
        r"Failed to compute totals for cart [0-9a-f-]+",
        "new Java exception class (BigDecimal division)",
    ),
    fresh(
        "payments.ledger_type_error",
        Payments,
        Error,
        "payments.ledger",
        "TypeError",
        1.0,
        66.0,
        Driver::Canary(Payments),
        true,
        r"Ledger reconciliation failed for batch \d+",
        "new Python exception (Decimal + float)",
    ),
    fresh(
        "search.index_out_of_range",
        Search,
        Fatal,
        "search.http",
        "runtime.Error",
        1.5,
        71.0,
        Driver::Canary(Checkout),
        false,
        r"http: panic serving \S+: runtime error: index out of range \[\d+\] with length \d+",
        "new Go panic in search (still 1.9.3), triggered by checkout 2.0.0's facet requests",
    ),
    fresh(
        "gateway.upstream_big_header",
        Gateway,
        Error,
        "nginx",
        "",
        1.0,
        82.0,
        Driver::Canary(Checkout),
        false,
        r"upstream sent too big header while reading response header from upstream",
        "nginx, triggered by checkout 2.0.0's large Set-Cookie headers",
    ),
    fresh(
        "payments.charge_invalid_amount",
        Payments,
        Error,
        "payments.charges",
        "stripe.InvalidRequestError",
        1.2,
        77.0,
        Driver::Canary(Payments),
        true,
        r"Charge ch_\w+ failed for customer cus_\w+: invalid amount",
        "same prefix and code path as payments.card_declined, new exception: 2.0.0 sends fractional minor units",
    ),
];

/// A time window in which a known type's rate is multiplied.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub type_id: &'static str,
    pub start_minute: f64,
    pub end_minute: f64,
    pub factor: f64,
}

/// Surges that must alert: ≥ 10× for ten minutes.
pub const SURGES: &[Shape] = &[
    Shape {
        type_id: "payments.processor_503",
        start_minute: 75.0,
        end_minute: 85.0,
        factor: 15.0,
    },
    Shape {
        type_id: "gateway.upstream_timeout",
        start_minute: 97.0,
        end_minute: 107.0,
        factor: 12.0,
    },
];

/// Short bursts (2–3× for a minute) that must NOT alert.
pub const BURSTS: &[Shape] = &[
    Shape {
        type_id: "auth.login_failed",
        start_minute: 14.0,
        end_minute: 15.0,
        factor: 3.0,
    },
    Shape {
        type_id: "checkout.inventory_rejected",
        start_minute: 44.0,
        end_minute: 45.0,
        factor: 2.5,
    },
    Shape {
        type_id: "search.es_timeout",
        start_minute: 88.0,
        end_minute: 89.0,
        factor: 3.0,
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    Always,
    AfterRelease,
    NewVersionOnly,
    /// Only at pod start.
    Startup,
}

/// A non-error line template; the WARN ones are listed in the truth as noise.
#[derive(Clone, Copy, Debug)]
struct Line {
    id: &'static str,
    service: Service,
    severity: Severity,
    logger: &'static str,
    weight: f64,
    when: When,
    /// WARN lines only.
    regex: &'static str,
}

const fn line(
    id: &'static str,
    service: Service,
    severity: Severity,
    logger: &'static str,
    weight: f64,
    when: When,
    regex: &'static str,
) -> Line {
    Line {
        id,
        service,
        severity,
        logger,
        weight,
        when,
        regex,
    }
}

use Severity::{Debug as Dbg, Info, Notice, Warn};

// One row per template reads as a table; rustfmt would spread each over nine lines.
#[rustfmt::skip]
const LINES: &[Line] = &[
    line("checkout.order_placed", Checkout, Info, "com.shop.checkout.CheckoutService", 22.0, When::Always, ""),
    line("checkout.cart_get", Checkout, Info, "com.shop.checkout.web.RequestLog", 30.0, When::Always, ""),
    line("checkout.cart_cache_hit", Checkout, Dbg, "com.shop.checkout.cache.CartCache", 15.0, When::Always, ""),
    line("checkout.price_rules", Checkout, Dbg, "com.shop.checkout.pricing.PriceEngine", 10.0, When::Always, ""),
    line("checkout.hikari_stats", Checkout, Dbg, "com.zaxxer.hikari.pool.HikariPool", 5.0, When::Always, ""),
    line("checkout.slow_request", Checkout, Warn, "com.shop.checkout.web.RequestLog", 3.0, When::Always,
         r"Slow request \S+ \S+ took \d+ms \(threshold 1000ms"),
    line("checkout.payment_retry", Checkout, Warn, "com.shop.checkout.PaymentClient", 2.0, When::Always,
         r"Retrying payment authorization for order ORD-\d{4}-\d+ \(attempt \d/3\)"),
    line("checkout.cart_pg_persist", Checkout, Info, "com.shop.checkout.store.PgCartStore", 15.0, When::NewVersionOnly, ""),
    line("checkout.pricing_engine", Checkout, Dbg, "com.shop.checkout.pricing.PricingEngineV2", 8.0, When::NewVersionOnly, ""),
    line("checkout.pg_pool_high", Checkout, Warn, "com.zaxxer.hikari.pool.HikariPool", 1.5, When::NewVersionOnly,
         r"HikariPool-2 \(cart-pg\) - pool usage at \d+%"),
    line("checkout.deprecated_config", Checkout, Warn, "com.shop.checkout.config.ConfigLoader", 0.2, When::NewVersionOnly,
         r"Config key 'cart\.redis\.ttl' is deprecated and ignored"),
    line("checkout.startup", Checkout, Info, "com.shop.checkout.CheckoutApplication", 0.0, When::Startup, ""),
    line("payments.charge_ok", Payments, Info, "payments.charges", 35.0, When::Always, ""),
    line("payments.api_post", Payments, Info, "payments.api", 30.0, When::Always, ""),
    line("payments.fx_cache", Payments, Dbg, "payments.fx", 15.0, When::Always, ""),
    line("payments.refund_queued", Payments, Info, "payments.refunds", 8.0, When::Always, ""),
    line("payments.webhook_slow", Payments, Warn, "payments.webhooks", 3.0, When::Always,
         r"Webhook delivery to \S+ took [\d.]+s, exceeding 2s budget"),
    line("payments.ledger_ok", Payments, Info, "payments.ledger", 8.0, When::NewVersionOnly, ""),
    line("payments.decimal_ctx", Payments, Dbg, "payments.ledger", 5.0, When::NewVersionOnly, ""),
    line("payments.fx_fallback", Payments, Warn, "payments.fx", 2.0, When::NewVersionOnly,
         r"Falling back to legacy FX provider for [A-Z]{3}"),
    line("payments.startup", Payments, Info, "gunicorn.error", 0.0, When::Startup, ""),
    line("search.query", Search, Info, "search.api", 45.0, When::Always, ""),
    line("search.cache_hit", Search, Dbg, "search.cache", 25.0, When::Always, ""),
    line("search.indexed", Search, Info, "search.indexer", 3.0, When::Always, ""),
    line("search.indexer_stats", Search, Info, "search.indexer", 2.0, When::Always, ""),
    line("search.ranking", Search, Dbg, "search.ranking", 15.0, When::Always, ""),
    line("search.slow_query", Search, Warn, "search.api", 4.0, When::Always,
         r#"slow query q="[^"]*" took \S+ \(hits=\d+\)"#),
    line("search.facet_truncated", Search, Warn, "search.facets", 2.0, When::AfterRelease,
         r#"facet "[^"]*" has \d+ buckets, truncating to 100"#),
    line("search.startup", Search, Info, "search.main", 0.0, When::Startup, ""),
    line("gateway.access", Gateway, Info, "nginx", 85.0, When::Always, ""),
    line("gateway.keepalive", Gateway, Info, "nginx", 8.0, When::Always, ""),
    line("gateway.buffered", Gateway, Warn, "nginx", 4.0, When::Always,
         r"an upstream response is buffered to a temporary file"),
    line("gateway.reload", Gateway, Notice, "nginx", 0.3, When::Always, ""),
    line("gateway.startup", Gateway, Notice, "nginx", 0.0, When::Startup, ""),
    line("auth.login_ok", Auth, Info, "auth.login", 30.0, When::Always, ""),
    line("auth.token_issued", Auth, Info, "auth.tokens", 35.0, When::Always, ""),
    line("auth.jwks_refresh", Auth, Dbg, "auth.tokens", 5.0, When::Always, ""),
    line("auth.session_extended", Auth, Dbg, "auth.sessions", 20.0, When::Always, ""),
    line("auth.health", Auth, Info, "auth.health", 3.0, When::Always, ""),
    line("auth.password_expiring", Auth, Warn, "auth.login", 3.0, When::Always,
         r"Password for user '[^']*' expires in \d+ days"),
    line("auth.rate_limit", Auth, Warn, "auth.login", 2.0, When::Always,
         r"Rate limiting login attempts from \S+: \d+ attempts in 60s"),
    line("auth.unknown_client", Auth, Warn, "auth.oauth", 2.0, When::AfterRelease,
         r"Unknown client_id '[^']*' presented by \S+; treating as public client"),
    line("auth.startup", Auth, Info, "auth.main", 0.0, When::Startup, ""),
];

/// One log event. Text output renders it as a header line plus the
/// continuation lines of `trace`; JSON output as one object.
#[derive(Clone, Debug)]
pub struct Record {
    /// Event time, µs since the Unix epoch.
    pub time_us: i64,
    /// Order of emission: event time plus shipping jitter.
    pub arrival_us: i64,
    pub service: Service,
    pub severity: Severity,
    pub version: &'static str,
    pub pod: String,
    pub logger: &'static str,
    /// First line of the message, as it appears after the text header.
    pub message: String,
    /// Exception class or error type ("" when none).
    pub exception: &'static str,
    pub error_message: Option<String>,
    /// Stack trace / traceback / goroutine dump, lines joined by '\n'.
    pub trace: Option<String>,
    pub request_id: Option<String>,
    /// Error type id for error records; line id for the others.
    pub type_id: &'static str,
}

impl Record {
    pub fn time_ms(&self) -> i64 {
        self.time_us.div_euclid(1000)
    }

    /// Physical lines in the text rendering.
    pub fn text_line_count(&self) -> usize {
        1 + self.trace.as_ref().map_or(0, |t| t.lines().count())
    }
}

pub struct Scenario {
    pub config: Config,
    pub start_us: i64,
    pub end_us: i64,
    /// In emission order.
    pub records: Vec<Record>,
}

struct Pod {
    service: Service,
    version: &'static str,
    name: String,
    ip: String,
    from_us: i64,
    until_us: i64,
}

struct Body {
    message: String,
    error_message: Option<String>,
    trace: Option<String>,
    request_id: Option<String>,
}

impl Body {
    fn msg(message: String) -> Body {
        Body {
            message,
            error_message: None,
            trace: None,
            request_id: None,
        }
    }

    fn rid(mut self, rid: String) -> Body {
        self.request_id = Some(rid);
        self
    }

    fn err(mut self, e: impl Into<String>) -> Body {
        self.error_message = Some(e.into());
        self
    }

    fn trace(mut self, t: Trace) -> Body {
        self.trace = Some(t.0);
        self
    }
}

/// What a renderer knows about the event it renders.
struct Ctx {
    t: i64,
    minute: f64,
    v2: bool,
}

/// A Java frame as printed, `method(File.java:142|157)`, where `142|157`
/// is the line in 1.9.3 and in 2.0.0: the code moved, so the frames of the
/// same error carry other line numbers after the release.
type JFrame = &'static str;
/// `path|line in 1.9.3|line in 2.0.0|function|source line`.
type PyFrame = &'static str;

struct Trace(String);

impl Trace {
    fn new(first: impl std::fmt::Display) -> Trace {
        Trace(first.to_string())
    }

    fn line(&mut self, s: impl std::fmt::Display) -> &mut Trace {
        let _ = write!(self.0, "\n{s}");
        self
    }

    fn java(&mut self, frames: &[JFrame], v2: bool) -> &mut Trace {
        for frame in frames {
            let (head, lines) = frame.rsplit_once(':').expect("java frame has a line");
            let lines = lines.trim_end_matches(')');
            let line = match lines.split_once('|') {
                Some((old, new)) => {
                    if v2 {
                        new
                    } else {
                        old
                    }
                }
                None => lines,
            };
            let _ = write!(self.0, "\n\tat {head}:{line})");
        }
        self
    }

    fn python(&mut self, frames: &[PyFrame], v2: bool) -> &mut Trace {
        for frame in frames {
            let f: Vec<&str> = frame.splitn(5, '|').collect();
            let line = if v2 { f[2] } else { f[1] };
            let _ = write!(
                self.0,
                "\n  File \"{}\", line {line}, in {}\n    {}",
                f[0], f[3], f[4]
            );
        }
        self
    }

    fn done(&mut self) -> Trace {
        Trace(std::mem::take(&mut self.0))
    }
}

const HEX: &[u8] = b"0123456789abcdef";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Alphabet Kubernetes uses for generated name suffixes.
const K8S: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

// Word pools stay packed: one name per line would bury the logic.
#[rustfmt::skip]
const USERS_OLD: &[&str] = &[
    "alice", "bob", "carol.jones", "dave", "erin_w", "frank77", "grace.h", "heidi",
    "ivan.petrov", "judy", "mallory", "niaj", "olivia.k", "peggy", "rupert", "sybil", "trent",
    "victor", "walter", "jdoe42", "msmith1987", "k.tanaka", "l.rossi", "a.novak", "user4821",
    "bea2", "chen.wei", "d.okafor", "emma_s", "finn",
];
/// Users first seen after the release (a marketing campaign brings them).
#[rustfmt::skip]
const USERS_NEW: &[&str] = &[
    "zoe.martinez", "yusuf", "xavier3", "wen.li", "valentina", "ugo.b", "tariq99", "sofia.r",
    "ruth", "qiang.z", "pablo2001", "oona", "nadia.k", "mateo_g", "lena1990", "kwame",
];
#[rustfmt::skip]
const MAIL_DOMAINS: &[&str] = &[
    "example.com", "example.net", "mail.example.org", "shop-customers.example",
];
#[rustfmt::skip]
const QUERIES: &[&str] = &[
    "red shoes", "usb-c cable", "winter jacket", "coffee grinder", "running socks", "desk lamp",
    "wireless mouse", "yoga mat", "rain boots", "espresso cups", "phone case", "backpack",
];
#[rustfmt::skip]
const PATHS: &[&str] = &[
    "/api/v1/products/", "/api/v1/cart/", "/api/v1/search?q=", "/api/v1/orders/",
    "/api/v1/users/me", "/api/v1/recommendations/", "/static/app.js", "/api/v1/checkout",
];
const CURRENCIES: &[&str] = &["EUR", "USD", "GBP", "CHF", "SEK", "PLN"];
const DECLINE_CODES: &[&str] = &[
    "insufficient_funds",
    "do_not_honor",
    "expired_card",
    "lost_card",
    "generic_decline",
];
const WAREHOUSES: &[&str] = &["fra-1", "ams-2", "waw-1", "mad-3"];
const COLORS: &[&str] = &["BLK", "WHT", "RED", "NVY", "GRN"];

struct Gen {
    rng: StdRng,
    start: i64,
    pods: Vec<Pod>,
    clients: Vec<String>,
}

impl Gen {
    fn unit(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.random_range(lo..=hi)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }

    fn hex(&mut self, n: usize) -> String {
        self.chars(HEX, n)
    }

    fn alnum(&mut self, n: usize) -> String {
        self.chars(ALNUM, n)
    }

    fn uuid(&mut self) -> String {
        let variant = self.pick(&['8', '9', 'a', 'b']);
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            variant,
            self.hex(3),
            self.hex(12)
        )
    }

    fn request_id(&mut self) -> String {
        self.hex(16)
    }

    fn minute(&self, t: i64) -> f64 {
        (t - self.start) as f64 / MINUTE_US as f64
    }

    fn user(&mut self, c: &Ctx) -> String {
        if self.chance(0.12) {
            // Generated accounts keep appearing before and after the release.
            return format!("user{}", self.range(1000, 99999));
        }
        if c.minute >= RELEASE_MINUTE && self.chance(0.45) {
            self.pick(USERS_NEW).to_string()
        } else {
            self.pick(USERS_OLD).to_string()
        }
    }

    fn email(&mut self, c: &Ctx) -> String {
        let user = self.user(c).replace('_', ".");
        format!("{user}@{}", self.pick(MAIL_DOMAINS))
    }

    fn client_ip(&mut self, c: &Ctx) -> String {
        let fresh_p = if c.minute >= RELEASE_MINUTE { 0.5 } else { 0.2 };
        if !self.chance(fresh_p) {
            let i = self.below(self.clients.len());
            return self.clients[i].clone();
        }
        if c.minute >= RELEASE_MINUTE && self.chance(0.5) {
            // Carrier-grade NAT range: mobile users of the campaign.
            format!(
                "100.{}.{}.{}",
                self.range(64, 127),
                self.range(0, 255),
                self.range(1, 254)
            )
        } else {
            let net = self.pick(&["203.0.113", "198.51.100", "192.0.2"]);
            format!("{net}.{}", self.range(1, 254))
        }
    }

    fn port(&mut self) -> u64 {
        self.range(32768, 60999)
    }

    fn order_no(&mut self) -> String {
        format!("ORD-2026-{:06}", self.range(1, 999_999))
    }

    /// Go's `time.Duration` formatting, e.g. `2.503118s` or `812.4ms`.
    fn go_dur(&mut self, lo_ms: u64, hi_ms: u64) -> String {
        let us = self.range(lo_ms * 1000, hi_ms * 1000);
        if us >= 1_000_000 {
            let s = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
            format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
        } else {
            format!("{}.{}ms", us / 1000, (us % 1000) / 100)
        }
    }

    fn exp_gap_us(&mut self, per_min: f64) -> f64 {
        -(1.0 - self.unit()).ln() * MINUTE_US as f64 / per_min
    }

    fn poisson(&mut self, from: i64, to: i64, per_min: f64) -> Vec<i64> {
        let mut out = Vec::new();
        if per_min <= 0.0 {
            return out;
        }
        let mut t = from as f64;
        loop {
            t += self.exp_gap_us(per_min);
            if t >= to as f64 {
                return out;
            }
            out.push(t as i64);
        }
    }

    fn version_for(&mut self, service: Service, t: i64) -> &'static str {
        if service.is_canary() && self.chance(canary_share(self.minute(t))) {
            NEW_VERSION
        } else {
            OLD_VERSION
        }
    }

    fn pod_index(&mut self, service: Service, version: &str, t: i64) -> usize {
        let mut n = 0;
        let mut chosen = usize::MAX;
        // Reservoir pick keeps this allocation-free.
        for (i, p) in self.pods.iter().enumerate() {
            if p.service == service && p.version == version && p.from_us <= t && t < p.until_us {
                n += 1;
                if self.rng.random_range(0..n) == 0 {
                    chosen = i;
                }
            }
        }
        assert!(
            chosen != usize::MAX,
            "no pod for {} {version}",
            service.name()
        );
        chosen
    }

    fn pod_ip(&mut self, service: Service, t: i64) -> String {
        let v = self.version_for(service, t);
        let i = self.pod_index(service, v, t);
        self.pods[i].ip.clone()
    }

    fn pod_ip_of(&mut self, service: Service, version: &str, t: i64) -> String {
        let i = self.pod_index(service, version, t);
        self.pods[i].ip.clone()
    }

    fn new_pod(&mut self, service: Service, version: &'static str, from_us: i64, until_us: i64) {
        let name = format!(
            "{}-{}-{}",
            service.name(),
            service.replica_set(version),
            self.chars(K8S, 5)
        );
        let ip = format!("10.0.{}.{}", service.subnet(version), self.range(2, 250));
        self.pods.push(Pod {
            service,
            version,
            name,
            ip,
            from_us,
            until_us,
        });
    }
}

/// Weighted choice over line templates, by index into `LINES`.
fn pick_line(g: &mut Gen, service: Service, c: &Ctx) -> usize {
    let eligible = |l: &Line| {
        l.service == service
            && match l.when {
                When::Always => true,
                When::AfterRelease => c.minute >= RELEASE_MINUTE,
                When::NewVersionOnly => c.v2,
                When::Startup => false,
            }
    };
    let total: f64 = LINES.iter().filter(|l| eligible(l)).map(|l| l.weight).sum();
    let mut x = g.unit() * total;
    let mut last = 0;
    for (i, l) in LINES.iter().enumerate() {
        if eligible(l) {
            last = i;
            x -= l.weight;
            if x < 0.0 {
                return i;
            }
        }
    }
    last
}

fn gateway_request(g: &mut Gen) -> (String, String) {
    let base = g.pick(PATHS);
    let path = if base.ends_with("q=") {
        format!(
            "{base}{}&page={}",
            g.pick(QUERIES).replace(' ', "+"),
            g.range(1, 5)
        )
    } else if base.ends_with('/') {
        format!("{base}{}", g.range(1000, 99999))
    } else {
        base.to_string()
    };
    let method = if path.contains("checkout") {
        "POST"
    } else {
        "GET"
    };
    (method.to_string(), path)
}

fn nginx_tail(client: &str, method: &str, path: &str, upstream: &str) -> String {
    format!(
        "client: {client}, server: api.shop.example, request: \"{method} {path} HTTP/1.1\", upstream: \"{upstream}{path}\", host: \"api.shop.example\""
    )
}

fn render_line(g: &mut Gen, id: &str, c: &Ctx) -> Body {
    let t = c.t;
    match id {
        "checkout.order_placed" => {
            let rid = g.request_id();
            Body::msg(format!(
                "Order {} placed: {} items, total {}.{:02} EUR (request_id={rid})",
                g.order_no(),
                g.range(1, 9),
                g.range(5, 900),
                g.range(0, 99)
            ))
            .rid(rid)
        }
        "checkout.cart_get" => {
            let rid = g.request_id();
            Body::msg(format!(
                "GET /api/v1/cart/{} completed in {}ms status=200",
                g.uuid(),
                g.range(3, 180)
            ))
            .rid(rid)
        }
        "checkout.cart_cache_hit" => Body::msg(format!(
            "Cart {} loaded from cache in {}ms",
            g.uuid(),
            g.range(0, 4)
        )),
        "checkout.price_rules" => Body::msg(format!(
            "Applying {} price rules to cart {}",
            g.range(1, 14),
            g.uuid()
        )),
        "checkout.hikari_stats" => {
            let total = 20;
            let active = g.range(0, 12);
            Body::msg(format!(
                "HikariPool-1 - Pool stats (total={total}, active={active}, idle={}, waiting=0)",
                total - active
            ))
        }
        "checkout.slow_request" => {
            let rid = g.request_id();
            Body::msg(format!(
                "Slow request POST /api/v1/checkout took {}ms (threshold 1000ms, request_id={rid})",
                g.range(1001, 4800)
            ))
            .rid(rid)
        }
        "checkout.payment_retry" => Body::msg(format!(
            "Retrying payment authorization for order {} (attempt {}/3)",
            g.order_no(),
            g.range(2, 3)
        )),
        "checkout.cart_pg_persist" => Body::msg(format!(
            "Cart {} persisted to postgres in {}ms",
            g.uuid(),
            g.range(2, 40)
        )),
        "checkout.pricing_engine" => Body::msg(format!(
            "new-pricing-engine evaluated {} rules for cart {} in {}us",
            g.range(3, 40),
            g.uuid(),
            g.range(80, 4000)
        )),
        "checkout.pg_pool_high" => {
            let used = g.range(16, 20);
            Body::msg(format!(
                "HikariPool-2 (cart-pg) - pool usage at {}% ({used}/20 connections)",
                used * 5
            ))
        }
        "checkout.deprecated_config" => Body::msg(
            "Config key 'cart.redis.ttl' is deprecated and ignored; use 'cart.store.ttl' instead"
                .to_string(),
        ),
        "checkout.startup" => Body::msg(format!(
            "Started CheckoutApplication in {}.{} seconds (process running for {}.{})",
            g.range(11, 19),
            g.range(100, 999),
            g.range(20, 24),
            g.range(100, 999)
        )),
        "payments.charge_ok" => {
            let rid = g.request_id();
            Body::msg(format!(
                "Charge ch_{} succeeded for customer cus_{}: {}.{:02} {}",
                g.alnum(24),
                g.alnum(14),
                g.range(1, 900),
                g.range(0, 99),
                g.pick(CURRENCIES)
            ))
            .rid(rid)
        }
        "payments.api_post" => {
            let rid = g.request_id();
            Body::msg(format!(
                "POST /v1/charges 201 {}ms (request_id={rid})",
                g.range(40, 900)
            ))
            .rid(rid)
        }
        "payments.fx_cache" => Body::msg(format!(
            "Loaded {} FX rates from cache (age {}s)",
            g.range(30, 42),
            g.range(1, 300)
        )),
        "payments.refund_queued" => Body::msg(format!(
            "Refund rf_{} queued for payment pay_{}",
            g.alnum(14),
            g.alnum(14)
        )),
        "payments.webhook_slow" => Body::msg(format!(
            "Webhook delivery to https://hooks.merchant{}.example/payments took {}.{}s, exceeding 2s budget",
            g.range(1, 60),
            g.range(2, 9),
            g.range(0, 9)
        )),
        "payments.ledger_ok" => Body::msg(format!(
            "Ledger batch {} reconciled: {} entries",
            g.range(18000, 19999),
            g.range(20, 500)
        )),
        "payments.decimal_ctx" => Body::msg(format!(
            "Using decimal context prec=28 rounding=ROUND_HALF_EVEN for ledger batch {}",
            g.range(18000, 19999)
        )),
        "payments.fx_fallback" => Body::msg(format!(
            "Falling back to legacy FX provider for {}: primary returned stale rates (age {}s)",
            g.pick(CURRENCIES),
            g.range(301, 1800)
        )),
        "payments.startup" => Body::msg(format!("Booting worker with pid: {}", g.range(7, 64))),
        "search.query" => {
            let rid = g.request_id();
            Body::msg(format!(
                "search q=\"{}\" hits={} took={} page={} request_id={rid}",
                g.pick(QUERIES),
                g.range(0, 4000),
                g.go_dur(4, 400),
                g.range(1, 5)
            ))
            .rid(rid)
        }
        "search.cache_hit" => Body::msg(format!("cache hit for key search:{}", g.hex(16))),
        "search.indexed" => Body::msg(format!(
            "indexed {} documents into products-v{} in {}",
            g.range(100, 5000),
            if c.minute >= 85.0 { 8 } else { 7 },
            g.go_dur(200, 9000)
        )),
        "search.indexer_stats" => Body::msg(format!(
            "indexer stats: docs={} updated={} errors=0 lag={}",
            g.range(180_000, 190_000),
            g.range(0, 400),
            g.go_dur(10, 3000)
        )),
        "search.ranking" => Body::msg(format!(
            "ranking: applied {} boosts for request {}",
            g.range(0, 12),
            g.request_id()
        )),
        "search.slow_query" => Body::msg(format!(
            "slow query q=\"{}\" took {} (hits={})",
            g.pick(QUERIES),
            g.go_dur(1000, 4000),
            g.range(0, 4000)
        )),
        "search.facet_truncated" => {
            let rid = g.request_id();
            Body::msg(format!(
                "facet \"{}\" has {} buckets, truncating to 100 (request_id={rid})",
                g.pick(&["brand", "color", "size", "seller"]),
                g.range(101, 900)
            ))
            .rid(rid)
        }
        "search.startup" => Body::msg(format!(
            "search service {OLD_VERSION} listening on :8080 (GOMAXPROCS={})",
            g.range(2, 8)
        )),
        "gateway.access" => {
            let (method, path) = gateway_request(g);
            let status = g.pick(&[200, 200, 200, 200, 200, 201, 204, 301, 304, 404]);
            let up = g.pod_ip(Service::Checkout, t);
            Body::msg(format!(
                "{} \"{method} {path} HTTP/1.1\" {status} {} rt={}.{:03} upstream={up}:8080",
                g.client_ip(c),
                g.range(0, 48000),
                g.range(0, 1),
                g.range(1, 999)
            ))
        }
        "gateway.keepalive" => Body::msg(format!(
            "*{} client {} closed keepalive connection",
            g.range(1000, 999_999),
            g.client_ip(c)
        )),
        "gateway.buffered" => {
            let (method, path) = gateway_request(g);
            let up = format!("http://{}:8080", g.pod_ip(Service::Search, t));
            let client = g.client_ip(c);
            Body::msg(format!(
                "*{} an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/{}/{:02}/{:010} while reading upstream, {}",
                g.range(1000, 999_999),
                g.range(0, 9),
                g.range(0, 99),
                g.range(1, 9_999_999_999),
                nginx_tail(&client, &method, &path, &up)
            ))
        }
        "gateway.reload" => Body::msg(format!(
            "signal 1 (SIGHUP) received from {}, reconfiguring",
            g.range(1, 40)
        )),
        "gateway.startup" => Body::msg(format!("start worker process {}", g.range(20, 90))),
        "auth.login_ok" => {
            let rid = g.request_id();
            Body::msg(format!(
                "User '{}' logged in from {} (method=password, mfa={})",
                g.user(c),
                g.client_ip(c),
                g.chance(0.4)
            ))
            .rid(rid)
        }
        "auth.token_issued" => Body::msg(format!(
            "Issued access token for sub={} (expires_in=900s, jti={})",
            g.user(c),
            g.uuid()
        )),
        "auth.jwks_refresh" => Body::msg(format!("JWKS cache refreshed: {} keys", g.range(2, 4))),
        "auth.session_extended" => {
            Body::msg(format!("Session {} extended for {}", g.hex(32), g.user(c)))
        }
        "auth.health" => Body::msg(format!(
            "Health check ok: 0 errors in last 60s, ldap latency {}ms",
            g.range(2, 40)
        )),
        "auth.password_expiring" => Body::msg(format!(
            "Password for user '{}' expires in {} days",
            g.user(c),
            g.range(1, 14)
        )),
        "auth.rate_limit" => Body::msg(format!(
            "Rate limiting login attempts from {}: {} attempts in 60s",
            g.client_ip(c),
            g.range(20, 80)
        )),
        "auth.unknown_client" => Body::msg(format!(
            "Unknown client_id '{}' presented by {}; treating as public client",
            g.pick(&["mobile-app-v2", "partner-portal", "ios-beta"]),
            g.client_ip(c)
        )),
        "auth.startup" => Body::msg(format!(
            "auth listening on 0.0.0.0:8443 (version {OLD_VERSION})"
        )),
        other => unreachable!("no renderer for line {other}"),
    }
}

fn go_panic_trace(g: &mut Gen, inner: &[(&str, &str, u32)]) -> Trace {
    let mut tr = Trace::new(format!("goroutine {} [running]:", g.range(40, 250_000)));
    tr.line("net/http.(*conn).serve.func1()")
        .line("\t/usr/local/go/src/net/http/server.go:1947 +0xbe")
        .line(format!("panic({{0x{}, 0x{}}})", g.hex(7), g.hex(7)))
        .line("\t/usr/local/go/src/runtime/panic.go:785 +0x132");
    for (func, file, l) in inner {
        tr.line(format!(
            "{func}(0xc000{}, {{0xc000{}, 0x{:x}}})",
            g.hex(6),
            g.hex(6),
            g.range(1, 40)
        ))
        .line(format!("\t{file}:{l} +0x{:x}", g.range(0x10, 0x4ff)));
    }
    tr.line(format!(
        "net/http.HandlerFunc.ServeHTTP(0xc000{}, {{0x{}, 0xc000{}}}, 0xc000{})",
        g.hex(6),
        g.hex(7),
        g.hex(6),
        g.hex(6)
    ))
    .line("\t/usr/local/go/src/net/http/server.go:2220 +0x29")
    .line("created by net/http.(*Server).Serve in goroutine 1")
    .line("\t/usr/local/go/src/net/http/server.go:3360 +0x485")
    .done()
}

fn render_error(g: &mut Gen, id: &str, c: &Ctx) -> Body {
    let t = c.t;
    let v2 = c.v2;
    match id {
        "checkout.payment_auth_timeout" => {
            let rid = g.request_id();
            // 2.0.0 lowered the read timeout from 5 s to 3 s.
            let ms = if v2 {
                g.range(3000, 3030)
            } else {
                g.range(5000, 5040)
            };
            let retry = g.chance(0.3);
            let mut tr = Trace::new("java.net.SocketTimeoutException: Read timed out");
            tr.java(
                &[
                    "java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)",
                    "java.base/sun.nio.ch.NioSocketImpl.implRead(NioSocketImpl.java:314)",
                    "java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)",
                    "org.apache.hc.core5.http.impl.io.SessionInputBufferImpl.fillBuffer(SessionInputBufferImpl.java:149)",
                    "com.shop.checkout.PaymentClient.authorize(PaymentClient.java:142|157)",
                ],
                v2,
            );
            if retry {
                tr.java(
                    &["com.shop.checkout.CheckoutService.retryAuthorization(CheckoutService.java:131|140)"],
                    v2,
                );
            }
            tr.java(
                &[
                    "com.shop.checkout.CheckoutService.placeOrder(CheckoutService.java:88|97)",
                    "com.shop.checkout.web.CheckoutController.submit(CheckoutController.java:64)",
                ],
                v2,
            )
            .line(format!("\t... {} more", if retry { 86 } else { 87 }));
            Body::msg(format!(
                "Payment authorization failed for order {} after {ms}ms (request_id={rid})",
                g.order_no()
            ))
            .rid(rid)
            .err("Read timed out")
            .trace(tr.done())
        }
        "checkout.inventory_rejected" => {
            let qty = g.range(1, 6);
            Body::msg(format!(
                "Inventory reservation rejected for sku SKU-{}-{}-{} qty={qty}: insufficient stock (available={}, warehouse={})",
                g.range(10000, 99999),
                g.pick(COLORS),
                g.range(36, 46),
                g.range(0, qty - 1),
                g.pick(WAREHOUSES)
            ))
        }
        "checkout.redis_timeout" => {
            let ip = format!("10.0.9.{}", g.pick(&[11, 12, 13]));
            let ms = if v2 {
                g.range(500, 520)
            } else {
                g.range(250, 262)
            };
            let mut tr = Trace::new(format!(
                "io.lettuce.core.RedisConnectionException: Unable to connect to {ip}/<unresolved>:6379"
            ));
            tr.java(
                &[
                    "io.lettuce.core.RedisConnectionException.create(RedisConnectionException.java:78)",
                    "io.lettuce.core.AbstractRedisClient.getConnection(AbstractRedisClient.java:350)",
                    "io.lettuce.core.RedisClient.connect(RedisClient.java:216)",
                    "com.shop.checkout.cache.CartCache.get(CartCache.java:71|88)",
                    "com.shop.checkout.CartService.load(CartService.java:45|52)",
                ],
                v2,
            )
            .line(format!(
                "Caused by: io.netty.channel.ConnectTimeoutException: connection timed out after {ms} ms: {ip}/{ip}:6379"
            ))
            .java(
                &["io.netty.channel.epoll.AbstractEpollChannel$AbstractEpollUnsafe$2.run(AbstractEpollChannel.java:615)"],
                v2,
            )
            .line("\t... 9 more");
            Body::msg(format!(
                "timeout connecting to redis at {ip}:6379 after {ms}ms"
            ))
            .err(format!("Unable to connect to {ip}/<unresolved>:6379"))
            .trace(tr.done())
        }
        "checkout.smtp_send_failed" => {
            let host = g.pick(&["smtp.mail.example.net", "smtp2.mail.example.net"]);
            let e = format!("Could not connect to SMTP host: {host}, port: 587, response: -1");
            let mut tr = Trace::new(format!("jakarta.mail.MessagingException: {e}"));
            tr.java(
                &[
                    "org.eclipse.angus.mail.smtp.SMTPTransport.openServer(SMTPTransport.java:2263)",
                    "org.eclipse.angus.mail.smtp.SMTPTransport.protocolConnect(SMTPTransport.java:753)",
                    "jakarta.mail.Service.connect(Service.java:342)",
                    "com.shop.checkout.notify.MailNotifier.send(MailNotifier.java:77|81)",
                    "com.shop.checkout.notify.OrderConfirmationListener.onOrderPlaced(OrderConfirmationListener.java:41)",
                ],
                v2,
            )
            .line("\t... 31 more");
            Body::msg(format!(
                "Failed to send order confirmation to {}: {e}",
                g.email(c)
            ))
            .err(e)
            .trace(tr.done())
        }
        "checkout.optimistic_lock" => {
            let id = g.uuid();
            let ver = g.range(2, 60);
            let e = format!(
                "Row was updated or deleted by another transaction (or unsaved-value mapping was incorrect) : [com.shop.checkout.model.Cart#{id}]"
            );
            let coupon = g.chance(0.4);
            let mut tr = Trace::new(format!(
                "org.springframework.orm.ObjectOptimisticLockingFailureException: {e}"
            ));
            tr.java(
                &[
                    "org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:325)",
                    "com.shop.checkout.CartRepository.save(CartRepository.java:58|63)",
                ],
                v2,
            );
            if coupon {
                tr.java(
                    &["com.shop.checkout.CartService.applyCoupon(CartService.java:167|181)"],
                    v2,
                );
            } else {
                tr.java(
                    &["com.shop.checkout.CartService.addItem(CartService.java:112|120)"],
                    v2,
                );
            }
            tr.line(format!(
                "Caused by: org.hibernate.StaleObjectStateException: {e}"
            ))
            .java(
                &["org.hibernate.persister.entity.AbstractEntityPersister.check(AbstractEntityPersister.java:2563)"],
                v2,
            )
            .line(format!("\t... {} more", if coupon { 54 } else { 52 }));
            Body::msg(format!(
                "Optimistic lock failure on com.shop.checkout.model.Cart@{} (id={id}): expected version {ver} but was {}",
                g.hex(8),
                ver + 1
            ))
            .err(e)
            .trace(tr.done())
        }
        "checkout.postgres_timeout" => {
            let ip = format!("10.0.10.{}", g.pick(&[5, 6]));
            let ms = g.range(3000, 3015);
            let mut tr =
                Trace::new("org.postgresql.util.PSQLException: The connection attempt failed.");
            tr.java(
                &[
                    "org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:358)",
                    "org.postgresql.jdbc.PgConnection.<init>(PgConnection.java:273)",
                    "com.zaxxer.hikari.pool.HikariPool.createPoolEntry(HikariPool.java:476)",
                    "com.shop.checkout.store.PgCartStore.load(PgCartStore.java:64)",
                    "com.shop.checkout.cache.CartCache.get(CartCache.java:97)",
                ],
                true,
            )
            .line("Caused by: java.net.SocketTimeoutException: Connect timed out")
            .java(
                &["java.base/sun.nio.ch.NioSocketImpl.timedFinishConnect(NioSocketImpl.java:546)"],
                true,
            )
            .line("\t... 41 more");
            Body::msg(format!(
                "timeout connecting to postgres at {ip}:5432 after {ms}ms"
            ))
            .err("The connection attempt failed.")
            .trace(tr.done())
        }
        "checkout.cart_totals_arithmetic" => {
            let e = "Non-terminating decimal expansion; no exact representable decimal result.";
            let mut tr = Trace::new(format!("java.lang.ArithmeticException: {e}"));
            tr.java(
                &[
                    "java.base/java.math.BigDecimal.divide(BigDecimal.java:1780)",
                    "com.shop.checkout.pricing.CartTotals.splitDiscount(CartTotals.java:212)",
                    "com.shop.checkout.pricing.CartTotals.compute(CartTotals.java:97)",
                    "com.shop.checkout.CartService.totals(CartService.java:203)",
                    "com.shop.checkout.web.CartController.get(CartController.java:58)",
                ],
                true,
            )
            .line("\t... 94 more");
            let rid = g.request_id();
            Body::msg(format!(
                "Failed to compute totals for cart {} (request_id={rid})",
                g.uuid()
            ))
            .rid(rid)
            .err(e)
            .trace(tr.done())
        }
        "payments.card_declined" => {
            let rid = g.request_id();
            let e = format!("Request req_{}: Your card was declined.", g.alnum(14));
            let mut tr = Trace::new("Traceback (most recent call last):");
            tr.python(
                &[
                    "/app/payments/charges.py|142|149|create_charge|charge = self.processor.charges.create(amount=amount, currency=currency, source=source)",
                    "/usr/local/lib/python3.12/site-packages/stripe/_api_resource.py|156|156|_static_request|return requestor.request(method_, url_, params=params, options=request_options)",
                    "/usr/local/lib/python3.12/site-packages/stripe/_api_requestor.py|197|197|request|resp = requestor._interpret_response(rbody, rcode, rheaders)",
                ],
                v2,
            )
            .line(format!("stripe._error.CardError: {e}"));
            Body::msg(format!(
                "Charge ch_{} failed for customer cus_{}: card declined (decline_code={})",
                g.alnum(24),
                g.alnum(14),
                g.pick(DECLINE_CODES)
            ))
            .rid(rid)
            .err(e)
            .trace(tr.done())
        }
        "payments.charge_invalid_amount" => {
            let rid = g.request_id();
            let amount = format!("{}.5", g.range(100, 90_000));
            let e = format!("Request req_{}: Invalid integer: {amount}", g.alnum(14));
            let mut tr = Trace::new("Traceback (most recent call last):");
            tr.python(
                &[
                    "/app/payments/charges.py|142|149|create_charge|charge = self.processor.charges.create(amount=amount, currency=currency, source=source)",
                    "/usr/local/lib/python3.12/site-packages/stripe/_api_resource.py|156|156|_static_request|return requestor.request(method_, url_, params=params, options=request_options)",
                    "/usr/local/lib/python3.12/site-packages/stripe/_api_requestor.py|197|197|request|resp = requestor._interpret_response(rbody, rcode, rheaders)",
                ],
                true,
            )
            .line(format!("stripe._error.InvalidRequestError: {e}"));
            Body::msg(format!(
                "Charge ch_{} failed for customer cus_{}: invalid amount {amount} (must be an integer in the smallest currency unit)",
                g.alnum(24),
                g.alnum(14)
            ))
            .rid(rid)
            .err(e)
            .trace(tr.done())
        }
        "payments.processor_503" => {
            let rid = g.request_id();
            let e = "503 Server Error: Service Unavailable for url: https://api.processor.example/v1/charges";
            let mut tr = Trace::new("Traceback (most recent call last):");
            tr.python(
                &[
                    "/app/payments/processor_client.py|88|91|post|resp.raise_for_status()",
                    "/usr/local/lib/python3.12/site-packages/requests/models.py|1024|1024|raise_for_status|raise HTTPError(http_error_msg, response=self)",
                ],
                v2,
            )
            .line(format!("requests.exceptions.HTTPError: {e}"));
            Body::msg(format!(
                "Card processor returned HTTP 503 for charge ch_{} (attempt {}/3, elapsed {}.{:03}s)",
                g.alnum(24),
                g.range(1, 3),
                g.range(0, 4),
                g.range(0, 999)
            ))
            .rid(rid)
            .err(e)
            .trace(tr.done())
        }
        "payments.idempotency_conflict" => {
            let rid = g.request_id();
            Body::msg(format!(
                "Idempotency key '{}' reused with a different request body by merchant acct_{}",
                g.uuid(),
                g.alnum(16)
            ))
            .rid(rid)
        }
        "payments.db_pool_exhausted" => {
            let e = "QueuePool limit of size 20 overflow 10 reached, connection timed out, timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)";
            let mut tr = Trace::new("Traceback (most recent call last):");
            tr.python(
                &[
                    "/app/payments/refunds.py|77|84|persist|session.commit()",
                    "/usr/local/lib/python3.12/site-packages/sqlalchemy/orm/session.py|2028|2028|commit|trans.commit(_to_root=True)",
                    "/usr/local/lib/python3.12/site-packages/sqlalchemy/pool/impl.py|169|169|_do_get|raise exc.TimeoutError(",
                ],
                v2,
            )
            .line(format!("sqlalchemy.exc.TimeoutError: {e}"));
            Body::msg(format!(
                "Could not persist refund rf_{} for payment pay_{}: QueuePool limit of size 20 overflow 10 reached, connection timed out, timeout 30.00",
                g.alnum(14),
                g.alnum(14)
            ))
            .err(e)
            .trace(tr.done())
        }
        "payments.ledger_type_error" => {
            let e = "unsupported operand type(s) for +: 'decimal.Decimal' and 'float'";
            let mut tr = Trace::new("Traceback (most recent call last):");
            tr.python(
                &[
                    "/app/payments/workers/reconcile.py|58|58|run|ledger.reconcile_batch(batch_id)",
                    "/app/payments/ledger.py|214|214|reconcile_batch|total = total + self._convert(entry)",
                ],
                true,
            )
            .line(format!("TypeError: {e}"));
            Body::msg(format!(
                "Ledger reconciliation failed for batch {} (merchant acct_{}): {e}",
                g.range(18000, 19999),
                g.alnum(16)
            ))
            .err(e)
            .trace(tr.done())
        }
        "search.es_timeout" => {
            let rid = g.request_id();
            Body::msg(format!(
                "elasticsearch query timed out after {} on index products-v{} (shard {}, node es-data-{})",
                g.go_dur(2000, 2600),
                if c.minute >= 85.0 { 8 } else { 7 },
                g.range(0, 5),
                g.range(0, 3)
            ))
            .rid(rid)
            .err("context deadline exceeded")
        }
        "search.recs_deadline" => {
            let rid = g.request_id();
            Body::msg(format!(
                "recommendations call failed after {}: rpc error: code = DeadlineExceeded desc = context deadline exceeded (request_id={rid})",
                g.go_dur(800, 806)
            ))
            .rid(rid)
            .err("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
        }
        "search.nil_panic" => {
            let client = format!("{}:{}", g.pod_ip(Service::Gateway, t), g.port());
            let tr = go_panic_trace(
                g,
                &[
                    (
                        "github.com/shop/search/internal/ranking.(*Scorer).Boost",
                        "/app/internal/ranking/scorer.go",
                        88,
                    ),
                    (
                        "github.com/shop/search/internal/api.(*Handler).Search",
                        "/app/internal/api/handler.go",
                        142,
                    ),
                ],
            );
            let e = "runtime error: invalid memory address or nil pointer dereference";
            Body::msg(format!("http: panic serving {client}: {e}"))
                .err(e)
                .trace(tr)
        }
        "search.index_out_of_range" => {
            let client = format!("{}:{}", g.pod_ip(Service::Gateway, t), g.port());
            let len = g.range(1, 6);
            let tr = go_panic_trace(
                g,
                &[
                    (
                        "github.com/shop/search/internal/facets.(*Index).Bucket",
                        "/app/internal/facets/index.go",
                        57,
                    ),
                    (
                        "github.com/shop/search/internal/api.(*Handler).Facets",
                        "/app/internal/api/facets.go",
                        33,
                    ),
                ],
            );
            let e = format!("runtime error: index out of range [{len}] with length {len}");
            Body::msg(format!("http: panic serving {client}: {e}"))
                .err(e)
                .trace(tr)
        }
        "gateway.upstream_timeout" => {
            let (method, path) = gateway_request(g);
            let up = format!("http://{}:8080", g.pod_ip(Service::Search, t));
            let client = g.client_ip(c);
            Body::msg(format!(
                "*{} upstream timed out (110: Connection timed out) while reading response header from upstream, {}",
                g.range(1000, 999_999),
                nginx_tail(&client, &method, &path, &up)
            ))
        }
        "gateway.connect_refused" => {
            let path = "/api/v1/checkout";
            let up = format!("http://{}:8080", g.pod_ip(Service::Checkout, t));
            let client = g.client_ip(c);
            Body::msg(format!(
                "*{} connect() failed (111: Connection refused) while connecting to upstream, {}",
                g.range(1000, 999_999),
                nginx_tail(&client, "POST", path, &up)
            ))
        }
        "gateway.no_live_upstreams" => {
            let path = format!("/api/v1/recommendations/{}", g.range(1000, 99999));
            let client = g.client_ip(c);
            Body::msg(format!(
                "*{} no live upstreams while connecting to upstream, {}",
                g.range(1000, 999_999),
                nginx_tail(&client, "GET", &path, "http://recommendations")
            ))
        }
        "gateway.upstream_big_header" => {
            let path = format!("/api/v2/cart/{}", g.uuid());
            let up = format!(
                "http://{}:8080",
                g.pod_ip_of(Service::Checkout, NEW_VERSION, t)
            );
            let client = g.client_ip(c);
            Body::msg(format!(
                "*{} upstream sent too big header while reading response header from upstream, {}",
                g.range(1000, 999_999),
                nginx_tail(&client, "GET", &path, &up)
            ))
        }
        "auth.login_failed" => {
            let rid = g.request_id();
            Body::msg(format!(
                "Login failed for user '{}' from {}: invalid credentials (attempt {} of 5)",
                g.user(c),
                g.client_ip(c),
                g.range(1, 5)
            ))
            .rid(rid)
            .err("invalid credentials")
        }
        "auth.jwt_expired" => Body::msg(format!(
            "JWT validation failed: token expired {}s ago (sub={}, jti={})",
            g.range(1, 3600),
            g.user(c),
            g.uuid()
        ))
        .err("jwt expired"),
        "auth.ldap_timeout" => {
            let ip = format!("10.0.8.{}", g.pick(&[5, 6]));
            Body::msg(format!(
                "LDAP bind as cn={},ou=people,dc=shop,dc=example failed: dial tcp {ip}:636: i/o timeout",
                g.user(c)
            ))
            .err("i/o timeout")
        }
        other => unreachable!("no renderer for error type {other}"),
    }
}

pub fn error_type(id: &str) -> Option<&'static ErrorType> {
    ERROR_TYPES.iter().find(|e| e.id == id)
}

fn shaped_type(id: &str) -> bool {
    SURGES.iter().chain(BURSTS).any(|s| s.type_id == id)
}

/// Who emitted a record and what it is, apart from its rendered body.
struct Origin {
    service: Service,
    severity: Severity,
    version: &'static str,
    logger: &'static str,
    type_id: &'static str,
    exception: &'static str,
}

fn push_record(
    g: &mut Gen,
    records: &mut Vec<Record>,
    t: i64,
    o: Origin,
    pod: Option<usize>,
    body: Body,
) {
    let pod = pod.unwrap_or_else(|| g.pod_index(o.service, o.version, t));
    // Most records ship within a couple of seconds; a few lag more.
    let jitter = if g.chance(0.03) {
        g.range(2_500_000, 5_000_000)
    } else {
        g.range(0, 2_500_000)
    };
    records.push(Record {
        time_us: t,
        arrival_us: t + jitter as i64,
        service: o.service,
        severity: o.severity,
        version: o.version,
        pod: g.pods[pod].name.clone(),
        logger: o.logger,
        message: body.message,
        exception: o.exception,
        error_message: body.error_message,
        trace: body.trace,
        request_id: body.request_id,
        type_id: o.type_id,
    });
}

impl Scenario {
    /// Builds the whole scenario in memory; the same config gives the same
    /// records, byte for byte.
    pub fn generate(config: &Config) -> Scenario {
        let start = start_us();
        let end = start + i64::from(config.minutes) * MINUTE_US;
        let at = |minute: f64| start + (minute * MINUTE_US as f64) as i64;
        let mut g = Gen {
            rng: StdRng::seed_from_u64(config.seed),
            start,
            pods: Vec::new(),
            clients: Vec::new(),
        };
        for _ in 0..40 {
            let net = g.pick(&["203.0.113", "198.51.100", "192.0.2"]);
            let ip = format!("{net}.{}", g.range(1, 254));
            g.clients.push(ip);
        }

        // Pods: the canary brings new replica sets at the release; a node
        // drain at minute 72 replaces one pod of every other service.
        let far = i64::MAX;
        let mut startups: Vec<(usize, i64)> = Vec::new();
        for service in Service::ALL {
            let n = match service {
                Service::Checkout | Service::Search => 3,
                _ => 2,
            };
            for i in 0..n {
                let until = if !service.is_canary() && i == 0 {
                    at(72.0)
                } else {
                    far
                };
                g.new_pod(service, OLD_VERSION, i64::MIN, until);
            }
            if service.is_canary() {
                for i in 0..n {
                    let from = at(RELEASE_MINUTE) + i as i64 * 20_000_000;
                    g.new_pod(service, NEW_VERSION, from, far);
                    startups.push((g.pods.len() - 1, from));
                }
            } else {
                g.new_pod(service, OLD_VERSION, at(72.0), far);
                startups.push((g.pods.len() - 1, at(72.0)));
            }
        }

        let mut records = Vec::new();

        // Background: INFO/DEBUG/NOTICE/WARN, about 96 % of the volume.
        let total_share: f64 = Service::ALL.iter().map(|s| s.background_share()).sum();
        for t in g.poisson(start, end, config.rate * 0.96 * 60.0) {
            let mut x = g.unit() * total_share;
            let mut service = Service::Auth;
            for s in Service::ALL {
                x -= s.background_share();
                if x < 0.0 {
                    service = s;
                    break;
                }
            }
            let version = g.version_for(service, t);
            let c = Ctx {
                t,
                minute: g.minute(t),
                v2: version == NEW_VERSION,
            };
            let li = pick_line(&mut g, service, &c);
            let l = LINES[li];
            let body = render_line(&mut g, l.id, &c);
            let origin = Origin {
                service,
                severity: l.severity,
                version,
                logger: l.logger,
                type_id: l.id,
                exception: "",
            };
            push_record(&mut g, &mut records, t, origin, None, body);
        }

        for (pod, t) in startups {
            if t >= end {
                continue;
            }
            let service = g.pods[pod].service;
            let version = g.pods[pod].version;
            let c = Ctx {
                t,
                minute: g.minute(t),
                v2: version == NEW_VERSION,
            };
            let mut ids = vec![format!("{}.startup", service.name())];
            if service == Service::Checkout && c.v2 {
                ids.push("checkout.deprecated_config".to_string());
            }
            for (k, id) in ids.iter().enumerate() {
                let l = *LINES
                    .iter()
                    .find(|l| l.id == id.as_str())
                    .expect("startup line");
                let tk = t + k as i64 * 150_000;
                let body = render_line(&mut g, l.id, &c);
                let origin = Origin {
                    service,
                    severity: l.severity,
                    version,
                    logger: l.logger,
                    type_id: l.id,
                    exception: "",
                };
                // Startup lines come from the pod that starts.
                push_record(&mut g, &mut records, tk, origin, Some(pod), body);
            }
        }

        let scale = config.rate / REFERENCE_RATE;
        for def in ERROR_TYPES {
            let mut times = match def.kind {
                Kind::Known => {
                    let floor = if shaped_type(def.id) {
                        SHAPED_FLOOR_PER_MIN
                    } else {
                        KNOWN_FLOOR_PER_MIN
                    };
                    let rate = (def.per_min * scale).max(floor);
                    let mut times = g.poisson(start, end, rate);
                    for s in SURGES.iter().chain(BURSTS).filter(|s| s.type_id == def.id) {
                        let (a, b) = (at(s.start_minute), at(s.end_minute).min(end));
                        if a < b {
                            times.extend(g.poisson(a, b, rate * (s.factor - 1.0)));
                        }
                    }
                    // A known type must be learnable during warm-up.
                    let warm_end = at(WARMUP_MINUTES).min(end);
                    let mut in_warmup = times.iter().filter(|&&t| t < warm_end).count();
                    while in_warmup < MIN_WARMUP_EVENTS && warm_end > start + MINUTE_US {
                        let t = g.range((start + MINUTE_US) as u64, (warm_end - MINUTE_US) as u64)
                            as i64;
                        times.push(t);
                        in_warmup += 1;
                    }
                    times
                }
                Kind::New => {
                    let first = at(def.first_minute) + g.range(0, 40_000_000) as i64;
                    if first >= end {
                        continue;
                    }
                    let peak = (def.per_min * scale).max(NEW_FLOOR_PER_MIN);
                    let mut times = vec![first];
                    for t in g.poisson(first, end, peak) {
                        let share = match def.driver {
                            Driver::Constant => 1.0,
                            Driver::Canary(_) => canary_share(g.minute(t)),
                        };
                        if g.chance(share) {
                            times.push(t);
                        }
                    }
                    // "Several times" even at a low rate: top up in the
                    // 25 minutes after the first event.
                    let top_end = (first + 25 * MINUTE_US).min(end);
                    while times.len() < MIN_NEW_EVENTS && top_end > first + 1 {
                        times.push(g.range(first as u64 + 1, top_end as u64 - 1) as i64);
                    }
                    times
                }
            };
            times.sort_unstable();
            for t in times {
                let version = if def.v2_only {
                    NEW_VERSION
                } else {
                    g.version_for(def.service, t)
                };
                let c = Ctx {
                    t,
                    minute: g.minute(t),
                    v2: version == NEW_VERSION,
                };
                let body = render_error(&mut g, def.id, &c);
                let origin = Origin {
                    service: def.service,
                    severity: def.severity,
                    version,
                    logger: def.logger,
                    type_id: def.id,
                    exception: def.exception,
                };
                push_record(&mut g, &mut records, t, origin, None, body);
            }
        }

        records.sort_by_key(|r| r.arrival_us);
        Scenario {
            config: config.clone(),
            start_us: start,
            end_us: end,
            records,
        }
    }

    /// Appends the record's JSON line (with '\n') in its service's style.
    pub fn json_line(r: &Record, out: &mut String) {
        let level = json_level(r.service, r.severity);
        let mut o = JsonObj::new(out);
        match r.service {
            Service::Checkout => {
                o.str("@timestamp", &ts(r.time_us, TsStyle::Ms));
                o.str("log.level", level);
                o.str("message", &r.message);
                o.str("ecs.version", "8.11.0");
                o.str("service.name", r.service.name());
                o.str("service.version", r.version);
                o.str("host.name", &r.pod);
                o.str("log.logger", r.logger);
                if let Some(rid) = &r.request_id {
                    o.str("trace.id", rid);
                }
                if !r.exception.is_empty() {
                    o.str("error.type", r.exception);
                }
                if let Some(e) = &r.error_message {
                    o.str("error.message", e);
                }
                if let Some(tr) = &r.trace {
                    o.str("error.stack_trace", tr);
                }
            }
            Service::Auth => {
                o.str("@timestamp", &ts(r.time_us, TsStyle::Ms));
                o.open("log");
                o.str("level", level);
                o.str("logger", r.logger);
                o.close();
                o.str("message", &r.message);
                o.open("service");
                o.str("name", r.service.name());
                o.str("version", r.version);
                o.close();
                o.open("host");
                o.str("name", &r.pod);
                o.close();
                if let Some(rid) = &r.request_id {
                    o.open("trace");
                    o.str("id", rid);
                    o.close();
                }
                if r.severity.is_error() {
                    o.open("error");
                    if !r.exception.is_empty() {
                        o.str("type", r.exception);
                    }
                    if let Some(e) = &r.error_message {
                        o.str("message", e);
                    }
                    o.close();
                }
            }
            Service::Payments => {
                o.str("time", &ts(r.time_us, TsStyle::UsOffset));
                o.str("level", level);
                o.str("logger", r.logger);
                o.str("msg", &r.message);
                o.str("app", r.service.name());
                o.str("version", r.version);
                o.str("pod", &r.pod);
                if let Some(rid) = &r.request_id {
                    o.str("request_id", rid);
                }
                if let Some(tr) = &r.trace {
                    o.str("exception", tr);
                }
            }
            Service::Search => {
                o.str("level", level);
                o.str("ts", &ts(r.time_us, TsStyle::Ms));
                o.str("logger", r.logger);
                o.str("msg", &r.message);
                o.str("service", r.service.name());
                o.str("version", r.version);
                o.str("host", &r.pod);
                if let Some(rid) = &r.request_id {
                    o.str("request_id", rid);
                }
                // zap's `zap.Error(err)` field: a plain string under "error".
                if let Some(e) = &r.error_message {
                    o.str("error", e);
                }
                if let Some(tr) = &r.trace {
                    o.str("stack_trace", tr);
                }
            }
            Service::Gateway => {
                o.str("time", &ts(r.time_us, TsStyle::SecOffset));
                o.str("severity", level);
                o.str("service", r.service.name());
                o.str("version", r.version);
                o.str("host", &r.pod);
                o.str("msg", &r.message);
            }
        }
        o.finish();
        out.push('\n');
    }

    /// Appends the record's text lines (header line plus continuation
    /// lines, each ending in '\n') in its service's style.
    pub fn text_lines(r: &Record, out: &mut String) {
        let level = text_level(r.service, r.severity);
        let _ = match r.service {
            Service::Checkout => write!(
                out,
                "{} [{level}] {} - {}",
                ts(r.time_us, TsStyle::Ms),
                r.logger,
                r.message
            ),
            Service::Payments => write!(
                out,
                "{} {level} payments[{}] {}",
                ts(r.time_us, TsStyle::Sec),
                r.pod,
                r.message
            ),
            Service::Search => write!(out, "{} {level} {}", ts(r.time_us, TsStyle::Us), r.message),
            Service::Gateway => write!(
                out,
                "[{}] [{level}] {}",
                ts(r.time_us, TsStyle::Apache),
                r.message
            ),
            Service::Auth => write!(
                out,
                "{} {level} {}",
                ts(r.time_us, TsStyle::MsOffset),
                r.message
            ),
        };
        out.push('\n');
        if let Some(tr) = &r.trace {
            out.push_str(tr);
            out.push('\n');
        }
    }

    pub fn write_json<W: io::Write>(&self, w: &mut W) -> io::Result<u64> {
        let mut buf = String::with_capacity(4096);
        for r in &self.records {
            buf.clear();
            Self::json_line(r, &mut buf);
            w.write_all(buf.as_bytes())?;
        }
        Ok(self.records.len() as u64)
    }

    /// Writes one service's text log; returns the number of physical lines.
    pub fn write_text<W: io::Write>(&self, service: Service, w: &mut W) -> io::Result<u64> {
        let mut buf = String::with_capacity(4096);
        let mut lines = 0;
        for r in self.records.iter().filter(|r| r.service == service) {
            buf.clear();
            Self::text_lines(r, &mut buf);
            lines += r.text_line_count() as u64;
            w.write_all(buf.as_bytes())?;
        }
        Ok(lines)
    }

    pub fn json_string(&self) -> String {
        let mut v = Vec::new();
        self.write_json(&mut v).expect("writing to memory");
        String::from_utf8(v).expect("utf-8")
    }

    pub fn text_string(&self, service: Service) -> String {
        let mut v = Vec::new();
        self.write_text(service, &mut v).expect("writing to memory");
        String::from_utf8(v).expect("utf-8")
    }

    /// Writes `logs.jsonl`, `text/<service>.log` and `truth.json` under
    /// `dir` as asked; returns the files written with their sizes.
    pub fn write_dir(&self, dir: &Path, json: bool, text: bool) -> io::Result<Vec<(PathBuf, u64)>> {
        use std::fs::{self, File};
        use std::io::{BufWriter, Write};
        let mut written = Vec::new();
        fs::create_dir_all(dir)?;
        let mut finish = |path: PathBuf, w: BufWriter<File>| -> io::Result<()> {
            drop(w.into_inner().map_err(|e| e.into_error())?);
            let size = fs::metadata(&path)?.len();
            written.push((path, size));
            Ok(())
        };
        if json {
            let path = dir.join("logs.jsonl");
            let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            self.write_json(&mut w)?;
            finish(path, w)?;
        }
        if text {
            fs::create_dir_all(dir.join("text"))?;
            for s in Service::ALL {
                let path = dir.join(s.text_file());
                let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
                self.write_text(s, &mut w)?;
                finish(path, w)?;
            }
        }
        let path = dir.join("truth.json");
        let mut w = BufWriter::new(File::create(&path)?);
        serde_json::to_writer_pretty(&mut w, &self.truth(json, text)).map_err(io::Error::other)?;
        w.write_all(b"\n")?;
        finish(path, w)?;
        Ok(written)
    }

    /// The ground truth, as written to `truth.json`.
    pub fn truth(&self, json: bool, text: bool) -> Value {
        let at = |minute: f64| self.start_us + (minute * MINUTE_US as f64) as i64;
        let time = |us: i64| json!({"at": ts(us, TsStyle::Ms), "ms": us.div_euclid(1000)});

        let mut error_types = Vec::new();
        for def in ERROR_TYPES {
            let recs: Vec<&Record> = self
                .records
                .iter()
                .filter(|r| r.type_id == def.id)
                .collect();
            if recs.is_empty() {
                continue;
            }
            let first = recs.iter().map(|r| r.time_us).min().unwrap_or_default();
            let last = recs.iter().map(|r| r.time_us).max().unwrap_or_default();
            let old = recs.iter().filter(|r| r.version == OLD_VERSION).count();
            let warm = recs
                .iter()
                .filter(|r| r.time_us < at(WARMUP_MINUTES))
                .count();
            error_types.push(json!({
                "id": def.id,
                "service": def.service.name(),
                "kind": def.kind.as_str(),
                "level": def.severity.as_str(),
                "logger": def.logger,
                "exception": if def.exception.is_empty() { Value::Null } else { json!(def.exception) },
                "regex": def.regex,
                "first_seen": time(first),
                "last_seen": time(last),
                "count": recs.len(),
                "count_in_warmup": warm,
                "count_by_version": { OLD_VERSION: old, NEW_VERSION: recs.len() - old },
                "about": def.about,
                "only_new_version": def.v2_only,
                "follows_canary_of": match def.driver {
                    Driver::Canary(s) if def.kind == Kind::New => json!(s.name()),
                    _ => Value::Null,
                },
            }));
        }

        let window = |s: &Shape| {
            let (a, b) = (at(s.start_minute), at(s.end_minute));
            let n = |from: i64, to: i64| {
                self.records
                    .iter()
                    .filter(|r| r.type_id == s.type_id && r.time_us >= from && r.time_us < to)
                    .count()
            };
            let len = b - a;
            json!({
                "type": s.type_id,
                "start": time(a),
                "end": time(b),
                "factor": s.factor,
                "count_in_window": n(a, b),
                "count_in_previous_window": n(a - len, a),
            })
        };
        let in_range = |s: &&Shape| at(s.start_minute) < self.end_us;
        let surges: Vec<Value> = SURGES.iter().filter(in_range).map(window).collect();
        let bursts: Vec<Value> = BURSTS.iter().filter(in_range).map(window).collect();

        let mut warn_types = Vec::new();
        for l in LINES.iter().filter(|l| l.severity == Severity::Warn) {
            let recs: Vec<&Record> = self.records.iter().filter(|r| r.type_id == l.id).collect();
            if recs.is_empty() {
                continue;
            }
            let first = recs.iter().map(|r| r.time_us).min().unwrap_or_default();
            warn_types.push(json!({
                "id": l.id,
                "service": l.service.name(),
                "kind": if l.when == When::Always { "known" } else { "new" },
                "regex": l.regex,
                "first_seen": time(first),
                "count": recs.len(),
            }));
        }

        let mut by_level = serde_json::Map::new();
        for sev in Severity::ALL {
            let n = self.records.iter().filter(|r| r.severity == sev).count();
            by_level.insert(sev.as_str().to_string(), json!(n));
        }
        let mut by_service = serde_json::Map::new();
        let mut text_lines = serde_json::Map::new();
        for s in Service::ALL {
            let rs = self.records.iter().filter(|r| r.service == s);
            by_service.insert(s.name().to_string(), json!(rs.clone().count()));
            let lines: usize = rs.map(|r| r.text_line_count()).sum();
            text_lines.insert(s.name().to_string(), json!(lines));
        }
        let errors = self
            .records
            .iter()
            .filter(|r| r.severity.is_error())
            .count();

        let services: Vec<Value> = Service::ALL
            .iter()
            .map(|s| {
                json!({
                    "name": s.name(),
                    "canary": s.is_canary(),
                    "json_style": s.json_style(),
                    "text_style": s.text_style(),
                    "text_file": s.text_file(),
                })
            })
            .collect();
        let steps: Vec<Value> = CANARY_STEPS
            .iter()
            .filter(|(m, _)| at(*m) < self.end_us)
            .map(|(m, share)| json!({"at": ts(at(*m), TsStyle::Ms), "ms": at(*m) / 1000, "share": share}))
            .collect();

        json!({
            "schema": 1,
            "generator": {
                "seed": self.config.seed,
                "minutes": self.config.minutes,
                "rate": self.config.rate,
            },
            "files": {
                "json": if json { json!("logs.jsonl") } else { Value::Null },
                "text": if text { json!(Service::ALL.iter().map(|s| s.text_file()).collect::<Vec<_>>()) } else { Value::Null },
            },
            "start": time(self.start_us),
            "end": time(self.end_us),
            "warmup_end": time(at(WARMUP_MINUTES)),
            "release": {
                "time": time(at(RELEASE_MINUTE)),
                "from_version": OLD_VERSION,
                "to_version": NEW_VERSION,
                "canary_services": Service::ALL.iter().filter(|s| s.is_canary()).map(|s| s.name()).collect::<Vec<_>>(),
                "canary_steps": steps,
            },
            "services": services,
            "error_types": error_types,
            "surges": surges,
            "bursts": bursts,
            "warn_types": warn_types,
            "counts": {
                "records": self.records.len(),
                "errors": errors,
                "by_level": by_level,
                "by_service": by_service,
                "text_lines": text_lines,
            },
        })
    }
}

#[derive(Clone, Copy)]
enum TsStyle {
    /// 2026-11-02T10:00:01.123Z
    Ms,
    /// 2026-11-02T10:00:01.123+00:00
    MsOffset,
    /// 2026-11-02T10:00:01.123456Z
    Us,
    /// 2026-11-02T10:00:01.123456+00:00
    UsOffset,
    /// 2026-11-02T10:00:01Z
    Sec,
    /// 2026-11-02T10:00:01+00:00
    SecOffset,
    /// Mon Nov 02 10:00:01.123456 2026
    Apache,
}

fn ts(us: i64, style: TsStyle) -> String {
    let d: DateTime<Utc> = DateTime::from_timestamp_micros(us).expect("time in range");
    let f = match style {
        TsStyle::Ms => "%Y-%m-%dT%H:%M:%S%.3fZ",
        TsStyle::MsOffset => "%Y-%m-%dT%H:%M:%S%.3f+00:00",
        TsStyle::Us => "%Y-%m-%dT%H:%M:%S%.6fZ",
        TsStyle::UsOffset => "%Y-%m-%dT%H:%M:%S%.6f+00:00",
        TsStyle::Sec => "%Y-%m-%dT%H:%M:%SZ",
        TsStyle::SecOffset => "%Y-%m-%dT%H:%M:%S+00:00",
        TsStyle::Apache => "%a %b %d %H:%M:%S%.6f %Y",
    };
    d.format(f).to_string()
}

/// Hand-rolled JSON object writer: keeps the key order of every style fixed
/// (serde_json's `Map` sorts keys unless another crate in the build turns on
/// its `preserve_order` feature) and allocates nothing per field.
struct JsonObj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonObj<'a> {
    fn new(out: &'a mut String) -> JsonObj<'a> {
        out.push('{');
        JsonObj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_json_str(self.out, k);
        self.out.push(':');
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_json_str(self.out, v);
    }

    fn open(&mut self, k: &str) {
        self.key(k);
        self.out.push('{');
        self.first = true;
    }

    fn close(&mut self) {
        self.out.push('}');
        self.first = false;
    }

    fn finish(self) {
        self.out.push('}');
    }
}

pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\t' => "\\t",
            b'\r' => "\\r",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

// ---------------------------------------------------------------------------
// Bench mode: many ECS lines fast, no truth.

#[derive(Clone, Copy)]
enum Var {
    Int,
    Small,
    Ms,
    Uuid,
    Ip,
    Port,
    User,
    Hex,
    Host,
    Email,
    Word,
}

enum Part {
    Lit(String),
    Var(Var),
}

struct Template {
    service: usize,
    parts: Vec<Part>,
    exception: &'static str,
    trace: bool,
}

#[rustfmt::skip]
const BENCH_SERVICES: &[&str] = &[
    "checkout", "payments", "search", "gateway", "auth", "catalog", "cart", "orders",
    "shipping", "pricing", "recommendations", "notifications", "inventory",
];
#[rustfmt::skip]
const BENCH_SUBJECTS: &[&str] = &[
    "order", "cart", "payment", "invoice", "shipment", "refund", "coupon", "session", "token",
    "profile", "address", "wishlist", "review", "product", "price", "stock", "warehouse",
    "carrier", "voucher", "subscription",
];
/// `{s}` is the subject; `<x>` a variable part.
const BENCH_ERRORS: &[&str] = &[
    "failed to load {s} <uuid> from <host>:<port>",
    "timeout while updating {s} <int> after <ms>ms",
    "could not serialize {s} <uuid>: unexpected token at offset <n>",
    "{s} <int> not found (request_id=<hex>)",
    "connection reset by peer while fetching {s} from <ip>:<port>",
    "invalid state for {s} <int>: expected <n> but was <n>",
    "{s} lock held by <user> for <ms>ms, giving up",
    "permission denied for <user> on {s} <uuid>",
    "upstream <ip>:<port> returned 502 for {s} <int>",
    "retries exhausted for {s} <uuid> after <n> attempts",
    "duplicate key value violates unique constraint \"{s}_pkey\" (id=<int>)",
    "{s} validation failed: field '<word>' is required",
    "deadlock detected while committing {s} <int>",
    "{s} checksum mismatch: <hex> != <hex>",
    "quota exceeded for <email> on {s} (<int>/<n>)",
];
const BENCH_INFOS: &[&str] = &[
    "GET /api/v1/{s}s/<int> completed in <ms>ms status=200",
    "POST /api/v1/{s}s completed in <ms>ms status=201 (request_id=<hex>)",
    "{s} <uuid> loaded from cache in <ms>ms",
    "{s} <int> updated by <user>",
    "published {s}.changed event for <uuid> to partition <n>",
    "connection pool stats for {s}-db: active=<n> idle=<n>",
];
const BENCH_EXCEPTIONS: &[&str] = &[
    "java.net.SocketTimeoutException",
    "java.lang.IllegalStateException",
    "java.lang.NullPointerException",
    "org.springframework.dao.DataIntegrityViolationException",
    "io.grpc.StatusRuntimeException",
    "java.io.IOException",
];
const BENCH_WORDS: &[&str] = &[
    "email", "currency", "country", "zip", "quantity", "sku", "name",
];

fn parse_template(pattern: &str, subject: &str) -> Vec<Part> {
    let text = pattern.replace("{s}", subject);
    let mut parts = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>').expect("closed variable");
        if open > 0 {
            parts.push(Part::Lit(rest[..open].to_string()));
        }
        parts.push(Part::Var(match &rest[open + 1..close] {
            "int" => Var::Int,
            "n" => Var::Small,
            "ms" => Var::Ms,
            "uuid" => Var::Uuid,
            "ip" => Var::Ip,
            "port" => Var::Port,
            "user" => Var::User,
            "hex" => Var::Hex,
            "host" => Var::Host,
            "email" => Var::Email,
            "word" => Var::Word,
            other => unreachable!("unknown variable <{other}>"),
        }));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    parts
}

#[derive(Clone, Copy, Debug, Default)]
pub struct BenchStats {
    pub lines: u64,
    pub errors: u64,
    pub error_templates: usize,
    pub bytes: u64,
}

struct BenchGen {
    rng: StdRng,
}

impl BenchGen {
    fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    /// Skewed towards low indices: a few templates dominate, as in real logs.
    fn skewed(&mut self, n: usize) -> usize {
        let u: f64 = self.rng.random();
        ((u * u * u) * n as f64) as usize % n
    }

    fn push_hex(&mut self, out: &mut String, n: usize) {
        let mut x: u64 = self.rng.random();
        for i in 0..n {
            if i > 0 && i % 16 == 0 {
                x = self.rng.random();
            }
            out.push(HEX[(x & 15) as usize] as char);
            x >>= 4;
        }
    }

    fn push_var(&mut self, out: &mut String, v: Var) {
        // Values are drawn afresh every time, so ids, numbers and addresses
        // never settle: the template miner must generalise over them.
        let _ = match v {
            Var::Int => write!(out, "{}", self.rng.random_range(1..1_000_000u32)),
            Var::Small => write!(out, "{}", self.rng.random_range(0..64u32)),
            Var::Ms => write!(out, "{}", self.rng.random_range(1..30_000u32)),
            Var::Port => write!(out, "{}", self.rng.random_range(1024..65535u32)),
            Var::Ip => {
                let x: u32 = self.rng.random();
                write!(out, "10.{}.{}.{}", (x >> 16) & 255, (x >> 8) & 255, x & 255)
            }
            Var::Uuid => {
                self.push_hex(out, 8);
                out.push('-');
                self.push_hex(out, 4);
                out.push_str("-4");
                self.push_hex(out, 3);
                out.push_str("-a");
                self.push_hex(out, 3);
                out.push('-');
                self.push_hex(out, 12);
                Ok(())
            }
            Var::Hex => {
                self.push_hex(out, 16);
                Ok(())
            }
            Var::User => {
                let i = self.below(USERS_OLD.len() + USERS_NEW.len());
                if self.rng.random_bool(0.2) {
                    write!(out, "user{}", self.rng.random_range(1000..1_000_000u32))
                } else if i < USERS_OLD.len() {
                    write!(out, "{}", USERS_OLD[i])
                } else {
                    write!(out, "{}", USERS_NEW[i - USERS_OLD.len()])
                }
            }
            Var::Host => write!(out, "db-{}.internal", self.rng.random_range(1..40u32)),
            Var::Email => write!(
                out,
                "user{}@example.com",
                self.rng.random_range(1..1_000_000u32)
            ),
            Var::Word => write!(out, "{}", BENCH_WORDS[self.below(BENCH_WORDS.len())]),
        };
    }
}

/// Writes `lines` ECS JSON lines with about `error_rate` errors drawn from
/// a few hundred templates; deterministic for a seed.
pub fn write_bench<W: io::Write>(
    w: &mut W,
    lines: u64,
    error_rate: f64,
    seed: u64,
) -> io::Result<BenchStats> {
    let mut g = BenchGen {
        rng: StdRng::seed_from_u64(seed),
    };
    let mut errors = Vec::new();
    let mut infos = Vec::new();
    for (si, subject) in BENCH_SUBJECTS.iter().enumerate() {
        for (pi, pattern) in BENCH_ERRORS.iter().enumerate() {
            errors.push(Template {
                service: (si * 7 + pi) % BENCH_SERVICES.len(),
                parts: parse_template(pattern, subject),
                exception: BENCH_EXCEPTIONS[(si + pi) % BENCH_EXCEPTIONS.len()],
                trace: (si + pi) % 3 == 0,
            });
        }
        for (pi, pattern) in BENCH_INFOS.iter().enumerate() {
            infos.push(Template {
                service: (si + pi) % BENCH_SERVICES.len(),
                parts: parse_template(pattern, subject),
                exception: "",
                trace: false,
            });
        }
    }
    // Shuffle so that the skew does not always favour the same subject.
    for i in (1..errors.len()).rev() {
        let j = g.below(i + 1);
        errors.swap(i, j);
    }
    let pods: Vec<String> = BENCH_SERVICES
        .iter()
        .flat_map(|s| {
            (0..3).map(move |i| format!("{s}-7d9f8b6c5-{}", ["x2kqp", "b7mzt", "q9wfd"][i]))
        })
        .collect();

    let start = start_us();
    // 5,000 lines per second of event time.
    let step_us = 200;
    let mut stats = BenchStats {
        error_templates: errors.len(),
        ..BenchStats::default()
    };
    let mut used = vec![false; errors.len()];
    let mut out = String::with_capacity(4096);
    let mut msg = String::with_capacity(512);
    let mut day_cache = (i64::MIN, String::new());
    for i in 0..lines {
        out.clear();
        msg.clear();
        let t = start + i as i64 * step_us + g.rng.random_range(0..1_000_000i64);
        let is_error = g.rng.random_bool(error_rate.clamp(0.0, 1.0));
        let (tpl, level) = if is_error {
            let k = g.skewed(errors.len());
            used[k] = true;
            (
                &errors[k],
                if g.rng.random_bool(0.02) {
                    "FATAL"
                } else {
                    "ERROR"
                },
            )
        } else {
            let k = g.below(infos.len());
            let level = match g.below(20) {
                0..=2 => "DEBUG",
                3 => "WARN",
                _ => "INFO",
            };
            (&infos[k], level)
        };
        for p in &tpl.parts {
            match p {
                Part::Lit(s) => msg.push_str(s),
                Part::Var(v) => g.push_var(&mut msg, *v),
            }
        }
        let pod = &pods[tpl.service * 3 + g.below(3)];
        out.push_str("{\"@timestamp\":\"");
        push_bench_ts(&mut out, t, &mut day_cache);
        out.push_str("\",\"log.level\":\"");
        out.push_str(level);
        out.push_str("\",\"message\":");
        push_json_str(&mut out, &msg);
        out.push_str(",\"service.name\":\"");
        out.push_str(BENCH_SERVICES[tpl.service]);
        out.push_str("\",\"service.version\":\"");
        out.push_str(if i * 2 < lines {
            OLD_VERSION
        } else {
            NEW_VERSION
        });
        out.push_str("\",\"host.name\":\"");
        out.push_str(pod);
        out.push('"');
        if is_error {
            stats.errors += 1;
            out.push_str(",\"error.type\":\"");
            out.push_str(tpl.exception);
            out.push('"');
            if tpl.trace {
                let svc = BENCH_SERVICES[tpl.service];
                let exc = tpl.exception;
                let l1 = g.rng.random_range(40..400u32);
                let l2 = g.rng.random_range(40..400u32);
                let more = g.rng.random_range(10..90u32);
                let _ = write!(
                    out,
                    ",\"error.stack_trace\":\"{exc}: request failed\\n\\tat com.shop.{svc}.Handler.handle(Handler.java:{l1})\\n\\tat com.shop.{svc}.Router.route(Router.java:{l2})\\n\\t... {more} more\""
                );
            }
        }
        out.push_str("}\n");
        stats.bytes += out.len() as u64;
        w.write_all(out.as_bytes())?;
    }
    stats.lines = lines;
    stats.error_templates = used.iter().filter(|&&u| u).count();
    Ok(stats)
}

/// `2026-11-02T10:00:01.123Z`, formatted by hand: chrono's formatter
/// re-parses its format string on every call, a cost bench mode pays
/// millions of times.
fn push_bench_ts(out: &mut String, us: i64, day_cache: &mut (i64, String)) {
    const DAY_US: i64 = 86_400_000_000;
    let day = us.div_euclid(DAY_US);
    if day != day_cache.0 {
        let d = DateTime::from_timestamp_micros(day * DAY_US).expect("time in range");
        *day_cache = (day, d.format("%Y-%m-%dT").to_string());
    }
    out.push_str(&day_cache.1);
    let rem = us.rem_euclid(DAY_US) / 1000;
    let (h, m, s, ms) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let _ = write!(out, "{h:02}:{m:02}:{s:02}.{ms:03}Z");
}
