//! The retention policy of the alerts data stream
//! (`[elasticsearch.lifecycle]`): an ILM policy on Elasticsearch, an ISM
//! policy on OpenSearch. The two servers share the idea (roll the stream
//! over after an age, delete old backing indices after another) but not
//! one request, so the policy is built per server from one configuration.
//!
//! Like the index templates, a policy is installed once and again only
//! when faultline's own policy changes: it carries a digest of what
//! faultline would send (ILM in `_meta.faultline_digest`, ISM — which has
//! no `_meta` — at the end of its `description`), and a start that finds
//! the same digest sends nothing, so an operator's edit of other parts
//! survives restarts.
//!
//! ILM attaches through the index template (`index.lifecycle.name`); ISM
//! through the policy's own `ism_template`, which ISM matches against the
//! data stream's name when a backing index is created, so the index
//! template stays free of a setting OpenSearch would refuse. ISM applies a
//! policy to indices created after it was stored: installing it before the
//! first alert creates the stream matters, and an updated policy reaches
//! older backing indices only through ISM's change-policy API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{ElasticsearchConfig, LifecycleConfig};
use crate::es::Flavor;

/// A policy ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// `_ilm/policy/<name>` or `_plugins/_ism/policies/<name>`.
    pub path: String,
    pub body: Value,
    pub digest: String,
}

impl Policy {
    /// The policy `[elasticsearch.lifecycle]` asks for, shaped for `flavor`.
    pub fn new(cfg: &ElasticsearchConfig, l: &LifecycleConfig, flavor: Flavor) -> Policy {
        let name = l.policy.clone().unwrap_or_else(|| cfg.alerts_index.clone());
        let rollover = time_value(l.rollover_after.0);
        let delete = time_value(l.delete_after.0);
        let what = format!(
            "faultline alerts in {}: roll over after {rollover}, delete after {delete}",
            cfg.alerts_index
        );
        let (path, body) = match flavor {
            Flavor::Elasticsearch => (
                format!("/_ilm/policy/{}", super::urlencode(&name)),
                json!({"policy": {
                    "_meta": {"description": what},
                    "phases": {
                        "hot": {"actions": {"rollover": {"max_age": rollover}}},
                        // ILM counts a phase's min_age from the rollover.
                        "delete": {"min_age": delete, "actions": {"delete": {}}},
                    },
                }}),
            ),
            Flavor::OpenSearch => (
                format!("/_plugins/_ism/policies/{}", super::urlencode(&name)),
                json!({"policy": {
                    "description": what,
                    "default_state": "hot",
                    "states": [
                        {
                            "name": "hot",
                            "actions": [{"rollover": {"min_index_age": rollover}}],
                            // ISM counts min_index_age from the index's creation.
                            "transitions": [{"state_name": "delete", "conditions": {"min_index_age": delete}}],
                        },
                        {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
                    ],
                    // ISM matches a stream's backing indices by the stream's
                    // name (its ManagedIndexCoordinator looks the parent
                    // data stream up), at their creation.
                    "ism_template": [{"index_patterns": [cfg.alerts_index], "priority": 100}],
                }}),
            ),
        };
        let digest = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(body.to_string().as_bytes())
        );
        let mut body = body;
        match flavor {
            Flavor::Elasticsearch => {
                body["policy"]["_meta"]["faultline_digest"] = json!(digest);
            }
            Flavor::OpenSearch => {
                let d = format!("{what} (faultline_digest {digest})");
                body["policy"]["description"] = json!(d);
            }
        }
        Policy {
            name,
            path,
            body,
            digest,
        }
    }

    /// Whether a GET of the policy answered with this very policy.
    pub fn is_installed(&self, status: u16, got: &Value) -> bool {
        if status != 200 {
            return false;
        }
        // ILM answers {name: {policy: {...}}}, ISM {_id, policy: {...}}.
        let policy = got
            .get(&self.name)
            .map(|p| &p["policy"])
            .unwrap_or(&got["policy"]);
        let ilm = policy["_meta"]["faultline_digest"].as_str();
        let ism = policy["description"]
            .as_str()
            .and_then(|d| d.rsplit_once("(faultline_digest "))
            .map(|(_, d)| d.trim_end_matches(')'));
        ilm.or(ism) == Some(self.digest.as_str())
    }

    /// The query an ISM update needs (optimistic concurrency on the
    /// policy document); none for a new policy or for ILM.
    pub fn update_query(status: u16, got: &Value) -> Vec<(&'static str, String)> {
        match (
            status,
            got["_seq_no"].as_u64(),
            got["_primary_term"].as_u64(),
        ) {
            (200, Some(seq), Some(term)) => {
                vec![
                    ("if_seq_no", seq.to_string()),
                    ("if_primary_term", term.to_string()),
                ]
            }
            _ => Vec::new(),
        }
    }
}

