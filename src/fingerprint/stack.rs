//! Stack traces: which exception, thrown from where in *our* code.
//!
//! Two occurrences of one bug share an exception class and the top frames
//! of the application's own code; they differ in line numbers (a redeploy
//! shifts them), addresses, generated lambda and proxy class names, and the
//! framework frames above and below. So the identity keeps the class and the
//! top in-app frames as bare function names, and drops everything else.
//! Java (with `Caused by:` chains), Python, Go, Node.js and Rust traces are
//! recognised; anything else contributes no frames and the message decides.

use std::sync::LazyLock;

use regex::Regex;

/// What the identity takes from a stack trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StackInfo {
    pub exception: Option<String>,
    /// Normalised in-app frames, innermost (top) first.
    pub frames: Vec<String>,
}

/// Namespaces that are never "our code" unless configured otherwise:
/// language runtimes and the frameworks every service shares.
const NOT_IN_APP: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "org.springframework.",
    "org.apache.",
    "org.hibernate.",
    "io.netty.",
    "reactor.",
    "io.grpc.",
    "com.google.",
    "okhttp3.",
    "runtime.",
    "net/http.",
    "net.",
    "sync.",
    "reflect.",
    "testing.",
    "std::",
    "core::",
    "alloc::",
    "tokio::",
    "futures::",
    "rust_begin_unwind",
    "__rust",
    "node:",
    // How Node frames of dependencies and of Node itself are named below.
    "node_modules:",
    "internal/",
    "<frozen ",
    "python:",
];

static JAVA_FRAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*at\s+([\w$.<>\[\]/-]+)\(").expect("static regex"));
static PY_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*File "([^"]+)", line \d+, in (\S+)"#).expect("static regex")
});
static NODE_FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*at (?:async )?(?:new )?(?:(\S+) \((\S+?)(?::\d+)*\)|(\S+?)(?::\d+)+)\s*$")
        .expect("static regex")
});
static GO_FUNC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((?:[\w.-]+/)*[\w.-]+\.(?:\(\*?\w+\)\.)?[\w.]+)\(.*\)$").expect("static regex")
});
static RUST_FRAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\d+:\s+(?:0x[0-9a-f]+ - )?(\S+)").expect("static regex"));
static PY_EXCEPTION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z_][\w.]*)(?::\s|$)").expect("static regex"));
static RUST_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s+at \S+\.rs:\d+(?::\d+)?$").expect("static regex"));
/// Group 1 of this regex is its match without the optional `Caused by: `
/// and the final `:`: [`exception_class`] takes it from the match span, as
/// capture groups would run a slower engine for every error line.
static EXCEPTION_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:Caused by: )?((?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$][\w$]*(?:Exception|Error|Throwable|Fault|Failure|Interrupt|Exit|Warning))(?::|$)")
        .expect("static regex")
});

/// The exception class a line starts with (`java.io.IOException: …`,
/// `Caused by: x.YError`), by [`EXCEPTION_LINE`].
fn exception_class(line: &str) -> Option<&str> {
    let m = EXCEPTION_LINE.find(line)?.as_str();
    let m = m.strip_prefix("Caused by: ").unwrap_or(m);
    Some(m.strip_suffix(':').unwrap_or(m))
}

/// Strips what changes between builds from a function name: generated
/// lambda/proxy suffixes, anonymous class numbers, Rust symbol hashes.
pub fn normalize_function(f: &str) -> String {
    static GENERATED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"\$\$Lambda(?:\$\d+)?(?:/0x[0-9a-f]+)?(?:/\d+)?",
            r"|\$\$(?:EnhancerBy|FastClassBy|SpringCGLIB)\w*\$\$[0-9a-f]+",
            r"|\$(?:HibernateProxy|ByteBuddy)\$\w+",
            r"|::h[0-9a-f]{16}$",
            r"|\$\d+",
            r"|(lambda\$\w+?)\$\d+",
            r"|\[\d+\]",
        ))
        .expect("static regex")
    });
    GENERATED.replace_all(f, "$1").into_owned()
}

fn in_app(frame: &str, prefixes: &[String]) -> bool {
    if !prefixes.is_empty() {
        return prefixes.iter().any(|p| frame.starts_with(p.as_str()));
    }
    !NOT_IN_APP.iter().any(|p| frame.starts_with(p))
        && !frame.contains("site-packages/")
        && !frame.contains("/usr/lib/python")
        && !frame.contains("node_modules/")
}

