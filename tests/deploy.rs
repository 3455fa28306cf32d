//! The deployment files checked against faultline itself and the tools that
//! read them: promtool accepts the metrics of a real `faultline run`, the
//! alerting rules (and passes their unit tests), and every dashboard query,
//! which names only metrics faultline exports; the Kubernetes manifests,
//! the container image and the systemd unit agree with faultline's own
//! ports, paths and probes; `systemd-analyze verify` accepts the unit.
//!
//! promtool comes from `FAULTLINE_PROMTOOL`, else `scripts/promtool.sh`
//! (which builds it once from its Go module; scripts/test does so before
//! the tests run).

mod demo;
mod support;
use demo::{alert_ids, expected_alerts};
use support::{Killed, free_port, http_get};

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("FAULTLINE_PROMTOOL") {
        return PathBuf::from(p);
    }
    let o = Command::new(repo().join("scripts/promtool.sh"))
        .arg("path")
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/promtool.sh runs");
    assert!(o.status.success(), "promtool could not be built");
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

fn ok(o: Output, what: &str) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{what}:\n{out}\n{err}");
    format!("{out}{err}")
}

/// The `/metrics` body of a real `faultline run` with a file and an
/// Elasticsearch sink. Neither a broker nor a search server is needed:
/// both addresses refuse connections, which `run` survives (unready,
/// spooling), and every family is exported from its start.
fn scrape() -> &'static str {
    static BODY: OnceLock<String> = OnceLock::new();
    BODY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let tag = format!("deploy-{}-{port}", std::process::id());
        let cfg = dir.path().join("faultline.toml");
        std::fs::write(
            &cfg,
            format!(
                "[kafka]\nbrokers = \"127.0.0.1:9\"\ntopics = [\"{tag}\"]\ngroup_id = \"{tag}\"\n\
                 [metrics]\nlisten = \"127.0.0.1:{port}\"\n\
                 [elasticsearch]\nurl = \"http://127.0.0.1:9\"\ntimeout = \"1s\"\n"
            ),
        )
        .unwrap();
        let _run = Killed(
            Command::new(env!("CARGO_BIN_EXE_faultline"))
                .arg("--config")
                .arg(&cfg)
                .arg("run")
                .arg("--state")
                .arg(dir.path().join("state"))
                .arg("--alerts")
                .arg(dir.path().join("alerts.jsonl"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let r = http_get(port, "/metrics");
                if let Some((head, body)) = r.split_once("\r\n\r\n")
                    && head.starts_with("HTTP/1.1 200")
                    && body.contains("faultline_sink_spooled_alerts{")
                {
                    return body.to_string();
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no metrics from faultline run"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Metric names the scrape declares (`# TYPE`), with a histogram's series.
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for l in scrape().lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, ty) = (it.next().unwrap(), it.next().unwrap());
            names.insert(name.to_string());
            if ty == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{s}"));
                }
            }
        }
    }
    names
}

/// The faultline and process metric names an expression reads.
fn names_in(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\b(?:faultline|process)_[a-z_]+\b").unwrap();
    re.find_iter(expr).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn promtool_accepts_the_metrics_of_faultline_run() {
    let body = scrape();
    for name in [
        "faultline_build_info",
        "faultline_ready",
        "faultline_up",
        "faultline_input_bytes_total",
        "faultline_ignored_records_total",
        "faultline_sink_failures_total",
        "faultline_kafka_batch_failures_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{body}"
        );
    }
    assert!(body.contains("faultline_sink_spooled_alerts{sink=\"elasticsearch\"} 0"));
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let said = ok(o, "promtool check metrics");
    // Lint findings are printed even when it exits 0: there must be none.
    assert!(said.trim().is_empty(), "promtool check metrics: {said}");
}

