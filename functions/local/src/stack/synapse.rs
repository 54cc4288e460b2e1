//! Synapse's configuration for the local stack: secrets generated once, the three files rendered from
//! `scripts/synapse/*.tmpl`, the signing key, and the platform user made a server admin.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::Layout;
use super::env_file::{parse, read_value, write_private};

const TEMPLATES: [(&str, &str); 3] = [
    ("homeserver.yaml.tmpl", "homeserver.yaml"),
    ("log.yaml.tmpl", "log.yaml"),
    ("appservice.yaml.tmpl", "appservice.yaml"),
];
const SECRETS: [&str; 6] = [
    "REGISTRATION_SHARED_SECRET",
    "MACAROON_SECRET_KEY",
    "FORM_SECRET",
    "AS_TOKEN",
    "HS_TOKEN",
    "BOOTSTRAP_ADMIN_PASSWORD",
];

/// Replaces every `@@NAME@@` (upper-case letters and `_`) by the JSON-quoted value of NAME: a YAML string whatever
/// the value holds. A placeholder without a value is an error naming it.
pub fn render(template_name: &str, template: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("@@") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let key_len = after.find(|c: char| !(c.is_ascii_uppercase() || c == '_')).unwrap_or(after.len());
        if key_len > 0 && after[key_len..].starts_with("@@") {
            let key = &after[..key_len];
            let value = values.get(key).ok_or_else(|| format!("{template_name}: no value for @@{key}@@"))?;
            out.push_str(&serde_json::Value::from(value.as_str()).to_string());
            rest = &after[key_len + 2..];
        } else {
            out.push('@');
            rest = &rest[start + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The values the templates may use: the secrets plus the paths of the stack's layout.
pub fn values(layout: &Layout, secrets: &str, session_lifetime: &str) -> BTreeMap<String, String> {
    let path = |p: &Path| p.display().to_string();
    let dir = &layout.synapse;
    let mut values: BTreeMap<String, String> = parse(secrets).into_iter().collect();
    for (key, value) in [
        ("DATABASE", path(&dir.join("homeserver.db"))),
        ("LOG_CONFIG", path(&dir.join("log.yaml"))),
        ("LOG_FILE", path(&layout.logs.join("synapse.log"))),
        ("MEDIA_STORE", path(&dir.join("media_store"))),
        ("SIGNING_KEY", path(&dir.join("localhost.signing.key"))),
        ("APPSERVICE_CONFIG", path(&dir.join("appservice.yaml"))),
        ("SESSION_LIFETIME", session_lifetime.to_owned()),
    ] {
        values.insert(key.to_owned(), value);
    }
    values
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buffer)).map_err(|e| e.to_string())?;
    Ok(hex::encode(buffer))
}

/// Generates `.local/synapse/secrets.env` once; returns whether it did.
pub fn ensure_secrets(layout: &Layout) -> Result<bool, String> {
    let file = layout.synapse.join("secrets.env");
    if std::fs::metadata(&file).is_ok_and(|m| m.len() > 0) {
        return Ok(false);
    }
    let mut text =
        String::from("# Generated once by openmeet-local stack. Deleting it invalidates the appservice tokens.\n");
    for key in SECRETS {
        text.push_str(&format!("{key}={}\n", random_hex(32)?));
    }
    write_private(&file, &text)?;
    Ok(true)
}

/// Renders the three files; returns whether any of them changed.
pub fn render_all(layout: &Layout, session_lifetime: &str) -> Result<bool, String> {
    let secrets = std::fs::read_to_string(layout.synapse.join("secrets.env")).map_err(|e| e.to_string())?;
    let values = values(layout, &secrets, session_lifetime);
    let mut changed = false;
    for (template, target) in TEMPLATES {
        let source = layout.templates.join(template);
        let text = std::fs::read_to_string(&source).map_err(|e| format!("reading {}: {e}", source.display()))?;
        let rendered = render(template, &text, &values)?;
        let path = layout.synapse.join(target);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
            write_private(&path, &rendered)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Identifies the configuration a running Synapse was started with: the rendered files and the tenant-walls module.
pub fn config_hash(layout: &Layout) -> String {
    let mut files: Vec<_> = TEMPLATES.iter().map(|(_, target)| layout.synapse.join(target)).collect();
    let mut module: Vec<_> = std::fs::read_dir(layout.root.join("synapse-module"))
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "py")).collect()
        })
        .unwrap_or_default();
    module.sort();
    files.extend(module);
    let mut hash = Sha256::new();
    for file in files {
        hash.update(std::fs::read(file).unwrap_or_default());
    }
    hex::encode(hash.finalize())
}

