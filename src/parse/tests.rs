//! Behaviour of the whole parse stage, line in, records out.

use super::*;
use crate::config::VersionFrom as VersionFromCfg;

/// 2026-11-02T10:00:01Z
const T: EventTime = 1_793_613_601_000;

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Meta {
    time: Option<EventTime>,
    level: Option<Level>,
    service: Option<String>,
    version: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct Sink {
    pub lines: Vec<Meta>,
    pub errors: Vec<Record>,
    pub bad: Vec<(BadReason, u64)>,
}

impl RecordSink for Sink {
    fn line(&mut self, meta: &LineMeta<'_>) {
        self.lines.push(Meta {
            time: meta.time,
            level: meta.level,
            service: meta.service.map(str::to_string),
            version: meta.version.map(str::to_string),
        });
    }
    fn error(&mut self, record: Record) {
        self.errors.push(record);
    }
    fn bad(&mut self, reason: BadReason, line_no: u64) {
        self.bad.push((reason, line_no));
    }
}

impl Sink {
    fn only_error(&self) -> &Record {
        assert_eq!(self.errors.len(), 1, "{:#?}", self);
        &self.errors[0]
    }
}

fn run_with(cfg: &Config, format: Format, input: &str) -> Sink {
    let parser = match Parser::new(cfg, format) {
        Ok(p) => p,
        Err(e) => panic!("config rejected: {e}"),
    };
    let mut sink = Sink::default();
    let mut stream = parser.stream(Some("app".to_string()));
    for (i, line) in input.split('\n').enumerate() {
        stream.push(line.as_bytes(), i as u64 + 1, &mut sink);
    }
    stream.finish(&mut sink);
    sink
}

fn run(input: &str) -> Sink {
    run_with(&Config::default(), Format::Auto, input)
}

fn one(bytes: &[u8], fallback: Option<EventTime>) -> Sink {
    let parser = match Parser::new(&Config::default(), Format::Auto) {
        Ok(p) => p,
        Err(e) => panic!("config rejected: {e}"),
    };
    let mut sink = Sink::default();
    parser.parse_one(bytes, 7, fallback, &mut sink);
    sink
}

// ---- JSON ----

#[test]
fn ecs_json_with_dotted_keys_becomes_a_full_record() {
    let s = run(
        r#"{"@timestamp":"2026-11-02T10:00:01.000Z","log.level":"ERROR","message":"Payment failed","service.name":"checkout","service.version":"1.4.2","error.type":"java.io.IOException","error.stack_trace":"java.io.IOException: x\n\tat a.B(B.java:1)","host.name":"web-1","log.logger":"com.acme.Pay","trace.id":"abc"}"#,
    );
    let r = s.only_error();
    assert_eq!(r.time, Some(T));
    assert_eq!(r.level, Some(Level::Error));
    assert_eq!(r.message, "Payment failed");
    assert_eq!(r.service.as_deref(), Some("checkout"));
    assert_eq!(r.version.as_deref(), Some("1.4.2"));
    assert_eq!(r.error_type.as_deref(), Some("java.io.IOException"));
    assert_eq!(
        r.stack_trace.as_deref(),
        Some("java.io.IOException: x\n\tat a.B(B.java:1)")
    );
    assert_eq!(r.host.as_deref(), Some("web-1"));
    assert_eq!(r.logger.as_deref(), Some("com.acme.Pay"));
    assert_eq!(r.line, 1);
    assert_eq!(s.lines.len(), 1);
}

#[test]
fn ecs_json_with_nested_objects_reads_the_same_fields() {
    let s = run(
        r#"{"@timestamp":"2026-11-02T10:00:01Z","log":{"level":"error","logger":"L"},"message":"boom","service":{"name":"checkout","version":"2.0"},"error":{"type":"Boom","message":"inner"},"host":{"name":"h1"}}"#,
    );
    let r = s.only_error();
    assert_eq!(r.service.as_deref(), Some("checkout"));
    assert_eq!(r.version.as_deref(), Some("2.0"));
    assert_eq!(r.error_type.as_deref(), Some("Boom"));
    assert_eq!(r.logger.as_deref(), Some("L"));
    assert_eq!(r.host.as_deref(), Some("h1"));
    assert_eq!(r.message, "boom");
}

#[test]
fn flat_json_names_and_epoch_millis_are_understood() {
    let s =
        run(r#"{"ts":1793613601000,"level":"err","msg":"db down","service":"api","version":"7"}"#);
    let r = s.only_error();
    assert_eq!(r.time, Some(T));
    assert_eq!(r.message, "db down");
    assert_eq!(r.service.as_deref(), Some("api"));
    assert_eq!(r.version.as_deref(), Some("7"));
}

#[test]
fn non_error_json_lines_are_only_counted() {
    let s = run(r#"{"time":"2026-11-02T10:00:01Z","level":"info","msg":"ok","app":"web"}"#);
    assert!(s.errors.is_empty());
    assert_eq!(
        s.lines,
        vec![Meta {
            time: Some(T),
            level: Some(Level::Info),
            service: Some("web".into()),
            version: None,
        }]
    );
}

#[test]
fn json_without_message_falls_back_to_error_message() {
    let s = run(r#"{"level":"error","error":{"message":"inner text"}}"#);
    assert_eq!(s.only_error().message, "inner text");
}

#[test]
fn json_error_without_any_message_is_bad_but_a_quiet_line_still_counts() {
    let s = run("{\"level\":\"error\",\"x\":1}\n{\"level\":\"info\"}");
    assert_eq!(s.bad, vec![(BadReason::MissingMessage, 1)]);
    assert_eq!(s.lines.len(), 1);
    assert_eq!(s.lines[0].level, Some(Level::Info));
}

#[test]
fn json_records_without_a_level_are_not_errors() {
    let s = run(r#"{"msg":"something failed"}"#);
    assert!(s.errors.is_empty());
    assert_eq!(s.lines[0].level, None);
}

#[test]
fn pino_numeric_levels_map_onto_the_scale() {
    let s = run(
        "{\"level\":50,\"msg\":\"a\"}\n{\"level\":30,\"msg\":\"b\"}\n{\"level\":60,\"msg\":\"c\"}",
    );
    let levels: Vec<_> = s.lines.iter().map(|m| m.level).collect();
    assert_eq!(
        levels,
        vec![Some(Level::Error), Some(Level::Info), Some(Level::Fatal)]
    );
    assert_eq!(s.errors.len(), 2);
}

/// The JSON loggers whose records carry their message, time or level under
/// keys of their own: each line is one error record with its message and
/// time (T is 2026-11-02T10:00:01Z), none is bad.
#[test]
fn json_loggers_own_keys_give_message_time_and_level() {
    let lines = [
        // Serilog CLEF: the message template is the message
        r#"{"@t":"2026-11-02T10:00:01Z","@mt":"Refund {Id} refused","@l":"Error","Id":7}"#,
        // GELF
        r#"{"version":"1.1","host":"h","short_message":"Refund refused","timestamp":1793613601,"level":3}"#,
        // structlog
        r#"{"event":"refund refused","level":"error","timestamp":"2026-11-02T10:00:01Z"}"#,
        // python-json-logger
        r#"{"asctime":"2026-11-02 10:00:01,000","levelname":"ERROR","message":"refund refused"}"#,
        // Monolog: numeric level beside level_name
        r#"{"message":"refund refused","level":400,"level_name":"ERROR","datetime":"2026-11-02T10:00:01+00:00"}"#,
        // log4j2 JsonLayout
        r#"{"timeMillis":1793613601000,"level":"ERROR","message":"refund refused"}"#,
    ];
    for line in lines {
        let s = run(line);
        assert!(s.bad.is_empty(), "{line}: {:?}", s.bad);
        let r = s.only_error();
        assert!(r.message.to_lowercase().starts_with("refund"), "{line}");
        assert_eq!(r.time, Some(T), "{line}");
    }
}

#[test]
fn an_ecs_event_object_is_not_a_message_and_clef_without_a_level_is_quiet() {
    let s = run(concat!(
        r#"{"event":{"dataset":"a"},"log.level":"error"}"#,
        "\n",
        r#"{"@t":"2026-11-02T10:00:01Z","@mt":"Heartbeat {N}","N":1}"#,
        "\n",
        r#"{"@t":"2026-11-02T10:00:01Z","@mt":"Slow {N}","@l":"Verbose","N":1}"#,
    ));
    assert_eq!(s.bad, vec![(BadReason::MissingMessage, 1)]);
    assert!(s.errors.is_empty());
    assert_eq!(s.lines[1].level, Some(Level::Trace));
}

#[test]
fn a_multi_line_json_message_keeps_its_first_line_and_moves_the_rest_to_the_trace() {
    let s = run(
        r#"{"level":"error","message":"java.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)"}"#,
    );
    let r = s.only_error();
    assert_eq!(r.message, "java.lang.IllegalStateException: boom");
    assert_eq!(r.stack_trace.as_deref(), Some("\tat a.B.c(B.java:1)"));
    assert_eq!(
        r.error_type.as_deref(),
        Some("java.lang.IllegalStateException")
    );
}

#[test]
fn stack_trace_arrays_are_joined() {
    let s = run(r#"{"level":"error","msg":"x","stack_trace":["Boom: x","\tat a.b"]}"#);
    assert_eq!(
        s.only_error().stack_trace.as_deref(),
        Some("Boom: x\n\tat a.b")
    );
}

#[test]
fn version_from_derives_the_version_from_a_pod_name() {
    let mut cfg = Config::default();
    cfg.fields.version_from = Some(VersionFromCfg {
        field: "kubernetes.pod.name".into(),
        regex: r"^[a-z-]+-([0-9a-f]{8,10})-[a-z0-9]{5}$".into(),
    });
    let input = [
        r#"{"level":"info","msg":"a","kubernetes":{"pod":{"name":"checkout-7d9f8b6c5-x2x9z"}}}"#,
        r#"{"level":"error","msg":"b","kubernetes":{"pod":{"name":"checkout-7d9f8b6c5-abcde"}}}"#,
        r#"{"level":"error","msg":"c","version":"explicit","kubernetes":{"pod":{"name":"checkout-7d9f8b6c5-abcde"}}}"#,
    ]
    .join("\n");
    let s = run_with(&cfg, Format::Auto, &input);
    let versions: Vec<_> = s.lines.iter().map(|m| m.version.as_deref()).collect();
    assert_eq!(
        versions,
        vec![Some("7d9f8b6c5"), Some("7d9f8b6c5"), Some("explicit")]
    );
    assert_eq!(s.errors[0].version.as_deref(), Some("7d9f8b6c5"));
}

#[test]
fn a_version_from_regex_without_a_group_is_rejected() {
    let mut cfg = Config::default();
    cfg.fields.version_from = Some(VersionFromCfg {
        field: "pod".into(),
        regex: "[0-9a-f]+".into(),
    });
    assert!(matches!(
        Parser::new(&cfg, Format::Auto),
        Err(ParseError::VersionFromNoGroup { .. })
    ));
}

// ---- logfmt ----

#[test]
fn logfmt_with_quotes_and_escapes_becomes_a_record() {
    let s = run(
        r#"ts=2026-11-02T10:00:01Z level=error msg="quoted \"text\"" service=checkout trace=ab12"#,
    );
    let r = s.only_error();
    assert_eq!(r.message, r#"quoted "text""#);
    assert_eq!(r.service.as_deref(), Some("checkout"));
    assert_eq!(r.time, Some(T));
}

#[test]
fn logfmt_forced_reads_lines_without_a_level_as_levelless() {
    let s = run_with(&Config::default(), Format::Logfmt, "msg=hello");
    assert_eq!(s.lines.len(), 1);
    assert_eq!(s.lines[0].level, None);
}

// ---- text headers ----

struct Expect {
    line: &'static str,
    level: Level,
    time: Option<EventTime>,
    service: Option<&'static str>,
    logger: Option<&'static str>,
    host: Option<&'static str>,
    message: &'static str,
}

fn check(e: &Expect) {
    let s = run(e.line);
    assert_eq!(s.lines.len(), 1, "{}: {s:#?}", e.line);
    let r = s.only_error();
    assert_eq!(r.level, Some(e.level), "{}", e.line);
    assert_eq!(r.time, e.time, "{}", e.line);
    assert_eq!(
        r.service.as_deref(),
        e.service.or(Some("app")),
        "{}",
        e.line
    );
    assert_eq!(r.logger.as_deref(), e.logger, "{}", e.line);
    assert_eq!(r.host.as_deref(), e.host, "{}", e.line);
    assert_eq!(r.message, e.message, "{}", e.line);
}

#[test]
fn iso_level_message_header_parses() {
    for line in [
        "2026-11-02T10:00:01Z ERROR payment declined",
        "2026-11-02 10:00:01 [ERROR] payment declined",
        "2026-11-02T10:00:01.000+00:00 error: payment declined",
    ] {
        check(&Expect {
            line,
            level: Level::Error,
            time: Some(T),
            service: None,
            logger: None,
            host: None,
            message: "payment declined",
        });
    }
}

#[test]
fn log4j_and_logback_headers_parse() {
    for line in [
        "2026-11-02 10:00:01,000 [ERROR] com.acme.Pay - card declined",
        "2026-11-02 10:00:01,000 [ERROR ] com.acme.Pay - card declined",
        "2026-11-02 10:00:01.000 [http-nio-8080-exec-1] ERROR com.acme.Pay - card declined",
        "2026-11-02 10:00:01.000 ERROR [main] com.acme.Pay - card declined",
        "2026-11-02 10:00:01 ERROR com.acme.Pay - card declined",
        "2026-11-02 10:00:01,000 - com.acme.Pay - ERROR - card declined",
    ] {
        check(&Expect {
            line,
            level: Level::Error,
            time: Some(T),
            service: None,
            logger: Some("com.acme.Pay"),
            host: None,
            message: "card declined",
        });
    }
}

#[test]
fn spring_boot_header_parses() {
    check(&Expect {
        line: "2026-11-02T10:00:01.000Z ERROR 4242 --- [checkout] [nio-8080-exec-1] c.a.PayController        : card declined",
        level: Level::Error,
        time: Some(T),
        service: None,
        logger: Some("c.a.PayController"),
        host: None,
        message: "card declined",
    });
}

#[test]
fn source_with_bracketed_instance_names_the_service_not_the_instance() {
    check(&Expect {
        line: "2026-11-02T10:00:01Z ERROR checkout[checkout-7d9f8b6c5-x2x9z] payment declined",
        level: Level::Error,
        time: Some(T),
        service: Some("checkout"),
        logger: None,
        host: None,
        message: "payment declined",
    });
}

#[test]
fn syslog_with_host_and_program_parses_and_infers_the_level() {
    check(&Expect {
        line: "2026-11-02T10:00:01Z web-1 checkout[123]: payment failed",
        level: Level::Error,
        time: Some(T),
        service: Some("checkout"),
        logger: None,
        host: Some("web-1"),
        message: "payment failed",
    });
}

#[test]
fn syslog_pri_gives_the_level_and_rfc3164_time_borrows_the_year() {
    let s = run(
        "2026-11-02T09:00:00Z INFO starting\n<11>Nov  2 10:00:01 web1 sshd[4242]: connection closed\n<30>Nov  2 10:00:02 web1 sshd[4242]: fine",
    );
    let r = s.only_error();
    assert_eq!(r.level, Some(Level::Error));
    assert_eq!(r.time, Some(T));
    assert_eq!(r.service.as_deref(), Some("sshd"));
    assert_eq!(r.host.as_deref(), Some("web1"));
    assert_eq!(r.message, "connection closed");
    assert_eq!(s.lines[2].level, Some(Level::Info));
}

#[test]
fn rfc3164_level_and_source_form_parses() {
    let s =
        run("2026-11-02T09:00:00Z INFO boot\nNov  2 10:00:01 ERROR billing[77] ledger mismatch");
    let r = s.only_error();
    assert_eq!(r.service.as_deref(), Some("billing"));
    assert_eq!(r.time, Some(T));
    assert_eq!(r.message, "ledger mismatch");
}

#[test]
fn rfc5424_syslog_parses() {
    check(&Expect {
        line: "<11>1 2026-11-02T10:00:01Z web-1 checkout 42 ID47 [exampleSDID@32473 iut=\"3\"] payment declined",
        level: Level::Error,
        time: Some(T),
        service: Some("checkout"),
        logger: None,
        host: Some("web-1"),
        message: "payment declined",
    });
}

#[test]
fn apache_error_log_parses_with_module_pid_and_client() {
    check(&Expect {
        line: "[Mon Nov 02 10:00:01.123456 2026] [core:error] [pid 1234:tid 5678] [client 10.0.0.1:5555] AH00037: Symbolic link not allowed",
        level: Level::Error,
        time: Some(T + 123),
        service: None,
        logger: Some("core"),
        host: None,
        message: "AH00037: Symbolic link not allowed",
    });
    check(&Expect {
        line: "[Mon Nov 02 10:00:01 2026] [error] [client 10.0.0.1] File does not exist: /var/www/x",
        level: Level::Error,
        time: Some(T),
        service: None,
        logger: None,
        host: None,
        message: "File does not exist: /var/www/x",
    });
}

#[test]
fn nginx_error_log_parses() {
    check(&Expect {
        line: "2026/11/02 10:00:01 [error] 123#0: *1 connect() failed (111: Connection refused) while connecting to upstream",
        level: Level::Error,
        time: Some(T),
        service: None,
        logger: None,
        host: None,
        message: "connect() failed (111: Connection refused) while connecting to upstream",
    });
}

#[test]
fn klog_python_and_rust_defaults_parse() {
    let s = run(
        "2026-11-02T09:00:00Z INFO boot\nE1102 10:00:01.000000    4242 controller.go:42] sync failed",
    );
    let r = s.only_error();
    assert_eq!(
        (r.time, r.logger.as_deref(), r.message.as_str()),
        (Some(T), Some("controller.go:42"), "sync failed")
    );
    let s = run("ERROR:root:could not connect");
    assert_eq!(s.only_error().logger.as_deref(), Some("root"));
    let s = run("[2026-11-02T10:00:01Z ERROR my_app::db] pool exhausted");
    assert_eq!(s.only_error().logger.as_deref(), Some("my_app::db"));
    let s = run("2026-11-02T10:00:01.000000Z ERROR my_app::db: pool exhausted");
    assert_eq!(s.only_error().message, "pool exhausted");
}

#[test]
fn leading_key_value_tokens_are_context_and_may_set_service_and_version() {
    let s = run(
        "2026-11-02T10:00:01Z ERROR trace=ab12 span=cd34 service=checkout version=1.2.3 payment declined for user=7",
    );
    let r = s.only_error();
    assert_eq!(r.message, "payment declined for user=7");
    assert_eq!(r.service.as_deref(), Some("checkout"));
    assert_eq!(r.version.as_deref(), Some("1.2.3"));
    assert_eq!(s.lines[0].version.as_deref(), Some("1.2.3"));
}

#[test]
fn a_header_of_only_pairs_keeps_its_msg_pair_as_message() {
    let s = run(r#"2026-11-02T10:00:01Z ERROR trace=ab12 msg="payment declined""#);
    assert_eq!(s.only_error().message, "payment declined");
}

#[test]
fn header_without_level_infers_it_from_words() {
    let s = run(
        "2026-11-02T10:00:01Z request served\n2026-11-02T10:00:02Z upstream connection Failed\n2026-11-02T10:00:03Z errors=0",
    );
    let levels: Vec<_> = s.lines.iter().map(|m| m.level).collect();
    assert_eq!(
        levels,
        vec![Some(Level::Info), Some(Level::Error), Some(Level::Info)]
    );
}

#[test]
fn with_inference_off_levelless_headers_are_info() {
    let mut cfg = Config::default();
    cfg.text.infer_level = false;
    let s = run_with(
        &cfg,
        Format::Auto,
        "2026-11-02T10:00:01Z upstream connection failed",
    );
    assert!(s.errors.is_empty());
    assert_eq!(s.lines[0].level, Some(Level::Info));
}

#[test]
fn a_line_without_header_is_its_own_record_at_the_previous_time() {
    let s = run("2026-11-02T10:00:01Z INFO ok\nsomething failed badly");
    let r = s.only_error();
    assert_eq!(r.time, Some(T));
    assert_eq!(r.message, "something failed badly");
    assert_eq!(r.line, 2);
}

#[test]
fn custom_header_regexes_replace_the_defaults() {
    let mut cfg = Config::default();
    cfg.text.headers = vec![r"^(?P<level>\w+)\|(?P<service>\w+)\|(?P<msg>.*?)\|end$".into()];
    let s = run_with(&cfg, Format::Text, "ERROR|billing|ledger off|end");
    let r = s.only_error();
    assert_eq!(
        (r.service.as_deref(), r.message.as_str()),
        (Some("billing"), "ledger off")
    );
}

#[test]
fn an_invalid_header_regex_is_a_config_error() {
    let mut cfg = Config::default();
    cfg.text.headers = vec!["(".into()];
    assert!(matches!(
        Parser::new(&cfg, Format::Auto),
        Err(ParseError::HeaderRegex { index: 0, .. })
    ));
}

#[test]
fn ansi_colours_do_not_hide_the_header() {
    let s = run("\x1b[2m2026-11-02T10:00:01Z\x1b[0m \x1b[31mERROR\x1b[0m boom");
    assert_eq!(s.only_error().message, "boom");
}

// ---- multi-line ----

#[test]
fn java_trace_with_caused_by_and_more_joins_into_one_record() {
    let input = "\
2026-11-02 10:00:01.000 [main] ERROR com.acme.Pay - Payment failed
java.lang.IllegalStateException: card service unavailable
\tat com.acme.Pay.charge(Pay.java:42)
\tat com.acme.Api.post(Api.java:7)
Caused by: java.net.ConnectException: Connection refused
\tat java.net.Socket.connect(Socket.java:1)
\t... 12 more
2026-11-02 10:00:02.000 [main] INFO com.acme.Pay - next";
    let s = run(input);
    let r = s.only_error();
    assert_eq!(r.message, "Payment failed");
    assert_eq!(
        r.error_type.as_deref(),
        Some("java.lang.IllegalStateException")
    );
    let trace = r.stack_trace.as_deref().unwrap_or("");
    assert_eq!(trace.lines().count(), 6);
    assert!(trace.starts_with("java.lang.IllegalStateException"));
    assert!(trace.ends_with("... 12 more"));
    assert_eq!(s.lines.len(), 2);
}

#[test]
fn python_logged_traceback_takes_its_type_from_the_last_line() {
    let input = "\
2026-11-02 10:00:01,000 - app.worker - ERROR - job crashed
Traceback (most recent call last):
  File \"/app/worker.py\", line 10, in run
    int(x)
ValueError: invalid literal for int() with base 10: 'a'
2026-11-02 10:00:02,000 - app.worker - INFO - next";
    let s = run(input);
    let r = s.only_error();
    assert_eq!(r.message, "job crashed");
    assert_eq!(r.error_type.as_deref(), Some("ValueError"));
    assert_eq!(r.stack_trace.as_deref().map(|t| t.lines().count()), Some(4));
}

#[test]
fn chained_python_tracebacks_with_blank_lines_stay_one_record() {
    let input = "\
2026-11-02T10:00:01Z ERROR handler failed
Traceback (most recent call last):
  File \"a.py\", line 1, in f
KeyError: 'k'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File \"a.py\", line 3, in f
RuntimeError: lookup failed
plain line afterwards";
    let s = run(input);
    let r = s.only_error();
    assert_eq!(r.error_type.as_deref(), Some("RuntimeError"));
    // The traceback's last line ends it: the next plain line is a record.
    assert_eq!(s.lines.len(), 2);
}

#[test]
fn an_uncaught_python_traceback_is_its_own_record_named_by_its_last_line() {
    let input = "\
2026-11-02T10:00:01Z INFO starting
Traceback (most recent call last):
  File \"main.py\", line 3, in <module>
    main()
RuntimeError: config missing";
    let s = run(input);
    let r = s.only_error();
    assert_eq!(r.message, "RuntimeError: config missing");
    assert_eq!(r.error_type.as_deref(), Some("RuntimeError"));
    assert_eq!(r.time, Some(T));
}

#[test]
fn go_panic_with_goroutine_dump_is_one_fatal_record() {
    let input = "\
2026-11-02T10:00:01Z INFO serving
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.handler(...)
\t/app/main.go:12 +0x1d
main.main()
\t/app/main.go:20 +0x25
exit status 2";
    let s = run(input);
    let r = s.only_error();
    assert_eq!(r.level, Some(Level::Fatal));
    assert_eq!(
        r.message,
        "panic: runtime error: index out of range [5] with length 3"
    );
    assert_eq!(r.error_type.as_deref(), Some("panic"));
    assert_eq!(r.stack_trace.as_deref().map(|t| t.lines().count()), Some(6));
    assert_eq!(s.lines.len(), 2);
}

#[test]
fn rust_panic_starts_a_fatal_record() {
    let s = run(
        "thread 'main' panicked at src/main.rs:5:5:\nattempt to divide by zero\nnote: run with `RUST_BACKTRACE=1`",
    );
    let r = s.only_error();
    assert_eq!(r.level, Some(Level::Fatal));
    assert_eq!(r.error_type.as_deref(), Some("panic"));
    assert_eq!(r.stack_trace.as_deref().map(|t| t.lines().count()), Some(2));
}

#[test]
fn trace_lines_of_a_non_error_record_are_swallowed() {
    let s = run(
        "2026-11-02T10:00:01Z WARN retrying\njava.io.IOException: reset\n\tat a.b(C.java:1)\n2026-11-02T10:00:02Z INFO ok",
    );
    assert!(s.errors.is_empty());
    assert_eq!(s.lines.len(), 2);
}

#[test]
fn continuation_lines_before_any_record_count_nothing() {
    let s = run("\tat a.b(C.java:1)\n\t... 3 more");
    assert!(s.lines.is_empty() && s.errors.is_empty() && s.bad.is_empty());
}

#[test]
fn an_error_is_emitted_when_the_next_record_begins_not_before() {
    let parser = match Parser::new(&Config::default(), Format::Auto) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut sink = Sink::default();
    let mut stream = parser.stream(None);
    stream.push(b"2026-11-02T10:00:01Z ERROR boom", 1, &mut sink);
    stream.push(b"\tat a.b(C.java:1)", 2, &mut sink);
    assert_eq!((sink.lines.len(), sink.errors.len()), (1, 0));
    stream.push(b"2026-11-02T10:00:02Z INFO ok", 3, &mut sink);
    assert_eq!((sink.lines.len(), sink.errors.len()), (2, 1));
    stream.finish(&mut sink);
    assert_eq!(sink.errors.len(), 1);
}

#[test]
fn runaway_traces_are_capped_at_max_line_bytes() {
    let mut cfg = Config::default();
    cfg.input.max_line_bytes = 100;
    let mut input = String::from("2026-11-02T10:00:01Z ERROR boom");
    for i in 0..50 {
        input.push_str(&format!("\n\tat frame{i}(F.java:1)"));
    }
    let s = run_with(&cfg, Format::Auto, &input);
    let len = s.only_error().stack_trace.as_ref().map_or(0, String::len);
    assert!(len > 0 && len < 100, "{len}");
}

// ---- levels and thresholds ----

#[test]
fn level_spellings_normalise_across_formats() {
    let s = run(
        "2026-11-02T10:00:01Z WARNING a\n2026-11-02T10:00:01Z Err b\n{\"level\":\"SEVERE\",\"msg\":\"c\"}\nlevel=CRIT msg=d\nW1102 10:00:01.000000 1 x.go:1] e",
    );
    let levels: Vec<_> = s.lines.iter().map(|m| m.level).collect();
    assert_eq!(
        levels,
        vec![
            Some(Level::Warn),
            Some(Level::Error),
            Some(Level::Error),
            Some(Level::Fatal),
            Some(Level::Warn)
        ]
    );
}

#[test]
fn warn_is_not_an_error_by_default() {
    let s = run("2026-11-02T10:00:01Z WARN disk almost full");
    assert!(s.errors.is_empty());
    assert_eq!(s.lines.len(), 1);
}

#[test]
fn min_level_warn_makes_warnings_errors() {
    let mut cfg = Config::default();
    cfg.input.min_level = Level::Warn;
    let s = run_with(
        &cfg,
        Format::Auto,
        "2026-11-02T10:00:01Z WARN disk almost full",
    );
    assert_eq!(s.only_error().level, Some(Level::Warn));
}

#[test]
fn logger_override_applies_to_the_logger_and_its_children() {
    let mut cfg = Config::default();
    cfg.input
        .logger_min_level
        .insert("com.acme.db".into(), Level::Warn);
    cfg.input
        .logger_min_level
        .insert("noisy".into(), Level::Fatal);
    let input = "\
2026-11-02 10:00:01 [WARN] com.acme.db.Pool - slow
2026-11-02 10:00:01 [WARN] com.acme.web.Api - slow
{\"level\":\"error\",\"msg\":\"muted\",\"logger\":\"noisy\"}
{\"level\":\"warn\",\"msg\":\"json child\",\"log.logger\":\"com.acme.db.X\"}";
    let s = run_with(&cfg, Format::Auto, input);
    let msgs: Vec<_> = s.errors.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(msgs, vec!["slow", "json child"]);
    assert_eq!(s.errors[0].logger.as_deref(), Some("com.acme.db.Pool"));
    assert_eq!(s.lines.len(), 4);
}

// ---- bad lines ----

#[test]
fn each_bad_reason_is_reported_with_its_line_number() {
    let mut input: Vec<Vec<u8>> = vec![
        br#"{"level":"error","msg":"x""#.to_vec(),
        b"caf\xe9 error".to_vec(),
        vec![b'a'; 300],
        b"\x00\x01\x02binary".to_vec(),
        br#"{"level":"error"}"#.to_vec(),
        br#"{"level":"error","msg":"x","ts":"yesterday"}"#.to_vec(),
        b"2026-13-45 10:00:01 ERROR bad month".to_vec(),
    ];
    input.push(b"ok line".to_vec());
    let mut cfg = Config::default();
    cfg.input.max_line_bytes = 200;
    let parser = match Parser::new(&cfg, Format::Auto) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut sink = Sink::default();
    let mut stream = parser.stream(None);
    for (i, l) in input.iter().enumerate() {
        stream.push(l, i as u64 + 1, &mut sink);
    }
    stream.finish(&mut sink);
    assert_eq!(
        sink.bad,
        vec![
            (BadReason::InvalidJson, 1),
            (BadReason::InvalidUtf8, 2),
            (BadReason::TooLong, 3),
            (BadReason::Binary, 4),
            (BadReason::MissingMessage, 5),
            (BadReason::BadTimestamp, 6),
            (BadReason::BadTimestamp, 7),
        ]
    );
    assert_eq!(sink.lines.len(), 1);
}

#[test]
fn empty_lines_are_bad_only_under_forced_json() {
    let s = run("2026-11-02T10:00:01Z INFO a\n\n   \n2026-11-02T10:00:01Z INFO b");
    assert!(s.bad.is_empty());
    assert_eq!(s.lines.len(), 2);
    let s = run_with(&Config::default(), Format::Json, "{\"msg\":\"a\"}\n  ");
    assert_eq!(s.bad, vec![(BadReason::Empty, 2)]);
}

#[test]
fn forced_json_rejects_text_lines() {
    let s = run_with(
        &Config::default(),
        Format::Json,
        "2026-11-02T10:00:01Z ERROR x",
    );
    assert_eq!(s.bad, vec![(BadReason::InvalidJson, 1)]);
}

#[test]
fn tolerated_bad_timestamps_take_the_previous_time() {
    let mut cfg = Config::default();
    cfg.input.reject_bad_timestamps = false;
    let s = run_with(
        &cfg,
        Format::Auto,
        "{\"ts\":\"2026-11-02T10:00:01Z\",\"level\":\"info\",\"msg\":\"a\"}\n{\"ts\":\"soon\",\"level\":\"error\",\"msg\":\"b\"}",
    );
    assert!(s.bad.is_empty());
    assert_eq!(s.only_error().time, Some(T));
}

#[test]
fn a_rejected_header_takes_its_trace_lines_with_it() {
    let s = run(
        "2026-13-45 10:00:01 ERROR bad\n\tat a.b(C.java:1)\nmain.f(...)\n2026-11-02T10:00:01Z ERROR next",
    );
    assert_eq!(s.bad, vec![(BadReason::BadTimestamp, 1)]);
    assert_eq!(s.only_error().stack_trace, None);
    assert_eq!(s.lines.len(), 1);
}

// ---- detection and standalone messages ----

#[test]
fn auto_detection_decides_per_line() {
    let input = "\
{\"level\":\"error\",\"msg\":\"from json\"}
level=error msg=\"from logfmt\"
2026-11-02T10:00:01Z ERROR from text
user=bob logged in";
    let s = run(input);
    let msgs: Vec<_> = s.errors.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(msgs, vec!["from json", "from logfmt", "from text"]);
    assert_eq!(s.lines.len(), 4);
}

#[test]
fn an_indented_json_looking_line_continues_a_text_record() {
    let s = run("2026-11-02T10:00:01Z ERROR bad payload\n  {\"a\": 1}");
    assert_eq!(s.only_error().stack_trace.as_deref(), Some("  {\"a\": 1}"));
    assert!(s.bad.is_empty());
}

#[test]
fn parse_one_reads_a_kafka_json_value() {
    let s = one(
        br#"{"@timestamp":"2026-11-02T10:00:01Z","log.level":"error","message":"boom","service.name":"api"}"#,
        None,
    );
    let r = s.only_error();
    assert_eq!(
        (r.line, r.time, r.service.as_deref()),
        (7, Some(T), Some("api"))
    );
}

#[test]
fn parse_one_uses_the_fallback_time_when_the_value_has_none() {
    let s = one(br#"{"level":"info","msg":"hi"}"#, Some(T));
    assert_eq!(s.lines[0].time, Some(T));
}

#[test]
fn parse_one_keeps_a_multi_line_text_value_together() {
    let s = one(
        b"2026-11-02T10:00:01Z ERROR Payment failed\njava.lang.IllegalStateException: x\n\tat a.B(B.java:1)\r\n",
        None,
    );
    let r = s.only_error();
    assert_eq!(
        r.error_type.as_deref(),
        Some("java.lang.IllegalStateException")
    );
    assert_eq!(r.stack_trace.as_deref().map(|t| t.lines().count()), Some(2));
}

#[test]
fn parse_one_reports_an_empty_value() {
    assert_eq!(one(b"  ", None).bad, vec![(BadReason::Empty, 7)]);
}

#[test]
fn the_configured_default_service_wins_over_the_stream_name() {
    let s = run("2026-11-02T10:00:01Z ERROR x");
    assert_eq!(s.lines[0].service.as_deref(), Some("app"));
    let mut cfg = Config::default();
    cfg.text.default_service = Some("configured".into());
    let s = run_with(&cfg, Format::Auto, "2026-11-02T10:00:01Z ERROR x");
    assert_eq!(s.lines[0].service.as_deref(), Some("configured"));
}

#[test]
fn binary_detection_spares_tabs_and_colour_codes() {
    assert!(!looks_binary(b"a\tb\x1b[31mred\x1b[0m"));
    assert!(looks_binary(b"\x00"));
    assert!(looks_binary(b"\x01\x02\x03abc"));
    assert!(!looks_binary(
        b"one \x07 bell in a long enough line of ordinary text here"
    ));
}

mod robustness {
    use proptest::prelude::*;

    use super::*;

    fn noisy_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..120),
            "[ -~\t]{0,80}".prop_map(String::into_bytes),
            "(\\{|level=|2026-11-02T10:00:01Z |\\tat |Traceback|panic: |<1[0-9]>|\\[)[ -~]{0,60}"
                .prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_each_line_is_bad_at_most_once(
            lines in prop::collection::vec(noisy_line(), 0..24),
            format in prop::sample::select(vec![Format::Auto, Format::Json, Format::Logfmt, Format::Text]),
        ) {
            let mut cfg = Config::default();
            cfg.input.max_line_bytes = 100;
            let parser = Parser::new(&cfg, format);
            prop_assert!(parser.is_ok());
            let Ok(parser) = parser else { return Ok(()) };
            let mut sink = Sink::default();
            let mut stream = parser.stream(None);
            for (i, l) in lines.iter().enumerate() {
                stream.push(l, i as u64 + 1, &mut sink);
                parser.parse_one(l, i as u64 + 1, None, &mut sink);
            }
            stream.finish(&mut sink);
            prop_assert!(sink.bad.len() <= 2 * lines.len());
            prop_assert!(sink.errors.len() <= sink.lines.len());
        }
    }
}

// ---- pieces of one input (parallel replay) ----

#[test]
fn only_lines_that_begin_a_record_whatever_came_before_start_fresh() {
    let parser = Parser::new(&Config::default(), Format::Auto).unwrap();
    let fresh = |l: &str| parser.starts_fresh(l.as_bytes());
    assert!(fresh(r#"{"log.level":"INFO","message":"x"}"#));
    assert!(fresh("level=info msg=x"));
    assert!(fresh("2026-11-02 10:00:01 ERROR com.acme.Pool - lost"));
    assert!(fresh("panic: runtime error: index out of range"));
    assert!(fresh("\x1b[31m2026-11-02 10:00:01 ERROR x\x1b[0m"));
    // Continuations, or lines an open record may take as one.
    assert!(!fresh("\tat com.acme.Pool.get(Pool.java:42)"));
    assert!(!fresh("Caused by: java.io.IOException: x"));
    assert!(!fresh("Traceback (most recent call last):"));
    assert!(!fresh("java.sql.SQLException: pool exhausted"));
    assert!(!fresh("worker failed to renew its lease"));
    assert!(!fresh(r#"  {"log.level":"INFO","message":"indented"}"#));
    // Bad lines leave the stream as it was.
    assert!(!fresh(""));
    assert!(!fresh("\u{0}\u{1}\u{2} binary"));
    assert!(!parser.starts_fresh(b"\xff\xfe invalid utf8"));
}

#[test]
fn a_stream_reports_whether_it_used_the_time_carried_in() {
    let parser = Parser::new(&Config::default(), Format::Auto).unwrap();
    let carry = |lines: &[&str]| {
        let mut stream = parser.stream_seeded(None, Some(T));
        let mut sink = Sink::default();
        for (i, l) in lines.iter().enumerate() {
            stream.push(l.as_bytes(), i as u64 + 1, &mut sink);
        }
        stream.finish(&mut sink);
        (stream.carry(), sink)
    };
    let (c, _) = carry(&["2026-11-02T10:00:05Z ERROR boom", "no time here"]);
    assert!(c.own_time && !c.seed_used, "{c:?}");
    assert_eq!(c.last_time, Some(T + 4000));
    // A line without a time takes the carried one.
    let (c, sink) = carry(&["no time, but failed"]);
    assert!(!c.own_time && c.seed_used, "{c:?}");
    assert_eq!(sink.lines[0].time, Some(T));
    // So does a stamp without a date.
    let (c, sink) = carry(&["10:00:02.000 [ERROR] c.a.Svc - x"]);
    assert!(c.own_time && c.seed_used, "{c:?}");
    assert_eq!(sink.lines[0].time, Some(T + 1000));
    // JSON without a time leaves it to the caller: nothing carried is used.
    let (c, _) = carry(&[r#"{"log.level":"INFO","message":"x"}"#]);
    assert!(!c.own_time && !c.seed_used, "{c:?}");
}
