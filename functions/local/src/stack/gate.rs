//! The homeserver's public entry ("the gate"): Debian's nginx with njs in front of Synapse's client and media APIs,
//! configured from `scripts/gate/` (nginx.conf.tmpl + gate.js). Browsers get its URL (`MATRIX_PUBLIC_URL`) from
//! `POST /v1/me/matrix-session`; the functions keep talking to Synapse directly. See docs/adr/0003-tenant-walls.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Layout;

pub const GATE_LISTEN: &str = "127.0.0.1:8088";
pub const GATE_URL: &str = "http://127.0.0.1:8088";
pub const NGINX: &str = "/usr/sbin/nginx";
const NJS_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_js_module.so";
/// The only push gateway a browser's pusher may name (the gateway's push route, issue 23).
pub const PUSH_GATEWAY_URL: &str = "http://127.0.0.1:3000/_matrix/push/v1/notify";
/// Synapse's `max_upload_size` (scripts/synapse/homeserver.yaml.tmpl): nginx's `client_max_body_size`.
const MAX_UPLOAD_SIZE: &str = "50M";

pub fn config_file(layout: &Layout) -> PathBuf {
    layout.gate.join("nginx.conf")
}

fn templates(layout: &Layout) -> PathBuf {
    layout.root.join("scripts/gate")
}

/// The values of the template's placeholders.
pub fn values(layout: &Layout) -> BTreeMap<String, String> {
    let path = |p: PathBuf| p.display().to_string();
    [
        ("GATE_PID_FILE", path(layout.gate.join("nginx.pid"))),
        ("GATE_ERROR_LOG", path(layout.logs.join("gate-error.log"))),
        ("GATE_ACCESS_LOG", path(layout.logs.join("gate-access.log"))),
        ("GATE_DIR", path(templates(layout))),
        ("GATE_BODY_TMP", path(layout.gate.join("tmp/body"))),
        ("GATE_PROXY_TMP", path(layout.gate.join("tmp/proxy"))),
        ("GATE_LISTEN", GATE_LISTEN.to_owned()),
        ("SYNAPSE_UPSTREAM", super::SYNAPSE_URL.trim_start_matches("http://").to_owned()),
        ("SERVER_NAME", "localhost".to_owned()),
        ("USER_PREFIX", "om_".to_owned()),
        ("PLATFORM_USER", "@openmeet:localhost".to_owned()),
        ("PUSH_GATEWAY_URL", PUSH_GATEWAY_URL.to_owned()),
        ("MAX_UPLOAD_SIZE", MAX_UPLOAD_SIZE.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Renders `.local/gate/nginx.conf`; returns whether it changed.
pub fn render(layout: &Layout) -> Result<bool, String> {
    let source = templates(layout).join("nginx.conf.tmpl");
    let text = std::fs::read_to_string(&source).map_err(|e| format!("reading {}: {e}", source.display()))?;
    let rendered = super::synapse::render("nginx.conf.tmpl", &text, &values(layout))?;
    for dir in [layout.gate.join("tmp/body"), layout.gate.join("tmp/proxy")] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let target = config_file(layout);
    if std::fs::read_to_string(&target).is_ok_and(|old| old == rendered) {
        return Ok(false);
    }
    std::fs::write(&target, rendered).map_err(|e| format!("writing {}: {e}", target.display()))?;
    Ok(true)
}

/// What a running gate depends on: its rendered configuration and gate.js.
pub fn config_hash(layout: &Layout) -> String {
    let mut hash = Sha256::new();
    for file in [config_file(layout), templates(layout).join("gate.js")] {
        hash.update(std::fs::read(file).unwrap_or_default());
    }
    hex::encode(hash.finalize())
}

/// nginx and its njs module, installed with apt-get when missing (as root; otherwise the command to run).
pub async fn ensure_installed() -> Result<(), String> {
    if Path::new(NGINX).is_file() && Path::new(NJS_MODULE).is_file() {
        return Ok(());
    }
    super::web_page::apt_install(&["nginx-light", "libnginx-mod-http-js"]).await?;
    if Path::new(NGINX).is_file() && Path::new(NJS_MODULE).is_file() {
        Ok(())
    } else {
        Err(format!("{NGINX} or {NJS_MODULE} still missing after installing nginx-light and libnginx-mod-http-js"))
    }
}

/// The command line of the gate: nginx in the foreground (`daemon off` in the file), its prefix `.local/gate/`.
pub fn args(layout: &Layout) -> Vec<String> {
    let prefix = format!("{}/", layout.gate.display());
    let error_log = layout.logs.join("gate-error.log").display().to_string();
    vec![
        "-c".to_owned(),
        config_file(layout).display().to_string(),
        "-p".to_owned(),
        prefix,
        "-e".to_owned(),
        error_log,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_completely() {
        let layout = Layout::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."));
        let text = std::fs::read_to_string(templates(&layout).join("nginx.conf.tmpl")).expect("template");
        let rendered = super::super::synapse::render("nginx.conf.tmpl", &text, &values(&layout)).expect("renders");
        assert!(!rendered.contains("@@"));
        assert!(rendered.contains("listen \"127.0.0.1:8088\";"));
        assert!(rendered.contains(&format!("js_var $gate_push_gateway_url \"{PUSH_GATEWAY_URL}\";")));
        assert!(rendered.contains("client_max_body_size \"50M\";"));
        // The homeserver's upload limit is the gate's.
        let homeserver = std::fs::read_to_string(layout.templates.join("homeserver.yaml.tmpl")).expect("template");
        assert!(homeserver.contains(&format!("max_upload_size: {MAX_UPLOAD_SIZE}\n")));
    }
}
