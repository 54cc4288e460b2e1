//! What the workers profile needs before its processes start: Debian's PostgreSQL and Redis (installed when missing),
//! the venv's extras (scripts/synapse/workers-requirements.txt), the PostgreSQL cluster and database, the rendered
//! Synapse and router configuration (scripts/synapse/workers_config.py), the platform user made a server admin, and
//! the profile's stack.env (the default one with the router as homeserver, its own gateway port, table and queues).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::env_file::{self, read_value};
use super::{Layout, say};

pub const PG_PORT: &str = "5434";
pub const REDIS_PORT: &str = "6380";
pub const ROUTER_PORT: &str = "8018";
pub const ROUTER_URL: &str = "http://127.0.0.1:8018";
pub const GATEWAY_LISTEN: &str = "127.0.0.1:3010";
pub const GATEWAY_URL: &str = "http://127.0.0.1:3010";
pub const REDIS: &str = "/usr/bin/redis-server";

/// `.local/workers/`: configuration, the PostgreSQL cluster, media, pid files.
pub struct Dirs {
    pub root: PathBuf,
    pub run: PathBuf,
    pub pg: PathBuf,
    /// Every process's log; the gateway's is `gateway.log`, where the tests look for it (`STACK_LOG_DIR`).
    pub logs: PathBuf,
    pub env_file: PathBuf,
}

impl Dirs {
    pub fn new(layout: &Layout) -> Dirs {
        let root = layout.root.join(".local/workers");
        Dirs {
            run: root.join("run"),
            pg: root.join("pg"),
            logs: root.join("logs"),
            env_file: root.join("stack.env"),
            root,
        }
    }
}

async fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], cwd: &Path) -> Result<(), String> {
    let program = program.as_ref().to_owned();
    let output = tokio::process::Command::new(&program)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{}: {e}", program.to_string_lossy()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!("{} {} failed ({}): {}", program.to_string_lossy(), args.join(" "), output.status, tail.join("\n")))
}

/// Debian's newest PostgreSQL, `/usr/lib/postgresql/<version>/bin`.
pub fn pg_bin() -> Option<PathBuf> {
    let mut bins: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.split('.').next()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.is_dir())
        .collect();
    bins.sort();
    bins.pop().map(|(_, bin)| bin)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A PostgreSQL command as the `postgres` user when we are root (PostgreSQL refuses to run as root).
pub fn as_postgres(program: &Path, args: &[&str]) -> (PathBuf, Vec<String>) {
    if !is_root() {
        return (program.to_path_buf(), args.iter().map(|a| (*a).to_owned()).collect());
    }
    let mut all: Vec<String> =
        ["--reuid=postgres", "--regid=postgres", "--init-groups", "--"].map(str::to_owned).into();
    all.push(program.display().to_string());
    all.extend(args.iter().map(|a| (*a).to_owned()));
    (PathBuf::from("/usr/bin/setpriv"), all)
}

/// PostgreSQL, Redis and the venv's extras, installed when missing.
pub async fn ensure_installed(layout: &Layout) -> Result<(), String> {
    let root = layout.root.as_path();
    let mut missing = Vec::new();
    if pg_bin().is_none() {
        missing.push("postgresql");
    }
    if !Path::new(REDIS).exists() {
        missing.push("redis-server");
    }
    if !missing.is_empty() {
        say("workers", &format!("apt-get install -y {}", missing.join(" ")));
        let args = [&["install", "-y", "-q"][..], &missing].concat();
        if run("apt-get", &args, root).await.is_err() {
            run("apt-get", &["update", "-q"], root).await?;
            run("apt-get", &args, root).await?;
        }
    }
    // Installed again whenever the pinned file changes (its hash in a stamp, as scripts/lib.sh does for the venv).
    let python = layout.venv.join("bin/python");
    let requirements = layout.templates.join("workers-requirements.txt");
    let want = hex::encode(Sha256::digest(std::fs::read(&requirements).map_err(|e| e.to_string())?));
    let stamp = layout.venv.join(".workers-requirements.sha256");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        return Ok(());
    }
    let file = requirements.display().to_string();
    say("workers", &format!("pip install -r {file}"));
    run(&python, &["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", &file], root).await?;
    std::fs::write(&stamp, format!("{want}\n")).map_err(|e| e.to_string())
}

