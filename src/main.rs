//! The `faultline` command line: parses arguments, loads configuration and
//! hands over to the library. Errors become `anyhow` here, at the edge, with
//! the context a user needs to act on them.

mod cli;

fn main() {
    let code = match cli::run() {
        Ok(code) => code,
        // The reader of our output went away (`| head`): nothing more to
        // say to anyone, and not a failure, as for ripgrep or ls.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("faultline: error: {}", cli::error_chain(&e));
            2
        }
    };
    std::process::exit(code);
}

/// Whether an error comes from writing to a closed pipe, however deep in the
/// chain (serde_json keeps the I/O error inside its own type).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}
