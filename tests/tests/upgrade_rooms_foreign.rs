//! `openmeet-local ops upgrade-rooms` walls a room made before the walls: members of other tenants who got in then are
//! removed (and reported), the room's own tenant's members stay.

use integration_tests::{Stack, encode_path, repo_root, stack, unique};
use reqwest::Method;
use serde_json::json;

async fn register(s: &Stack, tenant: &str, user: &str) -> String {
    let username = format!("om_{tenant}.{user}");
    let body = json!({"type": "m.login.application_service", "username": username, "inhibit_login": true});
    let (status, answer) = s.matrix(Method::POST, "/_matrix/client/v3/register", None, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    s.matrix_user_id(tenant, user)
}

async fn membership(s: &Stack, room_id: &str, user_id: &str) -> Option<String> {
    let path =
        format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode_path(room_id), encode_path(user_id));
    let (status, content) = s.matrix(Method::GET, &path, None, None).await;
    (status == 200).then(|| content["membership"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn upgrade_rooms_removes_members_of_other_tenants() {
    let s = stack();
    let tenant = format!("it-upg-{}", &unique("t")[2..]);
    let other = format!("it-upgx-{}", &unique("t")[2..]);
    let own = register(s, &tenant, &unique("own")).await;
    let stranger = register(s, &other, &unique("str")).await;
    let invited = register(s, &other, &unique("inv")).await;

    // A group room as made before the walls, with a member and an invitee of another tenant: the walls module reads
    // the room's tenant from its metadata first, so the room names the other tenant while they get in.
    let slug = unique("lg");
    let body = json!({
        "room_alias_name": format!("om_{tenant}.group.{slug}"),
        "name": "Legacy",
        "preset": "public_chat",
        "visibility": "public",
        "initial_state": [{"type": "org.openmeet.room", "state_key": "", "content": {"tenant": other}}],
    });
    let (status, created) = s.matrix(Method::POST, "/_matrix/client/v3/createRoom", None, Some(body)).await;
    assert_eq!(status, 200, "{created}");
    let room_id = created["room_id"].as_str().expect("room_id").to_owned();
    let join = |user: String| {
        let room_id = room_id.clone();
        async move {
            let path = format!("/_synapse/admin/v1/join/{}", encode_path(&room_id));
            let (status, body) = s.matrix(Method::POST, &path, None, Some(json!({"user_id": user}))).await;
            assert_eq!(status, 200, "{user}: {body}");
        }
    };
    join(stranger.clone()).await;
    let path = format!("/_matrix/client/v3/rooms/{}/invite", encode_path(&room_id));
    let (status, body) = s.matrix(Method::POST, &path, None, Some(json!({"user_id": invited}))).await;
    assert_eq!(status, 200, "{body}");
    let path = format!("/_matrix/client/v3/rooms/{}/state/org.openmeet.room/", encode_path(&room_id));
    let (status, body) = s.matrix(Method::PUT, &path, None, Some(json!({"tenant": tenant}))).await;
    assert_eq!(status, 200, "{body}");
    join(own.clone()).await;
    assert_eq!(membership(s, &room_id, &stranger).await.as_deref(), Some("join"));
    assert_eq!(membership(s, &room_id, &invited).await.as_deref(), Some("invite"));

    let binary = repo_root().join("target/debug/openmeet-local");
    let output = std::process::Command::new(&binary)
        .args(["ops", "upgrade-rooms"])
        .arg(&tenant)
        .envs(&s.env)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    for user in [&stranger, &invited] {
        assert_eq!(membership(s, &room_id, user).await.as_deref(), Some("leave"), "{user}: {printed}");
        assert!(printed.contains(&format!("removed {user} from {room_id}")), "{user} not reported: {printed}");
    }
    assert_eq!(membership(s, &room_id, &own).await.as_deref(), Some("join"), "the tenant's own member stays");
}
