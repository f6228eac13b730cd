//! What a harness that ends without dropping anything leaves behind, and how
//! it leaves nothing for long. A release build of the bench aborts on panic,
//! and a harness stopped by a signal drops nothing either, so neither `Drop`
//! nor `TempDir` cleans up after it:
//!
//! - a process the harness starts through [`command`] gets SIGKILL from the
//!   kernel when the thread that started it ends (`setpriv --pdeathsig`,
//!   util-linux), stopped (SIGSTOP) processes included. The harness starts
//!   its services on a test's thread or a tokio worker, both of which outlive
//!   the handle;
//! - a directory made by [`temp_dir`] names the process that owns it, and the
//!   first [`temp_dir`] of a later harness removes every one whose owner is
//!   gone.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::Once;

/// `program`, to be killed when the calling thread ends.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

/// The file in each of the harness's temporary directories that holds the
/// owning process's pid.
const OWNER: &str = "owner";

/// Every directory the harness makes starts with this, whatever its prefix.
const PREFIX: &str = "canary-";

/// A fresh directory `canary-<what>-XXXXXX` in the system's temp directory,
/// removed on drop; a dead harness's are removed by the next one.
pub fn temp_dir(what: &str) -> tempfile::TempDir {
    static SWEPT: Once = Once::new();
    let root = std::env::temp_dir();
    SWEPT.call_once(|| sweep(&root));
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{what}-"))
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("cannot make a directory in {}: {e}", root.display()));
    std::fs::write(dir.path().join(OWNER), std::process::id().to_string())
        .unwrap_or_else(|e| panic!("cannot write in {}: {e}", dir.path().display()));
    dir
}

/// Removes the harness's directories in `root` whose owner no longer runs.
/// A directory without an owner file (being made right now, or not the
/// harness's) stays, and so does one whose owner's pid now belongs to another
/// process: a leftover kept is harmless, a live directory removed is not.
pub fn sweep(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let dir = e.path();
        let owner = std::fs::read_to_string(dir.join(OWNER)).ok();
        let Some(pid) = owner.and_then(|o| o.trim().parse::<u32>().ok()) else {
            continue;
        };
        if state(pid).is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// The state letter `/proc/<pid>/stat` shows for a process (`R`, `S`, `T`
/// for stopped, `Z` for a zombie), `None` once it is gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Whether process `pid` is dead: gone, or a zombie nobody waits for.
pub fn dead(pid: u32) -> bool {
    matches!(state(pid), None | Some('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_only_the_directories_whose_owner_is_gone() {
        let root = tempfile::tempdir().unwrap();
        let mut exited = Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let make = |name: &str, owner: Option<u32>| {
            let d = root.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("envoy.log"), "log").unwrap();
            if let Some(pid) = owner {
                std::fs::write(d.join(OWNER), pid.to_string()).unwrap();
            }
            d
        };
        let dead = make("canary-envoy-dead", Some(exited.id()));
        let alive = make("canary-envoy-alive", Some(std::process::id()));
        let unowned = make("canary-envoy-new", None);
        let foreign = make("other-dead", Some(exited.id()));
        sweep(root.path());
        assert!(!dead.exists(), "a dead owner's directory stays");
        assert!(alive.exists() && unowned.exists() && foreign.exists());
    }

    #[test]
    fn a_process_dies_with_the_thread_that_started_it_though_nothing_killed_it() {
        let pid = std::thread::spawn(|| {
            let child = command("sleep").arg("60").spawn().unwrap();
            let pid = child.id();
            // Let setpriv set the signal and exec sleep before the thread ends.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default()
                != "sleep\n"
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            std::mem::forget(child);
            pid
        })
        .join()
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !dead(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let alive = !dead(pid);
        if alive {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(!alive, "process {pid} outlived the thread that started it");
    }

    #[test]
    fn a_temp_dir_names_this_process_as_its_owner() {
        let dir = temp_dir("test");
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("canary-test-"), "{name}");
        let owner = std::fs::read_to_string(dir.path().join(OWNER)).unwrap();
        assert_eq!(owner, std::process::id().to_string());
    }
}
