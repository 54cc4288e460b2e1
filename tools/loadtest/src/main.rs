//! `openmeet-load [--scenario FILE] [--people 10,25,50] [--out DIR] [--name NAME]`: runs a scenario's sweep
//! against the running local stack (loopback only) and writes DIR/NAME.{md,json,svg}. Exit 1 when a message was
//! lost or duplicated or an answer was 5xx; exit 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use openmeet_loadtest::{Scenario, Stack};

const USAGE: &str = "usage: openmeet-load [--scenario FILE] [--people N,N,...] [--out DIR] [--name NAME]
  --scenario  a JSON scenario (default tools/loadtest/scenarios/sweep.json)
  --people    sizes to sweep, overriding the scenario's
  --out       report directory (default benches/load)
  --name      report file name without extension (default: the scenario's file stem)";

struct Options {
    scenario: PathBuf,
    people: Option<Vec<usize>>,
    out: PathBuf,
    name: Option<String>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        scenario: root().join("tools/loadtest/scenarios/sweep.json"),
        people: None,
        out: root().join("benches/load"),
        name: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scenario" => options.scenario = PathBuf::from(value),
            "--out" => options.out = PathBuf::from(value),
            "--name" => options.name = Some(value),
            "--people" => {
                let sizes: Result<Vec<usize>, _> = value.split(',').map(str::parse).collect();
                options.people = Some(sizes.map_err(|_| "--people takes numbers separated by commas".to_owned())?);
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut scenario = match Scenario::from_file(&options.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(people) = options.people {
        scenario.people = people;
        if let Err(e) = scenario.check() {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    }
    let name = options
        .name
        .unwrap_or_else(|| options.scenario.file_stem().and_then(|s| s.to_str()).unwrap_or("load").to_owned());
    match sweep(&scenario, &options.out, &name).await {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            eprintln!("FAILED: {}", failures.join("; "));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn sweep(scenario: &Scenario, out: &std::path::Path, name: &str) -> Result<Vec<String>, String> {
    let stack = Stack::load(&root())?;
    let command = format!("openmeet-load {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "));
    let sweep = openmeet_loadtest::sweep(&stack, scenario, command, |line| println!("{line}")).await?;
    sweep.write(out, name)?;
    println!("report: {}", out.join(format!("{name}.md")).display());
    Ok(sweep.failures())
}
