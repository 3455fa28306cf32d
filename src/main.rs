//! The `faultline` command line: parses arguments, loads configuration and
//! hands over to the library. Errors become `anyhow` here, at the edge, with
//! the context a user needs to act on them.

mod cli;

fn main() {
    let code = match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("faultline: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}
