//! The load generator's smoke size (issue 29, tools/loadtest/scenarios/smoke.json): 10 people syncing, typing,
//! reading and posting for 40 s through the API, then 40 s with direct sends, two of them offline for 20 s. Fails on
//! any lost or duplicated message or any 5xx; the figures (not asserted: they depend on the machine's load) go to
//! .local/load/smoke.{md,json,svg}. The full sweep is `openmeet-load` (benches/README.md).

use std::path::PathBuf;

use openmeet_loadtest::{Scenario, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_people_chat_without_loss_duplicate_or_5xx() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let stack = Stack::load(&root).expect("the running stack (scripts/stack.sh start)");
    let scenario = Scenario::from_file(&root.join("tools/loadtest/scenarios/smoke.json")).expect("smoke scenario");
    let command = "cargo test -p integration-tests --test load_smoke".to_owned();
    let sweep = openmeet_loadtest::sweep(&stack, &scenario, command, |line| println!("{line}")).await.expect("sweep");
    sweep.write(&root.join(".local/load"), "smoke").expect("report");
    let failures = sweep.failures();
    assert!(failures.is_empty(), "{failures:?}");
    let catch_ups = &sweep.steps[0].catch_ups;
    assert_eq!(catch_ups.len(), 2, "both offline people came back: {catch_ups:?}");
    assert!(
        catch_ups.iter().all(|c| c.complete_ms.is_some()),
        "every missed message seen after the return: {catch_ups:?}"
    );
}
