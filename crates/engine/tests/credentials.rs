//! The credential lifecycle: API tokens listed, revoked and expiring; accounts disabled and
//! enabled; password changes; signing out everywhere; the session idle timeout and the purge;
//! the setup token's expiry and single use.

use crate::common;

use std::time::Duration;

use common::{error_kind, TestEngine, ADMIN, ADMIN_PASSWORD, MEMBER_PASSWORD};
use concord_domain::ErrorKind;
use concord_engine::{CredentialPolicy, CredentialsRemoved, Engine, Principal};

fn with_user(env: &TestEngine, name: &str) -> Principal {
    env.engine
        .create_user(&env.admin, name, MEMBER_PASSWORD, false)
        .expect("create user")
}

#[test]
fn tokens_are_listed_without_secrets_and_scoped_to_their_owner() {
    let env = TestEngine::new();
    let ann = with_user(&env, "ann");
    let bob = with_user(&env, "bob");
    let engine = &env.engine;
    let ann_secret = engine.create_api_token(&ann, ann.id, "ann script").unwrap();
    engine.create_api_token(&bob, bob.id, "bob script").unwrap();
    assert_eq!(
        error_kind(engine.create_api_token(&ann, bob.id, "for bob")),
        ErrorKind::Forbidden
    );

    let own = engine.api_tokens(&ann, None).unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].name, "ann script");
    assert_eq!(own[0].user_name, "ann");
    assert_eq!(own[0].expires_ms, None);
    assert!(
        !ann_secret.contains(&own[0].id),
        "the id is not part of the secret"
    );
    assert_eq!(
        error_kind(engine.api_tokens(&ann, Some(bob.id))),
        ErrorKind::Forbidden
    );
    let all = engine.api_tokens(&env.admin, None).unwrap();
    let mut names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["ann script", "bob script"]);
    let bobs = engine.api_tokens(&env.admin, Some(bob.id)).unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].user, bob.id);

    // A use is recorded.
    assert_eq!(own[0].last_used_ms, None);
    assert_eq!(
        engine.token_principal(&ann_secret).unwrap(),
        Some(ann.clone())
    );
    assert!(engine.api_tokens(&ann, None).unwrap()[0]
        .last_used_ms
        .is_some());
}

#[test]
fn a_revoked_token_stops_working_and_others_cannot_revoke_it() {
    let env = TestEngine::new();
    let ann = with_user(&env, "ann");
    let bob = with_user(&env, "bob");
    let engine = &env.engine;
    let secret = engine.create_api_token(&ann, ann.id, "script").unwrap();
    let id = engine.api_tokens(&ann, None).unwrap()[0].id.clone();

    assert_eq!(
        error_kind(engine.revoke_api_token(&bob, &id)),
        ErrorKind::NotFound
    );
    assert_eq!(engine.token_principal(&secret).unwrap(), Some(ann.clone()));
    engine.revoke_api_token(&ann, &id).unwrap();
    assert_eq!(engine.token_principal(&secret).unwrap(), None);
    assert!(engine.api_tokens(&ann, None).unwrap().is_empty());
    assert_eq!(
        error_kind(engine.revoke_api_token(&ann, &id)),
        ErrorKind::NotFound
    );

    // An admin may revoke anyone's.
    let secret = engine.create_api_token(&ann, ann.id, "again").unwrap();
    let id = engine.api_tokens(&ann, None).unwrap()[0].id.clone();
    engine.revoke_api_token(&env.admin, &id).unwrap();
    assert_eq!(engine.token_principal(&secret).unwrap(), None);
}

#[test]
fn an_expired_token_stops_working_and_is_purged() {
    let env = TestEngine::new();
    let ann = with_user(&env, "ann");
    let engine = &env.engine;
    let short = engine
        .create_expiring_api_token(&ann, ann.id, "short", Some(Duration::from_millis(50)))
        .unwrap();
    let long = engine
        .create_expiring_api_token(&ann, ann.id, "long", Some(Duration::from_secs(86_400)))
        .unwrap();
    assert_eq!(
        error_kind(engine.create_expiring_api_token(&ann, ann.id, "zero", Some(Duration::ZERO))),
        ErrorKind::InvalidInput
    );
    assert_eq!(engine.token_principal(&short).unwrap(), Some(ann.clone()));
    let listed = engine.api_tokens(&ann, None).unwrap();
    assert!(listed.iter().all(|t| t.expires_ms.is_some()));

    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(engine.token_principal(&short).unwrap(), None);
    assert_eq!(engine.token_principal(&long).unwrap(), Some(ann.clone()));
    let removed = engine.purge_expired_credentials().unwrap();
    assert_eq!(removed.tokens, 1);
    let left: Vec<_> = engine
        .api_tokens(&ann, None)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(left, ["long"]);
}