#[test]
fn promtool_accepts_the_alerting_rules_and_their_unit_tests_pass() {
    let dir = repo().join("deploy/prometheus");
    let said = ok(
        Command::new(promtool())
            .args(["check", "rules", "faultline-rules.yml"])
            .current_dir(&dir)
            .output()
            .unwrap(),
        "promtool check rules",
    );
    assert!(said.contains("SUCCESS: 6 rules found"), "{said}");
    ok(
        Command::new(promtool())
            .args(["test", "rules", "faultline-rules.test.yml"])
            .current_dir(&dir)
            .output()
            .unwrap(),
        "promtool test rules",
    );
    // Every rule reads metrics faultline exports (or Prometheus' own `up`).
    let rules = std::fs::read_to_string(dir.join("faultline-rules.yml")).unwrap();
    let rules: Value = serde_yaml_ng::from_str(&rules).unwrap();
    let have = exported();
    let mut alerts = Vec::new();
    for g in rules["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            alerts.push(r["alert"].as_str().unwrap().to_string());
            for n in names_in(r["expr"].as_str().unwrap()) {
                assert!(
                    have.contains(&n),
                    "rule {} reads {n}, not exported",
                    r["alert"]
                );
            }
        }
    }
    // And each has a unit test.
    let tests = std::fs::read_to_string(dir.join("faultline-rules.test.yml")).unwrap();
    for a in alerts {
        assert!(
            tests.contains(&format!("alertname: {a}\n")),
            "{a} has no unit test"
        );
    }
}

#[test]
fn every_dashboard_query_parses_with_promtool_and_reads_only_exported_metrics() {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/faultline.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            exprs.push((
                p["title"].to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let have = exported();
    // Grafana's variables as a user would set them, then each query as a
    // recording rule: `promtool check rules` parses every expression.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (title, e)) in exprs.iter().enumerate() {
        let names = names_in(e);
        assert!(!names.is_empty(), "{title}: {e}");
        for n in names {
            assert!(have.contains(&n), "{title}: {n} is not exported");
        }
        let e = e
            .replace("$__rate_interval", "2m")
            .replace("$__range", "6h")
            .replace("$job", "faultline")
            .replace("$instance", ".*");
        assert!(!e.contains('$'), "an unknown variable in {e}");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dashboard-rules.yml");
    std::fs::write(&f, &rules).unwrap();
    let said = ok(
        Command::new(promtool())
            .args(["check", "rules"])
            .arg(&f)
            .output()
            .unwrap(),
        &rules,
    );
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{said}"
    );
    // The variables' own queries read exported metrics too.
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            for n in names_in(q) {
                assert!(have.contains(&n), "variable {}: {n}", v["name"]);
            }
        }
    }
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `faultline config check` on `toml`: the effective configuration.
fn effective_config(toml: &str) -> toml::Table {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("faultline.toml");
    std::fs::write(&f, toml).unwrap();
    let out = ok(
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--config")
            .arg(&f)
            .args(["config", "check"])
            .current_dir(dir.path())
            .output()
            .unwrap(),
        "config check",
    );
    out.parse().unwrap()
}

fn seconds(d: &str) -> u64 {
    let n: u64 = d.trim_end_matches('s').parse().unwrap();
    assert!(d.ends_with('s'), "{d}");
    n
}

#[test]
fn the_kubernetes_manifests_agree_with_faultline_ports_paths_and_probes() {
    let kust = yaml("deploy/kubernetes/kustomization.yaml");
    let files: Vec<&str> = kust["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in &files {
        let m = yaml(&format!("deploy/kubernetes/{f}"));
        assert!(m["apiVersion"].is_string() && m["kind"].is_string(), "{f}");
        assert_eq!(m["metadata"]["name"], "faultline", "{f}");
    }
    let cm = yaml("deploy/kubernetes/configmap.yaml");
    let toml_text = cm["data"]["faultline.toml"].as_str().unwrap();
    // The shipped configuration is valid for faultline itself.
    let cfg = effective_config(toml_text);
    let listen = cfg["metrics"]["listen"].as_str().unwrap();
    let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "reachable from the kubelet: {listen}"
    );

    let sts = yaml("deploy/kubernetes/statefulset.yaml");
    assert_eq!(sts["kind"], "StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let ports = c["ports"].as_array().unwrap();
    let metrics_port = ports.iter().find(|p| p["name"] == "metrics").unwrap();
    assert_eq!(metrics_port["containerPort"], port);
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    // The arguments name the mounted config file and a state directory on
    // the claimed volume.
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(args[2], "run");
    let mounts = c["volumeMounts"].as_array().unwrap();
    let mount = |name: &str| {
        mounts.iter().find(|m| m["name"] == name).unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let config = after("--config");
    assert_eq!(
        Path::new(config),
        Path::new(&mount("config")).join("faultline.toml")
    );
    let state = after("--state");
    assert!(Path::new(state).starts_with(mount("state")), "{state}");
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["metadata"]["name"], "state");
    let volumes = pod["volumes"].as_array().unwrap();
    let cfg_vol = volumes.iter().find(|v| v["name"] == "config").unwrap();
    assert_eq!(cfg_vol["configMap"]["name"], cm["metadata"]["name"]);
    // SIGTERM: the grace period outlasts faultline's own shutdown bound.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let shutdown = seconds(cfg["kafka"]["shutdown_timeout"].as_str().unwrap());
    assert!(grace > shutdown, "{grace} <= {shutdown}");
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    let svc = yaml("deploy/kubernetes/service.yaml");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"], port);
    assert_eq!(
        svc["spec"]["selector"],
        sts["spec"]["template"]["metadata"]["labels"]
    );
    let sm = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    // The job label the alerting rules select.
    let job_label = sm["spec"]["jobLabel"].as_str().unwrap();
    assert_eq!(svc["metadata"]["labels"][job_label], "faultline");

    // The image runs as the user the pod expects, with the state volume at
    // the same place and the same port.
    let df = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(df.contains(&format!("USER {uid}:{uid}")), "Dockerfile user");
    assert!(df.contains(&format!("VOLUME [\"{}\"]", mount("state"))));
    assert!(df.contains(&format!("EXPOSE {port}")));
    // The image's own configuration (deploy/container, which the
    // Dockerfile and scripts/image both install).
    let image_cfg =
        std::fs::read_to_string(repo().join("deploy/container/faultline.toml")).unwrap();
    assert!(image_cfg.contains(&format!("listen = \"0.0.0.0:{port}\"")));
    assert!(df.contains("deploy/container/install-rootfs"));
}

