//! The stack's processes: each service runs as the leader of its own process group, its pid in
//! `.local/run/<name>.pid`. A pid file is trusted only while that pid is alive and its command line still looks like
//! the service, so a reused pid never fools us.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub fn pid_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.pid"))
}

pub fn stamp_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.stamp"))
}

/// The pid a pid file holds (its digits, as the shell scripts wrote it).
pub fn parse_pid(text: &str) -> Option<i32> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|pid| *pid > 0)
}

/// `(state, process group)` from the text of `/proc/<pid>/stat`; the command name may hold spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(") ")? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn stat(pid: i32) -> Option<(char, i32)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// The pid of our running service `name` (its command line contains `pattern`); a stale pid file (and the
/// service's stamp) is removed.
pub fn running_pid(run_dir: &Path, name: &str, pattern: &str) -> Option<i32> {
    let file = pid_file(run_dir, name);
    let text = std::fs::read_to_string(&file).ok()?;
    // A zombie has an empty command line: it counts as gone. Only a pid file naming a process that is gone is
    // removed: one being written (unparsable for an instant) or naming a child not yet exec'd (its command line is
    // still its parent's) belongs to a start in progress, and deleting it orphaned a running gateway.
    let pid = parse_pid(&text)?;
    if cmdline(pid).contains(pattern) {
        return Some(pid);
    }
    if !alive(pid) {
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(stamp_file(run_dir, name));
    }
    None
}

/// What to run for a service.
pub struct Launch<'a> {
    pub name: &'a str,
    pub program: &'a Path,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    pub log: &'a Path,
}

/// Starts the command as the leader of a new process group (so `stop` reaches its children, and Ctrl-C in the
/// terminal does not), output appended to its log, and records its pid.
pub fn spawn(run_dir: &Path, root: &Path, launch: Launch<'_>) -> Result<i32, String> {
    let open_log = || OpenOptions::new().create(true).append(true).open(launch.log);
    let mut log = open_log().map_err(|e| format!("opening {}: {e}", launch.log.display()))?;
    let now =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let _ = writeln!(log, "\n===== {now}: starting {} =====", launch.name);
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = tokio::process::Command::new(launch.program)
        .args(&launch.args)
        .envs(launch.envs)
        .current_dir(root)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("starting {} ({}): {e}", launch.name, launch.program.display()))?;
    // The child is not awaited: it outlives this command; tokio reaps it should it exit while we still run.
    let pid = child.id().and_then(|id| i32::try_from(id).ok()).ok_or("the child has no pid")?;
    // Written whole, then renamed into place: a concurrent `status` never reads a half-written pid file.
    let pending = run_dir.join(format!(".{}.pid.tmp", launch.name));
    std::fs::write(&pending, format!("{pid}\n")).map_err(|e| e.to_string())?;
    std::fs::rename(&pending, pid_file(run_dir, launch.name)).map_err(|e| e.to_string())?;
    Ok(pid)
}

fn signal(target: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(target, signal);
    }
}