#[test]
fn a_disabled_user_loses_sessions_and_tokens_at_once_until_enabled() {
    let env = TestEngine::new();
    let ann = with_user(&env, "ann");
    let engine = &env.engine;
    let (_, session) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    let token = engine.create_api_token(&ann, ann.id, "script").unwrap();

    assert_eq!(
        error_kind(engine.set_user_disabled(&ann, "ann", true)),
        ErrorKind::Forbidden,
        "only admins disable accounts"
    );
    engine.set_user_disabled(&env.admin, "ann", true).unwrap();
    assert_eq!(engine.session_principal(&session).unwrap(), None);
    assert_eq!(engine.token_principal(&token).unwrap(), None);
    assert_eq!(
        error_kind(engine.login("ann", MEMBER_PASSWORD)),
        ErrorKind::NotSignedIn
    );
    assert!(engine
        .users(&env.admin)
        .unwrap()
        .iter()
        .any(|u| u.name == "ann" && u.disabled));

    engine.set_user_disabled(&env.admin, "ann", false).unwrap();
    // The session was deleted when the account was disabled; the token only paused.
    assert_eq!(engine.session_principal(&session).unwrap(), None);
    assert_eq!(engine.token_principal(&token).unwrap(), Some(ann.clone()));
    engine.login("ann", MEMBER_PASSWORD).unwrap();
}

#[test]
fn an_admin_cannot_disable_themself() {
    let env = TestEngine::new();
    assert_eq!(
        error_kind(env.engine.set_user_disabled(&env.admin, ADMIN, true)),
        ErrorKind::InvalidInput
    );
    env.engine.login(ADMIN, ADMIN_PASSWORD).unwrap();
    assert_eq!(
        error_kind(env.engine.set_user_disabled(&env.admin, "nobody", true)),
        ErrorKind::NotFound
    );
}

#[test]
fn changing_a_password_needs_the_current_one_or_an_admin() {
    let env = TestEngine::new();
    let ann = with_user(&env, "ann");
    let bob = with_user(&env, "bob");
    let engine = &env.engine;
    let (_, here) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    let (_, elsewhere) = engine.login("ann", MEMBER_PASSWORD).unwrap();

    assert_eq!(
        error_kind(engine.change_password(
            &ann,
            ann.id,
            Some("wrong one!"),
            "new password 1",
            None
        )),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        error_kind(engine.change_password(&ann, ann.id, None, "new password 1", None)),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        error_kind(engine.change_password(&bob, ann.id, None, "new password 1", None)),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(engine.change_password(&ann, ann.id, Some(MEMBER_PASSWORD), "short", None)),
        ErrorKind::InvalidInput
    );
    engine.login("ann", MEMBER_PASSWORD).unwrap();

    engine
        .change_password(
            &ann,
            ann.id,
            Some(MEMBER_PASSWORD),
            "new password 1",
            Some(&here),
        )
        .unwrap();
    assert_eq!(
        error_kind(engine.login("ann", MEMBER_PASSWORD)),
        ErrorKind::NotSignedIn
    );
    engine.login("ann", "new password 1").unwrap();
    assert_eq!(engine.session_principal(&here).unwrap(), Some(ann.clone()));
    assert_eq!(engine.session_principal(&elsewhere).unwrap(), None);

    // An admin sets it without the current one; every session of the user ends.
    env.engine
        .change_password(&env.admin, ann.id, None, "admin set this", None)
        .unwrap();
    assert_eq!(engine.session_principal(&here).unwrap(), None);
    engine.login("ann", "admin set this").unwrap();
}

#[test]
fn signing_out_everywhere_ends_all_sessions_and_optionally_tokens() {
    let env = TestEngine::new();
    let ann = with_user(&env, "ann");
    let bob = with_user(&env, "bob");
    let engine = &env.engine;
    let (_, one) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    let (_, two) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    let (_, bobs) = engine.login("bob", MEMBER_PASSWORD).unwrap();
    let token = engine.create_api_token(&ann, ann.id, "script").unwrap();

    assert_eq!(
        error_kind(engine.sign_out_everywhere(&bob, ann.id, true)),
        ErrorKind::Forbidden
    );
    let removed = engine.sign_out_everywhere(&ann, ann.id, false).unwrap();
    assert_eq!(
        removed,
        CredentialsRemoved {
            sessions: 2,
            tokens: 0
        }
    );
    assert_eq!(engine.session_principal(&one).unwrap(), None);
    assert_eq!(engine.session_principal(&two).unwrap(), None);
    assert_eq!(engine.token_principal(&token).unwrap(), Some(ann.clone()));
    assert_eq!(engine.session_principal(&bobs).unwrap(), Some(bob.clone()));

    engine.login("ann", MEMBER_PASSWORD).unwrap();
    let removed = engine
        .sign_out_everywhere(&env.admin, ann.id, true)
        .unwrap();
    assert_eq!(
        removed,
        CredentialsRemoved {
            sessions: 1,
            tokens: 1
        }
    );
    assert_eq!(engine.token_principal(&token).unwrap(), None);
}

