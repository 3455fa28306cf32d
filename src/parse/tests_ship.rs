//! Shipper envelopes, CRI lines and traces split across records, through
//! the whole parse stage.

use super::*;
use serde_json::json;

use super::tests::Sink;

/// Message, error type, stack trace and service of an error record.
type Essentials = (String, Option<String>, Option<String>, Option<String>);

fn parser(cfg: &Config) -> Parser {
    match Parser::new(cfg, Format::Auto) {
        Ok(p) => p,
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn stream(cfg: &Config, lines: &[String]) -> Sink {
    let p = parser(cfg);
    let mut sink = Sink::default();
    let mut s = p.stream(Some("file-name".into()));
    for (i, l) in lines.iter().enumerate() {
        s.push(l.as_bytes(), i as u64 + 1, &mut sink);
    }
    s.finish(&mut sink);
    sink
}

/// 2026-12-05T10:00:00Z
const T0: EventTime = 1_796_464_800_000;

fn iso(ms: EventTime) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn fluent(pod: &str, app: &str, line: &str, at: EventTime) -> String {
    json!({
        "log": format!("{line}\n"),
        "stream": "stdout",
        "time": iso(at),
        "kubernetes": {
            "namespace_name": "shop",
            "pod_name": pod,
            "container_name": "main",
            "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/version": "3.1.0"}
        }
    })
    .to_string()
}

fn java_trace(frames: usize) -> Vec<String> {
    let mut v = vec![
        "2026-12-05T10:00:00.000Z ERROR [main] com.shop.Cart - checkout failed for order 42"
            .to_string(),
        "java.lang.IllegalStateException: cart is locked".to_string(),
    ];
    for i in 0..frames {
        v.push(format!(
            "\tat com.shop.cart.Step{i}.run(Step{i}.java:{})",
            10 + i
        ));
    }
    v.push("Caused by: java.io.IOException: disk full".to_string());
    v.push("\t... 12 more".to_string());
    v
}

fn python_trace(frames: usize) -> Vec<String> {
    let mut v = vec![
        "2026-12-05 10:00:00,000 - billing.worker - ERROR - invoice run failed".to_string(),
        "Traceback (most recent call last):".to_string(),
        "  File \"/app/billing/main.py\", line 3, in <module>".to_string(),
    ];
    for i in 0..frames {
        v.push(format!(
            "  File \"/app/billing/step{i}.py\", line {}, in run",
            10 + i
        ));
        v.push(format!("    step{i}(invoice)"));
    }
    v.push("KeyError: 'customer_id'".to_string());
    v
}

#[test]
fn a_fluent_bit_record_is_parsed_as_its_log_line_with_the_label_service() {
    let s = stream(
        &Config::default(),
        &[fluent(
            "cart-1",
            "checkout",
            "2026-12-05T10:00:00.000Z ERROR [main] com.shop.Cart - checkout failed",
            T0,
        )],
    );
    assert!(s.bad.is_empty(), "{:?}", s.bad);
    assert_eq!(s.errors.len(), 1, "{s:#?}");
    let r = &s.errors[0];
    assert_eq!(r.message, "checkout failed");
    assert_eq!(r.service.as_deref(), Some("checkout"));
    assert_eq!(r.version.as_deref(), Some("3.1.0"));
    assert_eq!(r.logger.as_deref(), Some("com.shop.Cart"));
}

#[test]
fn a_java_trace_split_into_30_records_is_one_event_while_another_pod_interleaves() {
    let trace = java_trace(26);
    assert_eq!(trace.len(), 30);
    let mut lines = Vec::new();
    for (i, l) in trace.iter().enumerate() {
        lines.push(fluent("cart-1", "checkout", l, T0 + i as i64));
        if i % 3 == 0 {
            let other = format!(
                "2026-12-05T10:00:00.{:03}Z INFO [main] com.shop.Search - query served",
                i
            );
            lines.push(fluent("search-9", "search", &other, T0 + i as i64));
        }
    }
    lines.push(fluent(
        "cart-1",
        "checkout",
        "2026-12-05T10:00:01.000Z INFO [main] com.shop.Cart - next",
        T0 + 900,
    ));
    let s = stream(&Config::default(), &lines);
    assert_eq!(s.errors.len(), 1, "{s:#?}");
    let r = &s.errors[0];
    assert_eq!(
        r.error_type.as_deref(),
        Some("java.lang.IllegalStateException")
    );
    let st = r.stack_trace.as_deref().unwrap_or("");
    assert_eq!(st.lines().count(), 29, "{st}");
    assert!(st.ends_with("... 12 more"), "{st}");
    // Every record counted once: the error, 10 search lines, the last info.
    assert_eq!(s.lines.len(), 12);
}

#[test]
fn a_python_traceback_split_into_30_records_is_one_event() {
    let trace = python_trace(13);
    assert_eq!(trace.len(), 30);
    let lines: Vec<String> = trace
        .iter()
        .map(|l| fluent("billing-1", "billing", l, T0))
        .collect();
    let s = stream(&Config::default(), &lines);
    assert_eq!(s.errors.len(), 1, "{s:#?}");
    let r = &s.errors[0];
    assert_eq!(r.error_type.as_deref(), Some("KeyError"));
    assert_eq!(r.service.as_deref(), Some("billing"));
}

#[test]
fn the_same_lines_give_the_same_records_plain_enveloped_and_as_cri() {
    let mut plain = java_trace(5);
    plain.extend(python_trace(3));
    plain.push("2026-12-05T10:00:02.000Z INFO [main] com.shop.Cart - done".into());
    let cfg = Config::default();
    let want = stream(&cfg, &plain);
    let shapes: Vec<Vec<String>> = vec![
        plain.iter().map(|l| fluent("p", "file-name", l, T0)).collect(),
        plain
            .iter()
            .map(|l| json!({"log": format!("{l}\n"), "stream": "stderr", "time": iso(T0)}).to_string())
            .collect(),
        plain
            .iter()
            .map(|l| json!({"message": l, "kubernetes": {"pod_name": "p", "container_name": "file-name"}}).to_string())
            .collect(),
        plain
            .iter()
            .map(|l| json!({"@timestamp": iso(T0), "message": l, "agent": {"type": "filebeat"}, "log": {"file": {"path": "/var/log/x.log"}}}).to_string())
            .collect(),
        plain
            .iter()
            .map(|l| json!({"body": {"stringValue": l}, "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "file-name"}}]}}).to_string())
            .collect(),
        plain.iter().map(|l| format!("2026-12-05T10:00:00.000000001Z stdout F {l}")).collect(),
    ];
    let strip = |s: &Sink| -> Vec<Essentials> {
        s.errors
            .iter()
            .map(|r| {
                (
                    r.message.clone(),
                    r.error_type.clone(),
                    r.stack_trace.clone(),
                    r.service.clone(),
                )
            })
            .collect()
    };
    for (i, lines) in shapes.iter().enumerate() {
        let got = stream(&cfg, lines);
        assert_eq!(strip(&got), strip(&want), "shape {i}");
        assert_eq!(got.lines.len(), want.lines.len(), "shape {i}");
        assert!(got.bad.is_empty(), "shape {i}: {:?}", got.bad);
    }
}

#[test]
fn cri_partial_pieces_are_joined_until_the_final_piece_and_json_inside_is_json() {
    let lines = vec![
        r#"2026-12-05T10:00:00.1Z stdout P {"level":"error","service":"checkout","#.to_string(),
        r#"2026-12-05T10:00:00.2Z stderr F unrelated stderr line"#.to_string(),
        r#"2026-12-05T10:00:00.3Z stdout P "message":"payment failed "#.to_string(),
        r#"2026-12-05T10:00:00.4Z stdout F for order 42"}"#.to_string(),
    ];
    let s = stream(&Config::default(), &lines);
    assert!(s.bad.is_empty(), "{:?}", s.bad);
    assert_eq!(s.errors.len(), 1, "{s:#?}");
    let r = &s.errors[0];
    assert_eq!(r.message, "payment failed for order 42");
    assert_eq!(r.service.as_deref(), Some("checkout"));
    assert_eq!(r.line, 1);
    assert_eq!(s.lines.len(), 2);
}

#[test]
fn a_held_trace_is_emitted_after_the_event_time_limit_and_later_pieces_start_nothing() {
    let mut lines = vec![
        fluent(
            "cart-1",
            "checkout",
            "2026-12-05T10:00:00.000Z ERROR [main] com.shop.Cart - failed",
            T0,
        ),
        fluent(
            "cart-1",
            "checkout",
            "java.lang.IllegalStateException: x",
            T0,
        ),
    ];
    // Another pod's record 3 s later: past the 2 s default.
    lines.push(fluent(
        "search-1",
        "search",
        "2026-12-05T10:00:03.000Z INFO [main] a.B - ok",
        T0 + 3000,
    ));
    lines.push(fluent(
        "cart-1",
        "checkout",
        "\tat com.shop.Late.run(Late.java:1)",
        T0 + 3001,
    ));
    let p = parser(&Config::default());
    let mut sink = Sink::default();
    let mut s = p.stream(None);
    for (i, l) in lines.iter().enumerate() {
        s.push(l.as_bytes(), i as u64 + 1, &mut sink);
        if i == 2 {
            assert_eq!(sink.errors.len(), 1, "emitted when the limit passed");
        }
    }
    s.finish(&mut sink);
    assert_eq!(sink.errors.len(), 1);
    let st = sink.errors[0].stack_trace.as_deref().unwrap_or("");
    assert!(!st.contains("Late"), "{st}");
}

#[test]
fn a_held_trace_is_emitted_after_the_record_count_limit() {
    let mut cfg = Config::default();
    cfg.input.join_max_records = 5;
    let p = parser(&cfg);
    let mut sink = Sink::default();
    let mut s = p.stream(None);
    let head = fluent(
        "cart-1",
        "checkout",
        "2026-12-05T10:00:00.000Z ERROR [main] a.B - failed",
        T0,
    );
    s.push(head.as_bytes(), 1, &mut sink);
    let other = fluent(
        "other",
        "search",
        "2026-12-05T10:00:00.000Z INFO [main] a.B - ok",
        T0,
    );
    for i in 0..5 {
        s.push(other.as_bytes(), i + 2, &mut sink);
        assert!(sink.errors.is_empty(), "still within the limit after {i}");
        assert!(s.state.holding());
    }
    s.push(other.as_bytes(), 9, &mut sink);
    assert_eq!(sink.errors.len(), 1);
    assert!(!s.state.holding());
}

#[test]
fn an_application_json_line_with_its_own_level_is_not_unwrapped_but_gets_the_envelope_service() {
    let line = json!({
        "level": "error", "message": "db down", "log": "ignored",
        "kubernetes": {"pod_name": "api-1", "labels": {"app": "api", "version": "2.0"}}
    })
    .to_string();
    let s = stream(&Config::default(), &[line]);
    let r = &s.errors[0];
    assert_eq!(r.message, "db down");
    assert_eq!(r.service.as_deref(), Some("api"));
    assert_eq!(r.version.as_deref(), Some("2.0"));
}

#[test]
fn an_ecs_application_line_parses_as_before_with_envelopes_on_or_off() {
    let line = r#"{"@timestamp":"2026-12-05T10:00:00Z","log.level":"error","message":"boom","service.name":"api","service.version":"1.0","error":{"type":"java.lang.X"}}"#;
    let on = stream(&Config::default(), &[line.to_string()]);
    let mut cfg = Config::default();
    cfg.input.envelopes = crate::config::Envelopes::Off;
    let off = stream(&cfg, &[line.to_string()]);
    assert_eq!(on.errors, off.errors);
    assert_eq!(on.errors.len(), 1);
}

#[test]
fn with_envelopes_off_a_fluent_bit_record_is_json_without_a_level() {
    let mut cfg = Config::default();
    cfg.input.envelopes = crate::config::Envelopes::Off;
    let s = stream(
        &cfg,
        &[fluent(
            "p",
            "checkout",
            "2026-12-05T10:00:00.000Z ERROR [main] a.B - failed",
            T0,
        )],
    );
    assert!(s.errors.is_empty());
}

#[test]
fn otel_severity_is_the_level_of_a_body_without_one() {
    let line = json!({
        "timeUnixNano": "1796464800000000000", "severityNumber": 17, "body": "card declined",
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]}
    })
    .to_string();
    let s = stream(&Config::default(), &[line]);
    let r = &s.errors[0];
    assert_eq!(r.message, "card declined");
    assert_eq!(r.level, Some(Level::Error));
    assert_eq!(r.time, Some(T0));
    assert_eq!(r.service.as_deref(), Some("payments"));
}

#[test]
fn configured_labels_name_the_service() {
    let mut cfg = Config::default();
    cfg.fields.service_labels = vec!["team.example/component".into()];
    let line = json!({"log": "2026-12-05T10:00:00Z ERROR boom", "kubernetes": {"labels": {"team.example/component": "ledger", "app": "x"}}}).to_string();
    let s = stream(&cfg, &[line]);
    assert_eq!(s.errors[0].service.as_deref(), Some("ledger"));
}

#[test]
fn parse_one_unwraps_envelopes_and_cri_lines_too() {
    let p = parser(&Config::default());
    let mut sink = Sink::default();
    p.parse_one(
        br#"2026-12-05T10:00:00.123456789Z stdout F {"level":"error","service":"checkout","message":"payment failed for order 42"}"#,
        1,
        None,
        &mut sink,
    );
    let line = fluent(
        "cart-1",
        "checkout",
        "2026-12-05T10:00:00.000Z ERROR [main] a.B - failed",
        T0,
    );
    p.parse_one(line.as_bytes(), 2, None, &mut sink);
    assert_eq!(sink.errors.len(), 2, "{sink:#?}");
    assert_eq!(sink.errors[0].message, "payment failed for order 42");
    assert_eq!(sink.errors[0].service.as_deref(), Some("checkout"));
    assert_eq!(sink.errors[1].message, "failed");
}

#[test]
fn envelope_lines_never_start_a_fresh_chunk() {
    let p = parser(&Config::default());
    let line = fluent("p", "a", "2026-12-05T10:00:00Z ERROR x", T0);
    assert!(!p.starts_fresh(line.as_bytes()));
    assert!(!p.starts_fresh(b"2026-12-05T10:00:00.1Z stdout F hello"));
    assert!(p.starts_fresh(br#"{"level":"info","message":"plain"}"#));
}

#[test]
fn kafka_messages_join_across_records_and_a_multi_line_value_stays_one_record() {
    let p = parser(&Config::default());
    let mut st = p.stream_state(None, None);
    let mut sink = Sink::default();
    for (i, l) in java_trace(3).iter().enumerate() {
        st.push_message(&p, l.as_bytes(), i as u64, Some(T0), &mut sink);
    }
    assert!(st.holding());
    st.push_message(
        &p,
        b"2026-12-05T10:00:00Z ERROR second\n\tat a.B.c(B.java:1)",
        9,
        Some(T0),
        &mut sink,
    );
    assert_eq!(sink.errors.len(), 1);
    st.finish(&p, &mut sink);
    assert_eq!(sink.errors.len(), 2);
    assert_eq!(
        sink.errors[1].stack_trace.as_deref(),
        Some("\tat a.B.c(B.java:1)")
    );
}

#[test]
fn a_backlog_with_old_event_times_and_fresh_kafka_timestamps_still_joins_on_event_time() {
    // A shipper catching up sends month-old lines with produce times of
    // now: the join limit must compare event time with event time, never
    // with the transport's clock.
    let p = parser(&Config::default());
    let mut st = p.stream_state(None, None);
    let mut sink = Sink::default();
    let produced = T0 + 30 * 24 * 3_600_000;
    for (i, l) in java_trace(4).iter().enumerate() {
        let rec = fluent("cart-1", "checkout", l, T0 + i as i64);
        let at = Some(produced + i as i64);
        st.push_message(&p, rec.as_bytes(), i as u64 + 1, at, &mut sink);
    }
    assert!(sink.errors.is_empty(), "{sink:#?}");
    assert!(st.holding());
    // Another pod's line 3 s later in event time, produced at once: the
    // event-time limit still ends the trace.
    let other = fluent(
        "search-1",
        "search",
        "2026-12-05T10:00:03.000Z INFO [main] a.B - ok",
        T0 + 3000,
    );
    st.push_message(&p, other.as_bytes(), 9, Some(produced + 5), &mut sink);
    assert_eq!(sink.errors.len(), 1, "{sink:#?}");
    let st_text = sink.errors[0].stack_trace.as_deref().unwrap_or("");
    assert_eq!(st_text.lines().count(), 7, "{st_text}");
    assert!(!st.holding());
}

#[test]
fn kafka_records_without_event_times_are_held_by_their_kafka_timestamps() {
    // Plain lines with no time of their own: the transport's clock is the
    // only one, and a continuation 3 s after its header starts nothing.
    let p = parser(&Config::default());
    let mut st = p.stream_state(None, None);
    let mut sink = Sink::default();
    let lines: [(&[u8], i64); 3] = [
        (b"ERROR checkout failed", T0),
        (b"java.lang.IllegalStateException: x", T0 + 1),
        (b"\tat com.shop.Late.run(Late.java:1)", T0 + 3001),
    ];
    for (i, (l, at)) in lines.iter().enumerate() {
        st.push_message(&p, l, i as u64 + 1, Some(*at), &mut sink);
    }
    st.finish(&p, &mut sink);
    let joined = sink.errors.iter().find(|r| r.message.contains("checkout"));
    let st_text = joined.and_then(|r| r.stack_trace.as_deref()).unwrap_or("");
    assert!(!st_text.contains("Late"), "{sink:#?}");
}
