//! The ECS shape of an alert document (`elasticsearch.document = "ecs"`).
//!
//! `faultline.alert/v1` is an interface and its top-level `service` is a
//! string, while ECS wants `service` to be an object (`service.name`). The
//! two cannot share one mapping, so ECS is an opt-in second shape: the ECS
//! fields a SIEM or Kibana's alert views read (`@timestamp`, `event.kind:
//! alert`, `service.name`, `error.message`, `message`, `labels.*`) beside
//! the v1 alert, unchanged, under `faultline`. Nothing of v1 is renamed or
//! lost, and a consumer can move between the shapes by one prefix.

use serde_json::{Map, Value, json};

use crate::alert::{Alert, Severity};

/// The ECS version the documents and their template follow.
pub const ECS_VERSION: &str = "8.11.0";
/// `event.dataset` of every alert document.
pub const DATASET: &str = "faultline.alerts";

/// ECS `event.severity` is a number whose meaning the source defines:
/// higher is worse, one step per faultline severity.
fn severity_number(s: Severity) -> u8 {
    match s {
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

/// The ECS document for one alert.
pub fn ecs_doc(a: &Alert) -> Value {
    let summary = a.summary();
    // The summary starts with "[event time] ", which `@timestamp` holds.
    let message = summary
        .strip_prefix(&format!("[{}] ", a.event_time))
        .unwrap_or(&summary);
    let mut event = json!({
        "kind": "alert",
        "dataset": DATASET,
        "module": "faultline",
        "action": a.kind.as_str(),
        "id": a.id,
        "severity": severity_number(a.severity),
        "created": a.detected_at,
        "start": a.first_seen,
    });
    if let Some(ep) = &a.release.episode {
        event["start"] = json!(ep.start);
        if let Some(end) = &ep.end {
            event["end"] = json!(end);
        }
    }
    let mut service = Map::new();
    service.insert("name".into(), json!(a.service));
    if let Some(v) = &a.version {
        service.insert("version".into(), json!(v));
    }
    // `error.*` only for an alert about one error type: a storm or an
    // error rate describes many, and its text is not an error message.
    let mut error = Map::new();
    if let Some(f) = a.fingerprint {
        error.insert("id".into(), json!(f.to_string()));
        // The error as it was logged; the masked template without a sample.
        let m = a.sample.as_deref().unwrap_or(&a.template);
        error.insert("message".into(), json!(m));
    }
    let mut doc = json!({
        "@timestamp": a.event_time,
        "ecs": { "version": ECS_VERSION },
        "message": message,
        "event": event,
        "service": service,
        "labels": { "kind": a.kind.as_str(), "severity": a.severity.as_str() },
        "faultline": serde_json::to_value(a).unwrap_or(Value::Null),
    });
    if !error.is_empty() {
        doc["error"] = Value::Object(error);
    }
    doc
}

/// The ECS template text: the shipped ECS mappings with the v1 alert's
/// mappings (every field but `@timestamp`) under `faultline`, so one v1
/// field added to the v1 template is mapped in both shapes.
pub fn template(ecs: &str, v1: &str) -> Result<String, String> {
    let mut t: Value = serde_json::from_str(ecs).map_err(|e| format!("ECS template: {e}"))?;
    let v1: Value = serde_json::from_str(v1).map_err(|e| format!("v1 template: {e}"))?;
    let mut props = v1
        .pointer("/template/mappings/properties")
        .and_then(Value::as_object)
        .cloned()
        .ok_or("v1 template: no mappings.properties")?;
    props.remove("@timestamp");
    let slot = t
        .pointer_mut("/template/mappings/properties/faultline/properties")
        .ok_or("ECS template: no faultline.properties")?;
    *slot = Value::Object(props);
    serde_json::to_string(&t).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::{ALERTS_ECS_TEMPLATE, ALERTS_TEMPLATE};
    use super::*;
    use crate::fingerprint::Fingerprint;

    #[test]
    fn an_ecs_document_carries_the_ecs_fields_and_the_whole_v1_alert_under_faultline() {
        let mut a = crate::alert::test_alert("a1");
        a.version = Some("2.0".into());
        let doc = ecs_doc(&a);
        assert_eq!(doc["@timestamp"], json!(a.event_time));
        assert_eq!(doc["event"]["kind"], "alert");
        assert_eq!(doc["event"]["dataset"], DATASET);
        assert_eq!(doc["event"]["action"], a.kind.as_str());
        assert_eq!(doc["event"]["id"], "a1");
        assert_eq!(doc["service"]["name"], json!(a.service));
        assert_eq!(doc["service"]["version"], "2.0");
        assert_eq!(doc["labels"]["severity"], a.severity.as_str());
        assert_eq!(doc["faultline"], serde_json::to_value(&a).unwrap());
        let message = doc["message"].as_str().unwrap();
        assert!(!message.starts_with('['), "{message}");
        assert!(a.summary().ends_with(message));
        // No error type, no error.* (a storm, an error rate).
        assert!(doc.get("error").is_none());
        a.fingerprint = Some(crate::fingerprint::Fingerprint(7));
        let doc = ecs_doc(&a);
        assert_eq!(doc["error"]["id"], json!(Fingerprint(7).to_string()));
        assert_eq!(doc["error"]["message"], json!(a.sample));
    }

    #[test]
    fn every_field_of_an_ecs_document_is_mapped() {
        let t: Value =
            serde_json::from_str(&template(ALERTS_ECS_TEMPLATE, ALERTS_TEMPLATE).unwrap()).unwrap();
        let props = t.pointer("/template/mappings/properties").unwrap();
        let mut a = crate::alert::test_alert("a1");
        a.version = Some("2.0".into());
        a.fingerprint = Some(Fingerprint(7));
        fn walk(doc: &Value, props: &Value, at: &str) {
            for (k, v) in doc.as_object().unwrap() {
                let p = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}{k} has no mapping"));
                if v.is_object() {
                    walk(v, &p["properties"], &format!("{at}{k}."));
                }
            }
        }
        walk(&ecs_doc(&a), props, "");
        assert_eq!(
            props.pointer("/faultline/properties/service/type"),
            Some(&json!("keyword")),
            "the v1 fields are mapped under faultline"
        );
        assert!(props.pointer("/faultline/properties/@timestamp").is_none());
    }
}