/// Stops our service `name` and its whole process group: TERM, then KILL after `timeout`. Returns whether one ran.
pub async fn stop(run_dir: &Path, name: &str, pattern: &str, timeout: Duration) -> bool {
    let Some(pid) = running_pid(run_dir, name, pattern) else {
        return false;
    };
    let target = if stat(pid).is_some_and(|(_, pgrp)| pgrp == pid) { -pid } else { pid };
    println!("[stop] stopping {name} (pid {pid})");
    signal(target, libc::SIGTERM);
    // A test may have paused it (SIGSTOP, to simulate an outage): let it handle the TERM.
    signal(target, libc::SIGCONT);
    let deadline = tokio::time::Instant::now() + timeout;
    while alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if alive(pid) {
        println!("[stop] {name} did not stop within {}s: killing it", timeout.as_secs());
        signal(target, libc::SIGKILL);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything left in the group (a child that ignored TERM).
    if target < 0 {
        signal(target, libc::SIGKILL);
    }
    let _ = std::fs::remove_file(pid_file(run_dir, name));
    let _ = std::fs::remove_file(stamp_file(run_dir, name));
    true
}

/// Marks every inherited descriptor but stdin/stdout/stderr close-on-exec, so no service inherits a lock a caller
/// holds (`flock /tmp/openmeet-stack.lock scripts/stack.sh restart`): it would hold it for as long as it runs.
pub fn close_inherited_fds() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<i32> =
        entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|fd| *fd > 2).collect();
    for fd in fds {
        // SAFETY: fcntl on a descriptor number has no memory-safety preconditions; a closed one just fails.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// The stack's own lock (`.local/run/stack.lock`): one start or stop at a time. Released when dropped.
pub struct StackLock(#[allow(dead_code)] std::fs::File);

impl StackLock {
    pub async fn acquire(run_dir: &Path) -> Result<StackLock, String> {
        std::fs::create_dir_all(run_dir).map_err(|e| e.to_string())?;
        let path = run_dir.join("stack.lock");
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| e.to_string())?;
        let try_lock = || {
            // SAFETY: flock(2) on an open descriptor we own.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
        };
        if !try_lock() {
            println!("[stack] another stack.sh/dev.sh is starting or stopping the stack: waiting for it");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
            while !try_lock() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!("timed out waiting for {}", path.display()));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(StackLock(file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_hold_digits_only() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid(" 12a34 "), Some(1234));
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("0"), None);
        assert_eq!(parse_pid("99999999999999"), None);
    }

    #[test]
    fn stat_survives_odd_command_names() {
        assert_eq!(parse_stat("42 (moto) S 1 42 42 0"), Some(('S', 42)));
        assert_eq!(parse_stat("7 (a) b (c) Z 1 9 9"), Some(('Z', 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn a_callers_lock_descriptor_is_not_passed_on() {
        let path = std::env::temp_dir().join(format!("openmeet-fd-{}.lock", std::process::id()));
        let c_path = std::ffi::CString::new(path.display().to_string()).expect("path");
        // SAFETY: open(2) with a valid C string; like a caller's `exec 9>file.lock`, without O_CLOEXEC.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600) };
        assert!(fd > 2);
        close_inherited_fds();
        let listing = std::process::Command::new("ls").args(["-l", "/proc/self/fd"]).output().expect("ls");
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        let _ = std::fs::remove_file(&path);
        assert!(!String::from_utf8_lossy(&listing.stdout).contains("openmeet-fd-"));
    }

    #[test]
    fn only_the_pid_file_of_a_process_that_is_gone_is_removed() {
        assert!(alive(std::process::id() as i32));
        let dir = std::env::temp_dir().join(format!("openmeet-stack-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A live process that is not the service (a child not yet exec'd, say): not ours, but its file stays.
        std::fs::write(pid_file(&dir, "svc"), format!("{}\n", std::process::id())).expect("pid");
        std::fs::write(stamp_file(&dir, "svc"), "x").expect("stamp");
        assert_eq!(running_pid(&dir, "svc", "no such command line"), None);
        assert!(pid_file(&dir, "svc").exists() && stamp_file(&dir, "svc").exists());
        // A process that is gone: its files are removed.
        let mut exited = std::process::Command::new("true").spawn().expect("spawn");
        let gone = exited.id() as i32;
        exited.wait().expect("wait");
        std::fs::write(pid_file(&dir, "svc"), format!("{gone}\n")).expect("pid");
        assert_eq!(running_pid(&dir, "svc", "no such command line"), None);
        assert!(!pid_file(&dir, "svc").exists() && !stamp_file(&dir, "svc").exists());
        // Half-written: left alone.
        std::fs::write(pid_file(&dir, "svc"), "").expect("pid");
        assert_eq!(running_pid(&dir, "svc", "no such command line"), None);
        assert!(pid_file(&dir, "svc").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
