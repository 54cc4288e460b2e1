//! `openmeet-local redrive --stack NAME`: a one-shot command run with a deployed stack's configuration, the retry
//! worker's environment read with the AWS CLI (credentials for the stack's account and region). The variables go to
//! the command's environment only: nothing is printed or written to disk.

use std::collections::BTreeMap;

pub const REDRIVE_USAGE: &str = "usage: openmeet-local redrive [--stack STACK_NAME]
  moves the retry DLQ's operations back to the retry queue (each is replayed once)
  --stack NAME      the deployed stack's retry worker's configuration, read with the AWS CLI; without it, the
                    configuration in the environment (locally: set -a; . .local/stack.env; set +a)
Exit codes: 0 done; 1 failed; 2 bad arguments, nothing done. Runbook: docs/deploy.md.
Example: openmeet-local redrive --stack openmeet-matrix";

pub const UPGRADE_ROOMS_USAGE: &str = "usage: openmeet-local upgrade-rooms [--stack STACK_NAME] [TENANT]
  carries rooms made before the tenant walls over (ADR 0003); safe to repeat, writes nothing the second time
  TENANT            only this tenant's rooms (all tenants when absent)
  --stack NAME      the deployed stack's retry worker's configuration, read with the AWS CLI; without it, the
                    configuration in the environment (locally: set -a; . .local/stack.env; set +a)
Exit codes: 0 done; 1 failed (some rooms not upgraded, listed); 2 bad arguments, nothing done.
Runbook: docs/deploy.md. Example: openmeet-local upgrade-rooms --stack openmeet-matrix";

/// Where the configuration comes from.
pub enum Target {
    Environment,
    Stack(String),
    Help,
}

pub fn parse(args: &[String]) -> Result<Target, String> {
    parse_with_rest(args, 0).map(|(target, _)| target)
}

/// `[--stack NAME] [ARG]…` with at most `rest` positional arguments after the flag.
pub fn parse_with_rest(args: &[String], rest: usize) -> Result<(Target, Vec<String>), String> {
    match args {
        [help, ..] if help == "--help" || help == "-h" => Ok((Target::Help, Vec::new())),
        [flag, name, more @ ..] if flag == "--stack" && !name.is_empty() && !name.starts_with('-') => {
            positional(more, rest).map(|more| (Target::Stack(name.clone()), more))
        }
        more => positional(more, rest).map(|more| (Target::Environment, more)),
    }
}

fn positional(args: &[String], most: usize) -> Result<Vec<String>, String> {
    if args.len() > most || args.iter().any(|a| a.starts_with('-')) {
        return Err(format!("unexpected arguments {args:?}"));
    }
    Ok(args.to_vec())
}

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

/// Runs this binary's `command` (with `args`) again with the environment of `stack`'s retry worker.
pub async fn rerun(stack: &str, command: &str, args: &[String]) -> Result<(), String> {
    let resource =
        ["--logical-resource-id", "RetryWorkerFunction", "--query", "StackResourceDetail.PhysicalResourceId"];
    let describe =
        [&["cloudformation", "describe-stack-resource", "--stack-name", stack][..], &resource, &["--output", "text"]];
    let function = aws(&describe.concat()).await?;
    let query = ["--query", "Environment.Variables", "--output", "json"];
    let json =
        aws(&[&["lambda", "get-function-configuration", "--function-name", &function][..], &query].concat()).await?;
    let variables: BTreeMap<String, String> =
        serde_json::from_str(&json).map_err(|e| format!("the retry worker's environment is not a JSON map: {e}"))?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = tokio::process::Command::new(me)
        .arg(command)
        .args(args)
        .envs(variables)
        .status()
        .await
        .map_err(|e| e.to_string())?;
    status.success().then_some(()).ok_or_else(|| format!("{command} failed ({status})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_name_the_configuration() {
        assert!(matches!(parse(&[]), Ok(Target::Environment)));
        assert!(matches!(parse(&args(&["--stack", "prod"])), Ok(Target::Stack(name)) if name == "prod"));
        assert!(matches!(parse(&args(&["--help"])), Ok(Target::Help)));
        assert!(parse(&args(&["prod"])).is_err());
        assert!(parse(&args(&["--stack"])).is_err());
        assert!(parse(&args(&["--stack", "--help"])).is_err());
        let (target, rest) = parse_with_rest(&args(&["--stack", "prod", "acme"]), 1).expect("valid");
        assert!(matches!(target, Target::Stack(name) if name == "prod"));
        assert_eq!(rest, args(&["acme"]));
        assert!(matches!(parse_with_rest(&args(&["acme"]), 1), Ok((Target::Environment, rest)) if rest.len() == 1));
        assert!(parse_with_rest(&args(&["acme", "globex"]), 1).is_err());
        assert!(parse_with_rest(&args(&["--bogus"]), 1).is_err());
    }
}