/// Reads the exception class and the top `max_frames` in-app frames out of
/// `first_line` (the record's message) and `trace`.
pub fn analyze(
    first_line: &str,
    trace: Option<&str>,
    in_app_prefixes: &[String],
    max_frames: usize,
) -> StackInfo {
    let mut info = StackInfo {
        exception: exception_class(first_line.trim()).map(str::to_string),
        ..StackInfo::default()
    };
    let Some(trace) = trace else {
        return info;
    };
    let mut frames: Vec<String> = Vec::new();
    let mut python_last_exception: Option<String> = None;
    let mut is_python = false;
    let mut in_cause = false;
    for line in trace.lines() {
        let t = line.trim_end();
        if t.trim_start().starts_with("Caused by:") {
            // Frames of the cause repeat the outer ones ("... N more") or
            // describe a library's internals; the outer frames identify.
            in_cause = true;
            continue;
        }
        if let Some(c) = JAVA_FRAME.captures(t) {
            if !in_cause {
                // Generated names first (they contain `/`), then the JPMS
                // module prefix (`java.base/`).
                let f = normalize_function(&c[1]);
                frames.push(f.rsplit('/').next().unwrap_or("").to_string());
            }
            continue;
        }
        if let Some(c) = PY_FRAME.captures(t) {
            is_python = true;
            // Python prints the outermost frame first: we reverse below.
            // Installed libraries keep a `site-packages/` prefix (without
            // the interpreter's own path, which differs between hosts), so
            // they are recognised as not in-app.
            let file = match c[1]
                .rsplit_once("site-packages/")
                .or_else(|| c[1].rsplit_once("dist-packages/"))
            {
                Some((_, f)) => format!("site-packages/{f}"),
                None => c[1].to_string(),
            };
            frames.push(format!("{}:{}", file, &c[2]));
            continue;
        }
        if RUST_AT.is_match(t) {
            continue;
        }
        if let Some(c) = NODE_FRAME.captures(t) {
            let name = c
                .get(1)
                .map(|m| m.as_str())
                .or_else(|| c.get(3).map(|m| m.as_str()))
                .unwrap_or("");
            let file = c.get(2).map(|m| m.as_str()).unwrap_or("");
            if file.contains("node_modules/") || file.starts_with("node:") {
                frames.push(format!("node_modules:{name}"));
            } else {
                frames.push(normalize_function(name));
            }
            continue;
        }
        if let Some(c) = GO_FUNC.captures(t) {
            frames.push(c[1].to_string());
            continue;
        }
        if let Some(c) = RUST_FRAME.captures(t) {
            frames.push(normalize_function(&c[1]));
            continue;
        }
        if is_python
            && !line.starts_with(char::is_whitespace)
            && let Some(c) = PY_EXCEPTION.captures(t)
        {
            python_last_exception = Some(c[1].to_string());
        }
        if info.exception.is_none()
            && !line.starts_with(char::is_whitespace)
            && let Some(class) = exception_class(t)
        {
            info.exception = Some(class.to_string());
        }
    }
    if is_python {
        frames.reverse();
        if python_last_exception.is_some() {
            info.exception = python_last_exception;
        }
    }
    // Go (`panic: …`) and Rust (`thread 'main' panicked at src/x.rs:1:2:`)
    // panics have no class: "panic" is their kind.
    if info.exception.is_none()
        && (first_line.trim_start().starts_with("panic: ") || first_line.contains(" panicked at "))
    {
        info.exception = Some("panic".into());
    }
    info.frames = frames
        .into_iter()
        .filter(|f| !f.is_empty() && in_app(f, in_app_prefixes))
        .take(max_frames)
        .collect();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAVA: &str = "java.lang.IllegalStateException: cart 42 is closed\n\
        \tat java.base/java.util.Objects.requireNonNull(Objects.java:233)\n\
        \tat com.shop.checkout.Cart.close(Cart.java:88)\n\
        \tat com.shop.checkout.CheckoutService.lambda$submit$3(CheckoutService.java:120)\n\
        \tat com.shop.checkout.CheckoutService$$Lambda$412/0x0000000800c4b440.apply(Unknown Source)\n\
        \tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n\
        Caused by: java.sql.SQLException: connection reset\n\
        \tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)\n\
        \t... 12 more";

    #[test]
    fn java_traces_give_class_and_in_app_frames_without_line_numbers() {
        let info = analyze("checkout failed", Some(JAVA), &[], 3);
        assert_eq!(
            info.exception.as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(
            info.frames,
            [
                "com.shop.checkout.Cart.close",
                "com.shop.checkout.CheckoutService.lambda$submit",
                "com.shop.checkout.CheckoutService.apply"
            ]
        );
    }

    #[test]
    fn shifted_line_numbers_and_lambda_ids_do_not_change_the_frames() {
        let moved = JAVA
            .replace("Cart.java:88", "Cart.java:91")
            .replace("$3(", "$7(")
            .replace(
                "$$Lambda$412/0x0000000800c4b440",
                "$$Lambda$977/0x0000000801aa0000",
            );
        assert_eq!(
            analyze("x", Some(JAVA), &[], 3),
            analyze("x", Some(&moved), &[], 3)
        );
    }

    #[test]
    fn configured_in_app_prefixes_select_frames() {
        let info = analyze("x", Some(JAVA), &["com.zaxxer.".into()], 3);
        assert!(
            info.frames.is_empty(),
            "frames of a Caused-by are not the identity"
        );
        let info = analyze("x", Some(JAVA), &["com.shop.checkout.Cart".into()], 3);
        assert_eq!(info.frames, ["com.shop.checkout.Cart.close"]);
    }

    #[test]
    fn the_exception_class_from_the_match_span_equals_the_capture_group() {
        for line in [
            "java.lang.IllegalStateException: cart closed",
            "Caused by: java.io.IOException: broken pipe",
            "Caused by: java.io.IOException",
            "ValueError",
            "com.x.FooError:no space",
            "not an exception line",
            "Caused by: nothing here",
        ] {
            let want = EXCEPTION_LINE
                .captures(line)
                .map(|c| c.get(1).map_or("", |g| g.as_str()));
            assert_eq!(exception_class(line), want, "{line}");
        }
    }

    #[test]
    fn python_tracebacks_take_the_last_exception_and_innermost_frames_first() {
        let tb = "Traceback (most recent call last):\n  \
            File \"/app/payments/api.py\", line 41, in charge\n    client.post(x)\n  \
            File \"/app/payments/client.py\", line 12, in post\n    raise PaymentDeclined(code)\n  \
            File \"/usr/lib/python3.11/site-packages/requests/api.py\", line 5, in post\n\
            payments.errors.PaymentDeclined: card 4242 declined";
        let info = analyze("payment failed", Some(tb), &[], 3);
        assert_eq!(
            info.exception.as_deref(),
            Some("payments.errors.PaymentDeclined")
        );
        assert_eq!(
            info.frames,
            [
                "/app/payments/client.py:post",
                "/app/payments/api.py:charge"
            ],
            "library frames are not in-app"
        );
    }

    #[test]
    fn a_different_cause_depth_does_not_change_the_identity() {
        let deeper = JAVA.replace("... 12 more", "... 31 more");
        assert_eq!(
            analyze("x", Some(JAVA), &[], 3),
            analyze("x", Some(&deeper), &[], 3)
        );
    }

    #[test]
    fn python_library_frames_count_when_configured_in_app() {
        let tb = "Traceback (most recent call last):\n  \
            File \"/srv/venv/lib/python3.12/site-packages/shoplib/cart.py\", line 9, in add\n\
            ValueError: bad quantity";
        let info = analyze("x", Some(tb), &["site-packages/shoplib/".into()], 3);
        assert_eq!(info.frames, ["site-packages/shoplib/cart.py:add"]);
        assert_eq!(info.exception.as_deref(), Some("ValueError"));
    }

    #[test]
    fn go_panics_give_function_frames_not_addresses() {
        let tb = "goroutine 1 [running]:\nmain.(*Server).handle(0xc000012345, 0x1)\n\t/src/app/server.go:42 +0x1d\nruntime.goexit()\n\t/usr/local/go/src/runtime/asm_amd64.s:1571 +0x1";
        let info = analyze(
            "panic: runtime error: index out of range [3] with length 3",
            Some(tb),
            &[],
            3,
        );
        assert_eq!(info.exception.as_deref(), Some("panic"));
        assert_eq!(info.frames, ["main.(*Server).handle"]);
    }

    #[test]
    fn node_frames_drop_positions_and_node_internals() {
        let tb = "    at Object.charge (/app/src/pay.js:10:5)\n    at processTicksAndRejections (node:internal/process/task_queues:95:5)";
        let info = analyze("TypeError: x is undefined", Some(tb), &[], 3);
        assert_eq!(info.exception.as_deref(), Some("TypeError"));
        assert_eq!(info.frames, ["Object.charge"]);
        let moved = tb.replace("pay.js:10:5", "pay.js:12:9");
        assert_eq!(
            info,
            analyze("TypeError: x is undefined", Some(&moved), &[], 3)
        );
    }

    #[test]
    fn node_constructor_frames_are_recognised() {
        let tb = "    at new Gateway (/app/src/gateway.js:4:11)\n    at Object.<anonymous> (/app/src/main.js:1:1)";
        let info = analyze("Error: no key", Some(tb), &[], 3);
        assert_eq!(info.frames, ["Gateway", "Object.<anonymous>"]);
    }

    #[test]
    fn rust_backtraces_drop_symbol_hashes() {
        let tb = "stack backtrace:\n   0: std::panicking::begin_panic\n   1: myapp::orders::place::h0123456789abcdef\n             at ./src/orders.rs:10:5";
        let info = analyze(
            "thread 'main' panicked at src/orders.rs:10:5:",
            Some(tb),
            &[],
            3,
        );
        assert_eq!(info.frames, ["myapp::orders::place"]);
        assert_eq!(info.exception.as_deref(), Some("panic"));
        let rebuilt = tb.replace("h0123456789abcdef", "hfedcba9876543210");
        assert_eq!(
            info,
            analyze(
                "thread 'main' panicked at src/orders.rs:10:5:",
                Some(&rebuilt),
                &[],
                3
            )
        );
    }
}
