//! Running a command-line tool to its end: the harness's one way to turn a
//! tool that cannot start, or fails, into an error that says which and shows
//! what it printed.

use std::process::{Command, Output};

/// Runs `cmd` to its end. `Err` says why it did not succeed: it could not
/// start (`what` names it, with where to get it), or it failed, followed by
/// what it wrote to stdout and stderr.
pub fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_tool_shows_what_it_printed_and_a_missing_one_is_named() {
        assert!(run(&mut Command::new("true"), "true").is_ok());
        let err = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            "sh",
        )
        .unwrap_err();
        assert_eq!(err, "out\nerr\n");
        let err = run(
            &mut Command::new("/nonexistent/tool"),
            "the tool (run `make setup`)",
        )
        .unwrap_err();
        assert!(
            err.starts_with("cannot run the tool (run `make setup`): "),
            "{err}"
        );
    }
}
