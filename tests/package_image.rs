//! The container image built without a container engine or a registry
//! (`scripts/image`: a root filesystem from Debian's packages with
//! mmdebstrap, the release tarball installed into it, packed with umoci)
//! is a valid OCI image layout, its configuration is the Dockerfile's, and
//! its root filesystem runs `faultline --version`, `config check` and the
//! README's demo as the image's non-root user, the way a container runtime
//! would start it (the image's user, environment and working directory,
//! under chroot).
//!
//! Skipped, with a message, where mmdebstrap or umoci are missing or the
//! test does not run as root (mmdebstrap's root mode, `umoci unpack` with
//! the layer's owners and chroot all need it). It downloads Debian
//! packages: about three minutes on this project's machine.

mod demo;
use demo::{alert_ids, expected_alerts};

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn missing_tools() -> Vec<&'static str> {
    let mut missing = Vec::new();
    for (tool, arg) in [
        ("mmdebstrap", "--version"),
        ("umoci", "--version"),
        ("chroot", "--version"),
    ] {
        if Command::new(tool).arg(arg).output().is_err() {
            missing.push(tool);
        }
    }
    missing
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blob a descriptor names, after checking its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().unwrap();
    let hexdigest = digest.strip_prefix("sha256:").unwrap();
    let data = std::fs::read(layout.join("blobs/sha256").join(hexdigest)).unwrap();
    assert_eq!(hex(&Sha256::digest(&data)), hexdigest, "digest of {digest}");
    assert_eq!(
        Some(data.len() as u64),
        descriptor["size"].as_u64(),
        "size of {digest}"
    );
    data
}

/// The runtime stage's instructions (the last `FROM`'s), keyed by
/// instruction, continuation lines joined.
fn runtime_stage(dockerfile: &str) -> BTreeMap<String, Vec<String>> {
    let joined = dockerfile.replace("\\\n", " ");
    let stage = joined.rsplit_once("\nFROM ").unwrap().1;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stage.lines().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once(' ').unwrap();
        out.entry(k.to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    out
}

fn json_array(v: &str) -> Value {
    serde_json::from_str(v).unwrap()
}

/// The unpacked image's process settings, as a runtime would apply them.
struct Runtime {
    rootfs: PathBuf,
    user: String,
    env: Vec<String>,
    cwd: String,
}

impl Runtime {
    fn run(&self, args: &[&str]) -> Output {
        // env -i: only the image's environment; cd: the image's WORKDIR.
        Command::new("chroot")
            .arg(format!("--userspec={}", self.user))
            .arg(&self.rootfs)
            .arg("/usr/bin/env")
            .arg("-i")
            .args(&self.env)
            .args(["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", &self.cwd])
            .args(args)
            .output()
            .unwrap()
    }
}

#[test]
fn the_image_built_without_an_engine_is_a_valid_oci_layout_that_runs_the_demo_as_a_non_root_user() {
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!(
            "skipped: {} not found (apt-get install mmdebstrap umoci); scripts/image needs them",
            missing.join(", ")
        );
        return;
    }
    if !is_root() {
        eprintln!("skipped: not root (mmdebstrap's root mode, umoci unpack and chroot need it)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("oci");
    let said = ok(
        Command::new(repo().join("scripts/image"))
            .arg("--binary")
            .arg(env!("CARGO_BIN_EXE_faultline"))
            .arg("--out")
            .arg(&layout)
            .output()
            .unwrap(),
        "scripts/image",
    );
    let reference = said.lines().last().unwrap().trim().to_string();
    let tag = reference.rsplit_once(':').unwrap().1.to_string();

    // The layout, checked as the OCI image spec has it: every blob's
    // digest and size, the media types, one layer per diff_id.
    let marker: Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(marker["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let descriptor = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
        .unwrap_or_else(|| panic!("no manifest tagged {tag} in {index}"));
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest: Value = serde_json::from_slice(&blob(&layout, descriptor)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config: Value = serde_json::from_slice(&blob(&layout, &manifest["config"])).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(layers.len(), diff_ids.len());
    assert!(!layers.is_empty());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob(&layout, layer)[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            diff_id.as_str().unwrap(),
            format!("sha256:{}", hex(&Sha256::digest(&tar)))
        );
    }
    assert_eq!(config["os"], "linux");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);

    // The image configuration is the Dockerfile's runtime stage.
    let df = runtime_stage(&std::fs::read_to_string(repo().join("Dockerfile")).unwrap());
    let c = &config["config"];
    assert_eq!(c["User"], df["USER"][0].as_str());
    assert_eq!(c["WorkingDir"], df["WORKDIR"][0].as_str());
    assert_eq!(c["StopSignal"], df["STOPSIGNAL"][0].as_str());
    assert_eq!(c["Entrypoint"], json_array(&df["ENTRYPOINT"][0]));
    assert_eq!(c["Cmd"], json_array(&df["CMD"][0]));
    for v in json_array(&df["VOLUME"][0]).as_array().unwrap() {
        assert!(c["Volumes"].get(v.as_str().unwrap()).is_some(), "{v}");
    }
    for port in &df["EXPOSE"] {
        assert!(c["ExposedPorts"].get(format!("{port}/tcp")).is_some());
    }
    for env in &df["ENV"] {
        let env = env.replacen(' ', "=", 1);
        assert!(
            c["Env"].as_array().unwrap().iter().any(|e| e == &env),
            "{env} not in {}",
            c["Env"]
        );
    }
    assert_ne!(c["User"], "0");
    assert_ne!(c["User"], "root");

    // umoci reads it back as an image and unpacks it as a runtime bundle.
    let bundle = tmp.path().join("bundle");
    ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(&reference)
            .arg(&bundle)
            .output()
            .unwrap(),
        "umoci unpack",
    );
    let spec: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let process = &spec["process"];
    let image = Runtime {
        rootfs: bundle.join("rootfs"),
        user: format!(
            "{}:{}",
            process["user"]["uid"].as_u64().unwrap(),
            process["user"]["gid"].as_u64().unwrap()
        ),
        env: process["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect(),
        cwd: process["cwd"].as_str().unwrap().to_string(),
    };
    assert_ne!(process["user"]["uid"], 0);

    // Not root inside, and the state volume is the user's to write.
    let id = ok(image.run(&["id", "-u"]), "id -u in the image");
    assert_eq!(id.trim(), process["user"]["uid"].to_string());
    ok(
        image.run(&["touch", "/var/lib/faultline/written-by-the-image-user"]),
        "writing the state directory",
    );

    // The same binary and version as the one packaged.
    let inside = ok(
        image.run(&["faultline", "--version"]),
        "faultline --version",
    );
    let outside = ok(
        Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("--version")
            .output()
            .unwrap(),
        "faultline --version",
    );
    assert_eq!(inside, outside);
    // The image's default configuration is valid where it lies, patterns included.
    let effective = ok(
        image.run(&["faultline", "config", "check"]),
        "faultline config check in the image",
    );
    assert!(
        effective.contains("/usr/share/faultline/patterns"),
        "{effective}"
    );

    // The README's demo in the image gives the alerts the repository's run gives.
    let demo = ok(
        image.run(&[
            "faultline",
            "replay",
            "--warmup",
            "30m",
            "/usr/share/faultline/demo/logs.jsonl",
        ]),
        "the demo in the image",
    );
    let expected = expected_alerts();
    assert_eq!(alert_ids(&demo), expected);
}
