//! What the bench reads from the machine: CPU time of Envoy, of finished
//! children (h2load) and of the whole machine from /proc, a wasm VM's linear
//! memory from /proc/<pid>/smaps, and the facts the table states (CPUs,
//! CPU model, Envoy version).

use std::path::Path;
use std::process::Command;

/// USER_HZ (CLK_TCK): 100 on every Linux architecture Envoy ships for.
const TICKS_PER_SECOND: f64 = 100.0;

fn stat_fields(stat: &str) -> Vec<&str> {
    // Fields after the parenthesised command name (which may hold spaces):
    // field 3 (state) is index 0.
    let rest = stat.rfind(')').map_or(stat, |i| &stat[i + 1..]);
    rest.split_whitespace().collect()
}

fn ticks(fields: &[&str], i: usize) -> f64 {
    fields
        .get(i)
        .and_then(|f| f.parse::<f64>().ok())
        .expect("/proc stat field")
}

/// CPU time of a process (all its threads), in seconds: the scheduler's
/// run time per thread (`/proc/<pid>/task/*/schedstat`, nanoseconds), else
/// utime + stime (whole ticks of 10 ms). The run time lets a round be short:
/// 10,000 requests of 30 µs are 300 ms of CPU, which ticks would measure to
/// only about 3 %.
pub fn process_cpu(pid: u32) -> f64 {
    scheduler_run_time(pid).unwrap_or_else(|| process_ticks(pid))
}

/// `None` only where the kernel keeps no schedstat; a thread that ends
/// while it is being read is skipped, so one reading never mixes methods.
fn scheduler_run_time(pid: u32) -> Option<f64> {
    let mut ns = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let run = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(run) = run {
            ns = Some(ns.unwrap_or(0) + run);
        }
    }
    ns.map(|ns| ns as f64 / 1e9)
}

/// utime + stime of a process (all its threads), in seconds.
fn process_ticks(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    let f = stat_fields(&stat);
    // utime and stime are fields 14 and 15.
    (ticks(&f, 11) + ticks(&f, 12)) / TICKS_PER_SECOND
}

/// cutime + cstime of this process: CPU of every child it has waited for
/// (h2load runs as one), in seconds.
pub fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let f = stat_fields(&stat);
    // cutime and cstime are fields 16 and 17.
    (ticks(&f, 13) + ticks(&f, 14)) / TICKS_PER_SECOND
}

/// Busy CPU seconds of the whole machine (all CPUs, everything but idle and
/// iowait), from the first line of /proc/stat.
pub fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum();
    busy / TICKS_PER_SECOND
}

/// One V8 wasm linear memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LinearMemory {
    /// Current size of the memory (what the module has grown it to).
    pub size_kib: u64,
    /// Resident part: pages the module has touched.
    pub rss_kib: u64,
}

/// The wasm linear memories in a process's smaps.
///
/// How they are found (checked by comparing the maps of Envoy with and
/// without a module, and the reason the bench also reads bare Envoy): V8
/// reserves a fixed span of address space for each 32-bit wasm memory (8 GiB
/// in Envoy 1.40) so that bounds checks are done by the MMU. The part the
/// module has grown into is readable and writable; the rest of the span is an
/// inaccessible guard. In smaps that is a `rw-p` anonymous mapping directly
/// followed by a `---p` anonymous mapping, together a whole number of GiB of
/// at least 4. Bare Envoy has no such pair. There is one memory per VM: one
/// per worker thread plus two on the main thread (`--concurrency 1` shows
/// three, `--concurrency 2` four), all of the same size until a worker's
/// module grows its memory under traffic.
pub fn wasm_memories(pid: u32) -> Vec<LinearMemory> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map(|s| wasm_memories_in(&s))
        .unwrap_or_default()
}

struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    anonymous: bool,
    rss_kib: u64,
}

fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = vec![];
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                let perms = parts.next().unwrap_or_default().to_string();
                // offset, device, inode, then the path if any.
                let anonymous = parts.nth(3).is_none();
                out.push(Mapping {
                    start,
                    end,
                    perms,
                    anonymous,
                    rss_kib: 0,
                });
                continue;
            }
        }
        if let (Some(m), Some(v)) = (out.last_mut(), line.strip_prefix("Rss:")) {
            m.rss_kib = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        }
    }
    out
}

fn wasm_memories_in(smaps: &str) -> Vec<LinearMemory> {
    const GIB: u64 = 1 << 30;
    let maps = parse_smaps(smaps);
    maps.windows(2)
        .filter(|w| {
            let (mem, guard) = (&w[0], &w[1]);
            let span = guard.end - mem.start;
            mem.anonymous
                && guard.anonymous
                && mem.perms == "rw-p"
                && guard.perms == "---p"
                && mem.end == guard.start
                && span >= 4 * GIB
                && span.is_multiple_of(GIB)
        })
        .map(|w| LinearMemory {
            size_kib: (w[0].end - w[0].start) / 1024,
            rss_kib: w[0].rss_kib,
        })
        .collect()
}

/// Number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

/// `model name` from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Envoy's version number (`1.40.0`), from `envoy --version`.
pub fn envoy_version(envoy: &Path) -> String {
    let out = Command::new(envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "<path to envoy>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    out.split_once("version:")
        .and_then(|(_, v)| v.split('/').nth(1))
        .map_or_else(|| out.trim().to_string(), str::to_string)
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
63bf40000000-63bf7fe00000 ---p 00000000 00:00 0 
Rss:                   0 kB
63bf7fe00000-63bf80000000 rw-p 00000000 00:00 0 
Rss:                 264 kB
7fed459a0000-7fed45ab0000 rw-p 00000000 00:00 0 
Rss:                  56 kB
7fed45ab0000-7fef459a0000 ---p 00000000 00:00 0 
Rss:                   0 kB
7fef459ac000-7fef459bc000 r--p 00000000 00:00 0 
Rss:                   0 kB
7fef459bc000-7fef459cc000 rw-p 00000000 00:00 0  /usr/lib/x.so
Rss:                  16 kB
7fef459cc000-7fef559c0000 ---p 00000000 00:00 0 
Rss:                   0 kB
";

    #[test]
    fn a_linear_memory_is_a_read_write_mapping_followed_by_its_guard() {
        assert_eq!(
            wasm_memories_in(SMAPS),
            vec![LinearMemory {
                size_kib: 1088,
                rss_kib: 56
            }]
        );
    }

    #[test]
    fn process_stat_fields_skip_a_command_name_with_spaces() {
        let f = stat_fields("42 (envoy worker 0) S 1 2 3");
        assert_eq!(f[0], "S");
        assert_eq!(f[1], "1");
    }
}