#[test]
fn an_idle_session_expires_while_one_in_use_lives_and_the_purge_removes_it() {
    let env = TestEngine::new();
    with_user(&env, "ann");
    let engine = &env.engine;
    engine.set_credential_policy(CredentialPolicy {
        session_idle_ms: 1000,
        ..CredentialPolicy::default()
    });
    let (_, idle) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    let (ann, busy) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    // Used every 300 ms for 1.2 s: longer than the idle timeout, never idle for it.
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(engine.session_principal(&busy).unwrap(), Some(ann.clone()));
    }
    assert_eq!(engine.session_principal(&idle).unwrap(), None);
    let removed = engine.purge_expired_credentials().unwrap();
    assert_eq!(removed.sessions, 1, "only the idle session is purged");
    assert_eq!(engine.session_principal(&busy).unwrap(), Some(ann));
}

fn fresh_engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(dir.path()).expect("open engine");
    (dir, engine)
}

#[test]
fn the_setup_token_is_checked_used_once_and_replaced_on_rearm() {
    let (_dir, engine) = fresh_engine();
    assert_eq!(
        error_kind(engine.setup_admin("", "ada", "ada-password")),
        ErrorKind::Forbidden,
        "nothing armed yet"
    );
    let first = engine.arm_setup().unwrap().expect("armed");
    let second = engine.arm_setup().unwrap().expect("re-armed");
    assert_ne!(first, second);
    for wrong in [first.as_str(), "", &format!("{second}x"), &second[1..]] {
        assert_eq!(
            error_kind(engine.setup_admin(wrong, "ada", "ada-password")),
            ErrorKind::Forbidden,
            "{wrong:?}"
        );
    }
    let ada = engine.setup_admin(&second, "ada", "ada-password").unwrap();
    assert!(ada.is_admin);
    assert_eq!(
        error_kind(engine.setup_admin(&second, "eve", "eve-password")),
        ErrorKind::Forbidden,
        "used up"
    );
    assert_eq!(
        engine.arm_setup().unwrap(),
        None,
        "no setup once an admin exists"
    );
}

#[test]
fn the_setup_token_expires() {
    let (_dir, engine) = fresh_engine();
    engine.set_credential_policy(CredentialPolicy {
        setup_token_ttl_ms: 50,
        ..CredentialPolicy::default()
    });
    let token = engine.arm_setup().unwrap().expect("armed");
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(
        error_kind(engine.setup_admin(&token, "ada", "ada-password")),
        ErrorKind::Forbidden
    );
    assert!(engine.needs_setup().unwrap());
}

#[test]
fn two_concurrent_setups_create_one_admin() {
    for round in 0..5 {
        let (_dir, engine) = fresh_engine();
        let token = engine.arm_setup().unwrap().expect("armed");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = ["ada", "eve"]
            .into_iter()
            .map(|name| {
                let (engine, token, barrier) = (engine.clone(), token.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    engine.setup_admin(&token, name, "a good password")
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("setup thread"))
            .collect();
        let created = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 1, "round {round}: {results:?}");
        let failed = results
            .into_iter()
            .find_map(|r| r.err())
            .expect("one fails");
        assert!(
            matches!(failed.kind(), ErrorKind::Conflict | ErrorKind::Forbidden),
            "{failed:?}"
        );
        let admins = engine
            .users(&Principal::local())
            .unwrap()
            .into_iter()
            .filter(|u| u.is_admin)
            .count();
        assert_eq!(admins, 1, "round {round}");
    }
}

#[test]
fn bootstrap_admin_checks_in_the_insert_transaction() {
    // Without a token (the local path): concurrent calls still make one admin.
    let (_dir, engine) = fresh_engine();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                engine.bootstrap_admin(&format!("admin{i}"), "a good password")
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .filter(|r| r.is_ok())
        .count();
    assert_eq!(ok, 1);
}
