//! `openmeet-local ops redrive|upgrade-rooms --stack NAME`: the command run again with a deployed stack's
//! configuration, the retry worker's environment read with the AWS CLI (credentials for the stack's account and
//! region). The variables go to the command's environment only: nothing is printed or written to disk.

use std::collections::BTreeMap;
use std::process::ExitCode;

use super::Failure;

async fn aws(args: &[&str]) -> Result<String, String> {
    let output = tokio::process::Command::new("aws")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("the AWS CLI (aws) is needed: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("aws {} {} failed: {}", args[0], args[1], stderr.trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The arguments this process was given, without `--stack NAME` (or `--stack=NAME`).
fn without_stack(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match arg.to_str() {
            Some("--stack") => skip_value = true,
            Some(flag) if flag.starts_with("--stack=") => {}
            _ => kept.push(arg),
        }
    }
    kept
}

/// Runs this command again with the environment of `stack`'s retry worker; its exit code is this one's.
pub async fn rerun(stack: &str) -> Result<ExitCode, Failure> {
    let resource =
        ["--logical-resource-id", "RetryWorkerFunction", "--query", "StackResourceDetail.PhysicalResourceId"];
    let describe =
        [&["cloudformation", "describe-stack-resource", "--stack-name", stack][..], &resource, &["--output", "text"]];
    let function = aws(&describe.concat()).await.map_err(Failure::Failed)?;
    let query = ["--query", "Environment.Variables", "--output", "json"];
    let json = aws(&[&["lambda", "get-function-configuration", "--function-name", &function][..], &query].concat())
        .await
        .map_err(Failure::Failed)?;
    let variables: BTreeMap<String, String> = serde_json::from_str(&json)
        .map_err(|e| Failure::Failed(format!("the retry worker's environment is not a JSON map: {e}")))?;
    let me = std::env::current_exe().map_err(|e| Failure::Failed(e.to_string()))?;
    let status = tokio::process::Command::new(me)
        .args(without_stack(std::env::args_os().skip(1)))
        .envs(variables)
        .status()
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    let code = status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
    Ok(ExitCode::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rerun_drops_only_the_stack() {
        let args = ["ops", "upgrade-rooms", "--stack", "prod", "acme", "--json"].map(std::ffi::OsString::from);
        assert_eq!(without_stack(args.into_iter()), ["ops", "upgrade-rooms", "acme", "--json"]);
        let args = ["ops", "redrive", "--stack=prod"].map(std::ffi::OsString::from);
        assert_eq!(without_stack(args.into_iter()), ["ops", "redrive"]);
    }
}
