//! The instruction meter: an Envoy run under `valgrind --tool=callgrind`
//! (see `Sidecar::callgrind`), its counters reset before a measurement and
//! dumped after it with `callgrind_control`.
//!
//! Why a second meter: CPU time on these shared 2-CPU machines moves by
//! ±15 µs per round on the proxied path, so most ratio targets read "within
//! noise". The instructions Envoy executes for the same requests are
//! nearly the same from run to run (three rounds of 3,000 requests agree
//! within about 0.5 %, 2 % where the filter's tick work lands in a round),
//! whatever else the machine does. They are not time: a hostcall that
//! misses the cache costs more time per instruction than a tight loop. The
//! two meters together say what a change costs and whether it is real.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Sets the Envoy's counters to zero.
pub fn zero(pid: u32) -> Result<(), String> {
    control(pid, "-z")
}

/// Writes the counts since [`zero`] to a new dump file in `dir` and returns
/// the instructions they total.
pub fn dump(pid: u32, dir: &Path) -> Result<u64, String> {
    let before = newest_dump(dir)?;
    control(pid, "-d")?;
    let after = newest_dump(dir)?;
    let Some((n, path)) = after.filter(|(n, _)| before.as_ref().is_none_or(|(b, _)| n > b)) else {
        return Err(format!("callgrind wrote no new dump in {}", dir.display()));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    total(&text).ok_or_else(|| format!("dump {n} ({}) has no totals line", path.display()))
}

fn control(pid: u32, flag: &str) -> Result<(), String> {
    crate::command::run(
        Command::new("callgrind_control").args([flag, &pid.to_string()]),
        "callgrind_control (valgrind; run `make setup`)",
    )
    .map(drop)
    .map_err(|e| format!("callgrind_control {flag} {pid}: {e}"))
}

/// The dump with the highest number: callgrind names them
/// `callgrind.out.<n>`, counting from 1 in the order it writes them.
fn newest_dump(dir: &Path) -> Result<Option<(u64, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name
                .to_str()?
                .strip_prefix("callgrind.out.")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n))
}

/// The instructions (`Ir`, the only event collected) a dump counts: its
/// `summary:` line, else its `totals:` line. (callgrind 3.19 writes both and
/// they differ by about 0.2 %; the summary is the one `callgrind_annotate`
/// reports as the program's total.)
fn total(dump: &str) -> Option<u64> {
    let line = |key: &str| {
        dump.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    line("summary:").or_else(|| line("totals:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_counts_the_instructions_of_its_summary_line() {
        let dump = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\n\
                    events: Ir\nsummary: 399800234\nfn=(1) 0x0001\n16 3\ntotals: 400432163\n";
        assert_eq!(total(dump), Some(399_800_234));
        assert_eq!(total("events: Ir\ntotals: 42\n"), Some(42));
        assert_eq!(total("events: Ir\n"), None);
    }

    #[test]
    fn the_newest_dump_is_the_highest_number_not_the_longest_name_or_last_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "callgrind.out",
            "callgrind.out.9",
            "callgrind.out.10",
            "other.10",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let (n, path) = newest_dump(dir.path()).unwrap().unwrap();
        assert_eq!(n, 10);
        assert!(path.ends_with("callgrind.out.10"));
    }
}
