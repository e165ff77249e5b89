//! Linux /proc readings and the open-file limit, without libc.

use std::process::Command;

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS`, `RssAnon`), in KiB.
pub fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// User + system CPU time of a process, in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on every common Linux).
pub fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// (soft, hard) `Max open files` of a process; `u64::MAX` for unlimited.
pub fn nofile(pid: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let parse = |s: &str| {
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            s.parse().ok()
        }
    };
    Some((parse(it.next()?)?, parse(it.next()?)?))
}

/// Makes sure this process may open `needed` files: if the soft limit is
/// lower, raises it to the hard limit with `prlimit(1)` (util-linux; an
/// unprivileged process may raise its soft limit up to the hard one).
/// Returns the soft limit now in force.
pub fn ensure_nofile(needed: u64) -> Result<u64, String> {
    let me = std::process::id().to_string();
    let Some((soft, hard)) = nofile(&me) else {
        return Ok(u64::MAX); // not Linux /proc: nothing we can check
    };
    if soft >= needed {
        return Ok(soft);
    }
    let advice = format!(
        "this run needs about {needed} open files but the limit is {soft} (hard {hard}); \
         run `ulimit -n 65536` (as root or with a raised hard limit) in this shell first"
    );
    if hard < needed {
        return Err(advice);
    }
    let target = hard.min(1 << 20);
    let status = Command::new("prlimit")
        .arg("--pid")
        .arg(&me)
        .arg(format!("--nofile={target}:{hard}"))
        .status();
    match (status, nofile(&me)) {
        (Ok(s), Some((now, _))) if s.success() && now >= needed => {
            eprintln!("loadtest: raised the open-file limit from {soft} to {now} (prlimit)");
            Ok(now)
        }
        _ => Err(advice),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(status_kib("self", "VmRSS").unwrap() > 0);
        assert!(cpu_ticks("self").is_some());
        let (soft, hard) = nofile("self").unwrap();
        assert!(soft <= hard);
    }
}