/// The cluster in `.local/workers/pg/data`, created once (fsync off: a local benchmark, not a bank).
pub async fn ensure_cluster(layout: &Layout, dirs: &Dirs) -> Result<bool, String> {
    let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin")?;
    std::fs::create_dir_all(&dirs.pg).map_err(|e| e.to_string())?;
    if is_root() {
        run("chown", &["postgres", &dirs.pg.display().to_string()], &layout.root).await?;
    }
    if dirs.pg.join("data/PG_VERSION").exists() {
        return Ok(false);
    }
    say("workers", "initdb .local/workers/pg/data");
    let data = dirs.pg.join("data").display().to_string();
    let (program, args) =
        as_postgres(&bin.join("initdb"), &["-D", &data, "-U", "synapse", "--auth=trust", "-E", "UTF8", "--locale=C"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(program, &args, &dirs.pg).await?;
    Ok(true)
}

/// The `postgres` server's command line (foreground, supervised like the other processes).
pub fn postgres_command(dirs: &Dirs) -> Result<(PathBuf, Vec<String>), String> {
    let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin")?;
    let (data, socket) = (dirs.pg.join("data").display().to_string(), dirs.pg.display().to_string());
    let args = ["-D", &data, "-p", PG_PORT, "-k", &socket, "-h", "", "-c", "fsync=off", "-c", "max_connections=200"];
    Ok(as_postgres(&bin.join("postgres"), &args))
}

/// Whether the `synapse` database exists; an error when PostgreSQL does not answer.
pub async fn database_exists(dirs: &Dirs) -> Result<bool, String> {
    let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin")?;
    let socket = dirs.pg.display().to_string();
    let query = ["-h", &socket, "-p", PG_PORT, "-U", "synapse", "-d", "postgres", "-tAc"];
    let output = tokio::process::Command::new(bin.join("psql"))
        .args(query)
        .arg("SELECT 1 FROM pg_database WHERE datname='synapse'")
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("psql: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "1")
}

/// Creates the `synapse` database when missing (PostgreSQL is running).
pub async fn ensure_database(dirs: &Dirs) -> Result<(), String> {
    if database_exists(dirs).await? {
        return Ok(());
    }
    let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin")?;
    let socket = dirs.pg.display().to_string();
    let create =
        ["-h", &socket, "-p", PG_PORT, "-U", "synapse", "-E", "UTF8", "--locale=C", "-T", "template0", "synapse"];
    run(bin.join("createdb"), &create, &dirs.root).await
}

/// Renders the profile's Synapse and router configuration from the default stack's rendered homeserver.yaml.
pub async fn render(layout: &Layout, dirs: &Dirs) -> Result<(), String> {
    for dir in [dirs.root.join("media_store"), dirs.root.join("router-tmp"), dirs.run.clone(), dirs.logs.clone()] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let python = layout.venv.join("bin/python");
    let script = layout.templates.join("workers_config.py").display().to_string();
    let source = layout.synapse.join("homeserver.yaml").display().to_string();
    let (wdir, logs) = (dirs.root.display().to_string(), dirs.logs.display().to_string());
    run(&python, &[&script, &source, &wdir, &logs, PG_PORT, REDIS_PORT, ROUTER_PORT], &layout.root).await
}

/// Makes the platform user a server admin, once per database (the stamp goes with the cluster).
pub async fn ensure_platform_admin(layout: &Layout, dirs: &Dirs) -> Result<(), String> {
    let stamp = dirs.pg.join("platform-admin.stamp");
    if stamp.exists() {
        return Ok(());
    }
    let secrets = layout.synapse.join("secrets.env");
    let secret = |key: &str| read_value(&secrets, key).ok_or_else(|| format!("no {key} in {}", secrets.display()));
    let script = layout.templates.join("grant_admin.py").display().to_string();
    let (shared, password, as_token) =
        (secret("REGISTRATION_SHARED_SECRET")?, secret("BOOTSTRAP_ADMIN_PASSWORD")?, secret("AS_TOKEN")?);
    let args = [
        script.as_str(),
        "--homeserver",
        ROUTER_URL,
        "--shared-secret",
        &shared,
        "--admin-user",
        "stack-admin",
        "--admin-password",
        &password,
        "--platform-user",
        "@openmeet:localhost",
        "--as-token",
        &as_token,
        "--prefix",
        "[workers]",
    ];
    run(layout.venv.join("bin/python"), &args, &layout.root).await?;
    std::fs::write(&stamp, "granted\n").map_err(|e| e.to_string())
}

/// The default stack.env with what differs: the router as homeserver (and public URL: the profile has no gate), its
/// own gateway port, table, queues and event bus (moto is shared), main's pid file.
pub fn stack_env(default_env: &str, dirs: &Dirs) -> String {
    let main_pid = super::process::pid_file(&dirs.run, "main").display().to_string();
    let replace = |key: &str, value: &str| format!("{key}={value}");
    let mut out = String::from(
        "# The workers profile (scripts/stack.sh workers start): written by functions/local/src/stack/workers_setup.rs.\n",
    );
    for line in default_env.lines() {
        let key = line.split_once('=').map(|(k, _)| k).unwrap_or("");
        let value = match key {
            "MATRIX_HOMESERVER_URL" | "MATRIX_PUBLIC_URL" => Some(ROUTER_URL.to_owned()),
            "OPENMEET_LISTEN" => Some(GATEWAY_LISTEN.to_owned()),
            "OPENMEET_PUSH_GATEWAY_URL" => Some(format!("{GATEWAY_URL}/_matrix/push/v1/notify")),
            "SYNAPSE_PID_FILE" => Some(main_pid.clone()),
            "STACK_LOG_DIR" => Some(dirs.logs.display().to_string()),
            // Production's default, not the default stack's 5 s (set short for its outage tests, which stay there): a
            // queue of joins into one room waits behind the room's persister, one replication hop per event.
            "MATRIX_REQUEST_TIMEOUT_MS" => Some("10000".to_owned()),
            "OPENMEET_TABLE" | "OPENMEET_QUEUE_NAME" | "OPENMEET_EVENT_BUS" | "OPENMEET_NOTIFICATION_QUEUE" => {
                line.split_once('=').map(|(_, v)| v.replacen("openmeet-local", "openmeet-workers", 1))
            }
            _ => None,
        };
        match value {
            Some(value) => out.push_str(&replace(key, &value)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

pub fn write_stack_env(layout: &Layout, dirs: &Dirs) -> Result<(), String> {
    let default_env = std::fs::read_to_string(&layout.env_file).map_err(|e| {
        format!("{}: {e} (start the default stack first: scripts/stack.sh start)", layout.env_file.display())
    })?;
    env_file::write_private(&dirs.env_file, &stack_env(&default_env, dirs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_env_points_at_the_router_and_its_own_names() {
        let dirs = Dirs::new(&Layout::new(PathBuf::from("/r")));
        let text = stack_env(
            "MATRIX_HOMESERVER_URL=http://127.0.0.1:8008\nOPENMEET_TABLE=openmeet-local\n# c\nOPENMEET_QUEUE_NAME=openmeet-local-retry.fifo\nOPENMEET_LISTEN=127.0.0.1:3000\nA=b\n",
            &dirs,
        );
        let vars = env_file::parse(&text);
        let get = |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("MATRIX_HOMESERVER_URL"), Some(ROUTER_URL));
        assert_eq!(get("OPENMEET_TABLE"), Some("openmeet-workers"));
        assert_eq!(get("OPENMEET_QUEUE_NAME"), Some("openmeet-workers-retry.fifo"));
        assert_eq!(get("OPENMEET_LISTEN"), Some(GATEWAY_LISTEN));
        assert_eq!(get("A"), Some("b"));
    }
}
