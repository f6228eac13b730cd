//! Envoy's memory from `/proc`: the process RSS and each Wasm VM's linear
//! memory, which Envoy's stats do not report.
//!
//! How a VM's linear memory is found: V8 reserves 8 GiB of address space per
//! Wasm memory (so bounds checks can be left to guard pages) and makes only
//! the memory's current size accessible. In `/proc/<pid>/smaps` that shows as
//! an anonymous read-write mapping (the linear memory: its `Size` is the
//! memory's size, which only grows, `Rss` the pages touched) directly followed
//! by an anonymous inaccessible (`---p`) mapping, the rest of the reservation.
//! Nothing else in Envoy reserves gigabytes without access, so every such
//! pair is one VM: one per worker thread, one on the main thread, and the
//! template VM the others are cloned from.

/// One VM's linear memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LinearMemory {
    pub size_kib: u64,
    pub rss_kib: u64,
}

/// Smallest inaccessible mapping taken for the rest of a Wasm reservation.
const GUARD_MIN_KIB: u64 = 4 << 20;

struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    anonymous: bool,
    size_kib: u64,
    rss_kib: u64,
}

fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = vec![];
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = fields.next().unwrap_or("").to_string();
            // offset, device, inode, then the path when there is one.
            let anonymous = fields.nth(3).is_none();
            out.push(Mapping {
                start,
                end,
                perms,
                anonymous,
                size_kib: 0,
                rss_kib: 0,
            });
        } else if let Some(m) = out.last_mut() {
            let kib = || {
                fields
                    .clone()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            match first {
                "Size:" => m.size_kib = kib(),
                "Rss:" => m.rss_kib = kib(),
                _ => {}
            }
        }
    }
    out
}

/// The linear memories in an smaps text, in address order.
pub fn linear_memories(smaps: &str) -> Vec<LinearMemory> {
    let maps = mappings(smaps);
    maps.windows(2)
        .filter(|w| {
            let (mem, guard) = (&w[0], &w[1]);
            mem.anonymous
                && guard.anonymous
                && mem.end == guard.start
                && mem.perms.starts_with("rw")
                && guard.perms.starts_with("---")
                && guard.size_kib >= GUARD_MIN_KIB
        })
        .map(|w| LinearMemory {
            size_kib: w[0].size_kib,
            rss_kib: w[0].rss_kib,
        })
        .collect()
}

/// `VmRSS` from a `/proc/<pid>/status` text, in KiB.
pub fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Process RSS and the VMs' linear memories of `pid`, now.
pub fn read(pid: u32) -> (u64, Vec<LinearMemory>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    (rss_kib(&status).unwrap_or(0), linear_memories(&smaps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(range: &str, perms: &str, path: &str, size: u64, rss: u64) -> String {
        format!(
            "{range} {perms} 00000000 00:00 0 {path}\nSize: {size} kB\nKernelPageSize: 4 kB\nRss: {rss} kB\nPss: {rss} kB\nVmFlags: rd wr mr mw me ac\n"
        )
    }

    #[test]
    fn a_linear_memory_is_the_read_write_mapping_in_front_of_a_wasm_reservation() {
        let smaps = [
            block("7f0000000000-7f0000110000", "rw-p", "", 1088, 56),
            block("7f0000110000-7f0200000000", "---p", "", 8_387_520, 0),
            // A file mapping in front of a big reservation is not a VM.
            block("7f0300000000-7f0300010000", "rw-p", "/usr/lib/x.so", 64, 64),
            block("7f0300010000-7f0500000000", "---p", "", 8_388_544, 0),
            // A small guard (thread stacks) is not a VM.
            block("7f0600000000-7f0600100000", "rw-p", "", 1024, 12),
            block("7f0600100000-7f0600101000", "---p", "", 4, 0),
            block("7f0700000000-7f0700120000", "rw-p", "", 1152, 60),
            block("7f0700120000-7f0900000000", "---p", "", 8_387_456, 0),
        ]
        .concat();
        assert_eq!(
            linear_memories(&smaps),
            vec![
                LinearMemory {
                    size_kib: 1088,
                    rss_kib: 56
                },
                LinearMemory {
                    size_kib: 1152,
                    rss_kib: 60
                },
            ]
        );
    }

    #[test]
    fn rss_comes_from_the_status_file() {
        assert_eq!(
            rss_kib("Name:\tenvoy\nVmRSS:\t  100352 kB\n"),
            Some(100_352)
        );
        assert_eq!(rss_kib("Name:\tenvoy\n"), None);
    }
}
