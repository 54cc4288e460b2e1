//! `stack bench-postgres [ARGS]` (scripts/bench-postgres.sh): the cutover benchmark (or `BENCH=bench_zulip`) on
//! Synapse with PostgreSQL, as production runs it. A PostgreSQL cluster in `.local/pg` (Debian's postgresql, installed
//! when missing; psycopg2-binary into the venv), a second Synapse on it (port 8009, the stack's appservice and
//! secrets, a fresh database each time) whose admin the platform user becomes; both are stopped afterwards. The
//! local stack (moto, DynamoDB table) must be running.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Layout;
use super::env_file::{parse, read_value};
use super::workers_setup::pg_bin;

const PG_PORT: &str = "5433";
const HS_URL: &str = "http://127.0.0.1:8009";

async fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str], cwd: &Path) -> Result<(), String> {
    let program = program.as_ref().to_owned();
    let status = tokio::process::Command::new(&program).args(args).current_dir(cwd).status().await;
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{} {} failed ({status})", program.to_string_lossy(), args.join(" "))),
        Err(e) => Err(format!("{}: {e}", program.to_string_lossy())),
    }
}

async fn as_postgres(command: &str, root: &Path) -> Result<(), String> {
    run("su", &["postgres", "-s", "/bin/bash", "-c", command], root).await
}

pub async fn main(layout: &Layout, args: &[String]) -> Result<(), String> {
    let root = layout.root.as_path();
    if pg_bin().is_none() {
        run("apt-get", &["install", "-y", "-q", "postgresql"], root).await?;
    }
    let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin after installing postgresql")?;
    let python = layout.venv.join("bin/python");
    if run(&python, &["-c", "import psycopg2"], root).await.is_err() {
        run(&python, &["-m", "pip", "install", "-q", "psycopg2-binary"], root).await?;
    }
    let pg = root.join(".local/pg");
    std::fs::create_dir_all(&pg).map_err(|e| e.to_string())?;
    let (pg_s, bin_s) = (pg.display().to_string(), bin.display().to_string());
    run("chown", &["postgres", &pg_s], root).await?;
    if !pg.join("data/PG_VERSION").exists() {
        let init = format!(
            "'{bin_s}/initdb' -D '{pg_s}/data' -U synapse --auth=trust -E UTF8 --locale=C >'{pg_s}/initdb.log'"
        );
        as_postgres(&init, root).await?;
    }
    let start = format!(
        "'{bin_s}/pg_ctl' -D '{pg_s}/data' -o '-p {PG_PORT} -k /tmp -c fsync=off' -l '{pg_s}/postgres.log' -w start"
    );
    as_postgres(&start, root).await?;
    let result = bench(layout, &bin, &pg, args).await;
    let _ = as_postgres(&format!("'{bin_s}/pg_ctl' -D '{pg_s}/data' -m fast stop >/dev/null"), root).await;
    result
}

async fn bench(layout: &Layout, bin: &Path, pg: &Path, args: &[String]) -> Result<(), String> {
    let root = layout.root.as_path();
    let db = ["-h", "/tmp", "-p", PG_PORT, "-U", "synapse"];
    run(bin.join("dropdb"), &[&db[..], &["--if-exists", "synapse"]].concat(), root).await?;
    run(bin.join("createdb"), &[&db[..], &["-E", "UTF8", "--locale=C", "-T", "template0", "synapse"]].concat(), root)
        .await?;
    let python = layout.venv.join("bin/python");
    let (source, pg_s) = (layout.synapse.join("homeserver.yaml").display().to_string(), pg.display().to_string());
    let script = layout.templates.join("pg_config.py").display().to_string();
    run(&python, &[&script, &source, &pg_s, PG_PORT, "8009"], root).await?;
    let log = std::fs::File::create(pg.join("synapse-stdout.log")).map_err(|e| e.to_string())?;
    let mut synapse = tokio::process::Command::new(&python)
        .args(["-m", "synapse.app.homeserver", "-c", &format!("{pg_s}/homeserver.yaml")])
        .env("PYTHONPATH", layout.root.join("synapse-module"))
        .current_dir(&layout.synapse)
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting Synapse on PostgreSQL: {e}"))?;
    let result = run_bench(layout, bin, args).await;
    let _ = synapse.kill().await;
    result
}

async fn run_bench(layout: &Layout, bin: &Path, args: &[String]) -> Result<(), String> {
    let root = layout.root.as_path();
    let http =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build().map_err(|e| e.to_string())?;
    let mut up = false;
    for _ in 0..120 {
        if http.get(format!("{HS_URL}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if !up {
        super::show_log_tail(&root.join(".local/pg/synapse-stdout.log"), 20);
        return Err("Synapse on PostgreSQL did not start".to_owned());
    }
    let secrets = layout.synapse.join("secrets.env");
    let secret = |key: &str| read_value(&secrets, key).ok_or_else(|| format!("no {key} in {}", secrets.display()));
    let script = layout.templates.join("grant_admin.py").display().to_string();
    let grant = [&script, "--homeserver", HS_URL, "--shared-secret", &secret("REGISTRATION_SHARED_SECRET")?];
    let grant2 = ["--admin-user", "stack-admin", "--admin-password", &secret("BOOTSTRAP_ADMIN_PASSWORD")?];
    let grant3 = ["--platform-user", "@openmeet:localhost", "--as-token", &secret("AS_TOKEN")?, "--prefix", "[pg]"];
    run(layout.venv.join("bin/python"), &[&grant[..], &grant2[..], &grant3[..]].concat(), root).await?;
    let bench = std::env::var("BENCH").ok().filter(|b| !b.is_empty()).unwrap_or_else(|| "bench_cutover".to_owned());
    run("cargo", &["build", "-q", "-p", "openmeet-cutover", "--bin", &bench], root).await?;
    let env_text =
        std::fs::read_to_string(&layout.env_file).map_err(|e| format!("{}: {e}", layout.env_file.display()))?;
    let version = tokio::process::Command::new(bin.join("postgres")).arg("--version").output().await;
    let version = version.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default();
    println!("Synapse on PostgreSQL ({version}), {HS_URL}");
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let status = tokio::process::Command::new(target.join("debug").join(&bench))
        .args(args)
        .envs(parse(&env_text))
        .env("MATRIX_HOMESERVER_URL", HS_URL)
        .env("MATRIX_PUBLIC_URL", HS_URL)
        .env_remove("RUST_LOG")
        .current_dir(root)
        .status()
        .await
        .map_err(|e| format!("{bench}: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("{bench} failed ({status})"))
}