/// A duration in the largest whole unit both servers' time values accept.
pub fn time_value(d: Duration) -> String {
    let s = d.as_secs().max(1);
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// Whether an answer says the server has no lifecycle API at all (ISM is
/// a plugin; a core OpenSearch or a trimmed distribution lacks it).
pub fn unsupported(status: u16, v: &Value) -> bool {
    let reason = super::reason(v);
    (status == 400 && reason.contains("no handler found")) || status == 405
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    fn cfgs() -> (ElasticsearchConfig, LifecycleConfig) {
        let cfg = ElasticsearchConfig {
            alerts_index: "ops-alerts".into(),
            data_stream: true,
            ..ElasticsearchConfig::default()
        };
        let l = LifecycleConfig {
            policy: None,
            rollover_after: Dur::secs(86_400),
            delete_after: Dur::secs(30 * 86_400),
        };
        (cfg, l)
    }

    #[test]
    fn durations_become_the_largest_whole_unit() {
        assert_eq!(time_value(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(time_value(Duration::from_secs(5_400)), "90m");
        assert_eq!(time_value(Duration::from_secs(7_200)), "2h");
        assert_eq!(time_value(Duration::from_secs(61)), "61s");
    }

    #[test]
    fn an_ilm_policy_rolls_over_and_deletes_at_the_configured_ages() {
        let (cfg, l) = cfgs();
        let p = Policy::new(&cfg, &l, Flavor::Elasticsearch);
        assert_eq!(p.path, "/_ilm/policy/ops-alerts");
        let phases = &p.body["policy"]["phases"];
        assert_eq!(phases["hot"]["actions"]["rollover"]["max_age"], "1d");
        assert_eq!(phases["delete"]["min_age"], "30d");
        assert!(phases["delete"]["actions"]["delete"].is_object());
        // What GET _ilm/policy answers for it counts as installed.
        let got = json!({"ops-alerts": {"version": 1, "policy": p.body["policy"]}});
        assert!(p.is_installed(200, &got));
        assert!(!p.is_installed(404, &got));
    }

    #[test]
    fn an_ism_policy_attaches_to_the_stream_and_carries_its_digest_in_the_description() {
        let (cfg, mut l) = cfgs();
        l.policy = Some("keep-30d".into());
        let p = Policy::new(&cfg, &l, Flavor::OpenSearch);
        assert_eq!(p.path, "/_plugins/_ism/policies/keep-30d");
        let pol = &p.body["policy"];
        assert_eq!(pol["default_state"], "hot");
        assert_eq!(
            pol["states"][0]["actions"][0]["rollover"]["min_index_age"],
            "1d"
        );
        assert_eq!(
            pol["states"][0]["transitions"][0]["conditions"]["min_index_age"],
            "30d"
        );
        assert_eq!(pol["states"][1]["name"], "delete");
        assert_eq!(
            pol["ism_template"][0]["index_patterns"],
            json!(["ops-alerts"])
        );
        // GET _plugins/_ism/policies/<id> answers the policy with its
        // sequence numbers, which an update must quote.
        let mut got = json!({"_id": "keep-30d", "_seq_no": 7, "_primary_term": 1, "policy": pol});
        assert!(p.is_installed(200, &got));
        assert_eq!(
            Policy::update_query(200, &got),
            [
                ("if_seq_no", "7".to_string()),
                ("if_primary_term", "1".to_string())
            ]
        );
        // Another retention is another policy: re-sent.
        l.delete_after = Dur::secs(7 * 86_400);
        let q = Policy::new(&cfg, &l, Flavor::OpenSearch);
        assert_ne!(q.digest, p.digest);
        assert!(!q.is_installed(200, &got));
        got["policy"]["description"] = json!("edited by hand");
        assert!(!p.is_installed(200, &got));
        assert!(Policy::update_query(404, &json!({})).is_empty());
    }

    #[test]
    fn a_server_without_the_api_is_told_apart_from_a_refusal() {
        let none = json!({"error": "no handler found for uri [/_plugins/_ism/policies/x] and method [GET]"});
        assert!(unsupported(400, &none));
        let bad = json!({"error": {"type": "x_content_parse_exception", "reason": "bad policy"}});
        assert!(!unsupported(400, &bad));
    }

    #[test]
    fn the_lifecycle_table_reads_humantime_ages_and_needs_a_data_stream() {
        use crate::config::{Config, DocumentShape};
        use std::path::Path;
        let text = "[elasticsearch]\ndata_stream = true\ndocument = \"ecs\"\n\
                    [elasticsearch.lifecycle]\nrollover_after = \"1h30m\"\ndelete_after = \"7d\"\n";
        let c = Config::from_toml(text, Path::new("f.toml"), &[]).unwrap();
        let l = c.elasticsearch.lifecycle.as_ref().unwrap();
        assert_eq!(l.rollover_after, Dur::secs(5_400));
        assert_eq!(l.delete_after, Dur::secs(7 * 86_400));
        assert_eq!(c.elasticsearch.document, DocumentShape::Ecs);
        assert_eq!(
            Config::default().elasticsearch.document,
            DocumentShape::Faultline
        );
        let plain = "[elasticsearch.lifecycle]\ndelete_after = \"30d\"\n";
        let err = Config::from_toml(plain, Path::new("f.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("data_stream"), "{err}");
    }
}
