//! The cutover (`openmeet-cutover run` as a library): a small snapshot's users are registered and named; a user
//! the homeserver refused fails alone, and running the same snapshot again continues that run, retrying only
//! what failed. A bad line is refused before anything runs.

use integration_tests::unique;
use openmeet_cutover::{run, snapshot};
use serde_json::json;

use super::support::{World, body, room_id};

#[tokio::test]
async fn a_failed_user_is_retried_by_continuing_the_run_and_nothing_else_repeats() {
    let World { hs, app, tenant, .. } = World::new("cutover").await;
    let app: &'static shared::App = Box::leak(Box::new(app));
    let users = [("amy", "Amy A."), ("ben", "Ben B.")];
    let lines: Vec<String> = users
        .iter()
        .map(|(user, name)| {
            json!({"type": "user", "tenant": tenant, "userId": user, "displayName": name, "avatarUrl": null})
                .to_string()
        })
        .collect();
    let path = std::env::temp_dir().join(format!("{}.jsonl", unique("inproc-cutover")));
    std::fs::write(&path, lines.join("\n") + "\n").expect("writing the snapshot");

    let space = room_id("space");
    let alias = format!("#{}{tenant}.tenant:localhost", integration_tests::stack().var("MATRIX_USER_PREFIX"));
    hs.mock_resolve_alias(&alias).ok(&space).mount().await;
    hs.mock_room_state(&space).ok(json!([])).mount().await;
    // Each new user joins the tenant's space in the users stage (ADR 0011).
    hs.mock_admin_join(&space).ok(&space).mount().await;
    hs.mock_register().respond_with(Registrations).mount().await;
    let ids: Vec<String> =
        users.iter().map(|(user, _)| integration_tests::stack().matrix_user_id(&tenant, user)).collect();
    for user_id in &ids {
        hs.mock_admin_user(user_id).not_found().mount().await;
    }
    hs.mock_set_profile(&ids[1], "displayname").forbidden("Not allowed").up_to_n_times(1).mount().await;
    for user_id in &ids {
        hs.mock_set_profile(user_id, "displayname").as_user(user_id).ok().mount().await;
    }

    let summary = snapshot::validate(&path).map_err(|e| e.0).expect("a valid snapshot");
    assert_eq!((summary.users, summary.tenants.clone()), (2, vec![tenant.clone()]));
    let first = run::run(app, &path, summary.clone(), 4, true).await.map_err(|e| e.0).expect("a run");
    let failed: Vec<&str> = first.failures.iter().map(|f| f.entity.as_str()).collect();
    assert_eq!(failed.len(), 1, "ben alone fails: {failed:?} after {:?}", hs.calls().await);
    assert!(failed[0].contains("ben"), "{failed:?}");

    let again = run::run(app, &path, summary, 4, true).await.map_err(|e| e.0).expect("a second run");
    assert!(again.continued, "a failed run is continued");
    assert!(again.failures.is_empty(), "{:?}", again.failures.iter().map(|f| &f.error).collect::<Vec<_>>());
    let registered: Vec<String> = hs
        .requests("POST", "/_matrix/client/v3/register")
        .await
        .iter()
        .map(|r| body(r)["username"].as_str().unwrap_or_default().to_owned())
        .collect();
    let amy = registered.iter().filter(|u| u.ends_with(".amy")).count();
    assert_eq!(amy, 1, "amy was done: not registered again ({registered:?})");
    let named = hs.requests("PUT", "/_matrix/client/v3/profile/").await;
    let mut names: Vec<String> =
        named.iter().map(|r| body(r)["displayname"].as_str().unwrap_or("").to_owned()).collect();
    names.sort();
    assert_eq!(names, ["Amy A.", "Ben B.", "Ben B."], "ben's refused name is set by the continued run");
    hs.verify().await;
    let _ = std::fs::remove_file(&path);
}

/// Synapse's answer to an appservice registration, for whichever user asked.
struct Registrations;

impl wiremock::Respond for Registrations {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let username = body(request)["username"].as_str().unwrap_or_default().to_owned();
        wiremock::ResponseTemplate::new(200)
            .set_body_json(json!({"user_id": format!("@{username}:localhost"), "home_server": "localhost"}))
    }
}

#[test]
fn a_bad_snapshot_line_is_refused_before_anything_runs() {
    for bad in [
        r#"{"type":"user","tenant":"a.b","userId":"x","displayName":"X"}"#,
        r#"{"type":"user","tenant":"acme","userId":"","displayName":"X"}"#,
        r#"{"type":"spaceship","tenant":"acme"}"#,
        "not json",
    ] {
        assert!(snapshot::parse_line(bad).is_err(), "{bad}");
    }
}