/// Runs a one-shot command of the venv, output to `log`; fails with the log's tail.
async fn run_logged(layout: &Layout, args: &[&str], cwd: &Path, log: &Path, what: &str) -> Result<(), String> {
    let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = tokio::process::Command::new(layout.venv.join("bin/python"))
        .args(args)
        .env("PYTHONPATH", layout.root.join("synapse-module"))
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    super::show_log_tail(log, 40);
    Err(format!("{what} failed (see {})", log.display()))
}

pub async fn ensure_signing_key(layout: &Layout) -> Result<(), String> {
    if std::fs::metadata(layout.synapse.join("localhost.signing.key")).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    super::say("synapse-config", "generating the signing key");
    let config = layout.synapse.join("homeserver.yaml").display().to_string();
    let args = ["-m", "synapse.app.homeserver", "-c", &config, "--generate-keys"];
    run_logged(layout, &args, &layout.synapse, &layout.logs.join("synapse-keygen.log"), "synapse --generate-keys").await
}

/// `device:inode:birth` of the database: a new database needs the grant again.
fn database_identity(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let birth =
        meta.created().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    Some(format!("{}:{}:{birth}", meta.dev(), meta.ino()))
}

/// Makes the platform user (@openmeet:localhost, the appservice sender) a server admin, once per database.
pub async fn ensure_platform_admin(layout: &Layout) -> Result<(), String> {
    const STEP: &str = "6/8 platform-admin";
    let stamp = layout.synapse.join("platform-admin.stamp");
    let identity = database_identity(&layout.synapse.join("homeserver.db")).unwrap_or_default();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == identity) {
        super::say(STEP, "@openmeet:localhost is already a server admin");
        return Ok(());
    }
    let secrets = layout.synapse.join("secrets.env");
    let secret = |key: &str| read_value(&secrets, key).ok_or_else(|| format!("no {key} in {}", secrets.display()));
    let script = layout.templates.join("grant_admin.py").display().to_string();
    let status = tokio::process::Command::new(layout.venv.join("bin/python"))
        .args([&script, "--homeserver", super::SYNAPSE_URL, "--shared-secret", &secret("REGISTRATION_SHARED_SECRET")?])
        .args(["--admin-user", "stack-admin", "--admin-password", &secret("BOOTSTRAP_ADMIN_PASSWORD")?])
        .args([
            "--platform-user",
            "@openmeet:localhost",
            "--as-token",
            &secret("AS_TOKEN")?,
            "--prefix",
            "[platform-admin]",
        ])
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("granting @openmeet:localhost admin failed".to_owned());
    }
    std::fs::write(&stamp, format!("{identity}\n")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn placeholders_become_json_strings() {
        let values = vals(&[("A_B", "x\"y"), ("C", "/p")]);
        assert_eq!(
            render("t", "a: @@A_B@@\nc: @@C@@@@C@@\n", &values).expect("renders"),
            "a: \"x\\\"y\"\nc: \"/p\"\"/p\"\n"
        );
    }

    #[test]
    fn text_that_is_no_placeholder_stays() {
        let values = vals(&[("C", "v")]);
        assert_eq!(render("t", "@@ lower @@x@@ @@@C@@ @", &values).expect("renders"), "@@ lower @@x@@ @\"v\" @");
    }

    #[test]
    fn a_missing_value_is_named() {
        assert_eq!(render("h.tmpl", "x: @@NOPE@@", &BTreeMap::new()), Err("h.tmpl: no value for @@NOPE@@".to_owned()));
    }

    #[test]
    fn the_real_templates_render_completely() {
        let layout = Layout::new(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
        let secrets: String = SECRETS.iter().map(|k| format!("{k}=secret-{k}\n")).collect();
        let values = values(&layout, &secrets, "30s");
        for (template, _) in TEMPLATES {
            let text = std::fs::read_to_string(layout.templates.join(template)).expect("template");
            let rendered = render(template, &text, &values).expect("renders");
            assert!(!rendered.contains("@@"), "{template}");
        }
        let homeserver = std::fs::read_to_string(layout.templates.join("homeserver.yaml.tmpl")).expect("template");
        let rendered = render("homeserver", &homeserver, &values).expect("renders");
        assert!(rendered.contains("refreshable_access_token_lifetime: \"30s\""));
        assert!(rendered.contains("registration_shared_secret: \"secret-REGISTRATION_SHARED_SECRET\""));
    }
}