#[test]
fn systemd_accepts_the_unit_and_its_paths_are_faultlines() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/faultline.service")).unwrap();
    for key in [
        "DynamicUser=yes",
        "StateDirectory=faultline",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    assert!(exec.contains(" run --state ${STATE_DIRECTORY}/"), "{exec}");
    // The stop timeout outlasts faultline's own shutdown bound.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    let cfg = effective_config("");
    assert!(stop > seconds(cfg["kafka"]["shutdown_timeout"].as_str().unwrap()));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped systemd-analyze verify: not on this machine");
        return;
    }
    // verify wants the ExecStart binary to exist: point it at the one built.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("faultline.service");
    std::fs::write(
        &f,
        unit.replace("/usr/local/bin/faultline", env!("CARGO_BIN_EXE_faultline")),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&f)
        .output()
        .unwrap();
    let said = ok(o, "systemd-analyze verify");
    // Unknown keys and bad values are warnings with exit 0: none allowed.
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
}

#[test]
fn the_release_tarball_unpacks_anywhere_and_runs_the_demo_as_the_repository_does() {
    let tmp = tempfile::tempdir().unwrap();
    let said = ok(
        Command::new(repo().join("scripts/package"))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_faultline"))
            .arg("--out")
            .arg(tmp.path())
            .output()
            .unwrap(),
        "scripts/package",
    );
    let tarball = PathBuf::from(said.lines().last().unwrap().trim());
    assert!(tarball.exists(), "{said}");
    let unpacked = tmp.path().join("fresh");
    std::fs::create_dir(&unpacked).unwrap();
    ok(
        Command::new("tar")
            .arg("-C")
            .arg(&unpacked)
            .arg("-xzf")
            .arg(&tarball)
            .output()
            .unwrap(),
        "tar",
    );
    let root = std::fs::read_dir(&unpacked)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for f in [
        "bin/faultline",
        "etc/faultline.toml",
        "patterns",
        "share/man/man1/faultline.1",
        "share/man/man1/faultline-rollout-check.1",
        "share/completions/faultline.bash",
        "share/completions/_faultline",
        "share/completions/faultline.fish",
        "share/deploy/systemd/faultline.service",
        "share/deploy/kubernetes/statefulset.yaml",
        "share/deploy/Dockerfile",
        "docs/deploy.md",
    ] {
        assert!(root.join(f).exists(), "{f} missing from the tarball");
    }
    // The demo from the unpacked tree, started from elsewhere, gives the
    // alerts the repository's own run gives.
    let elsewhere = tempfile::tempdir().unwrap();
    let demo = ok(
        Command::new(root.join("demo"))
            .current_dir(elsewhere.path())
            .env_remove("FAULTLINE_CONFIG")
            .output()
            .unwrap(),
        "the packaged demo",
    );
    let expected = expected_alerts();
    assert_eq!(alert_ids(&demo), expected);
}
