//! Domain tests: accounts, tokens and the failed-login throttle.
use std::sync::Arc;

use chrono::Duration;
use domain::PageRequest;
use domain::Tier;
use domain::storage::{DatasetStore, LocalStore};
use domain::{Clock, Domain, Error, FixedClock, Id, Settings};
use domain::{NewAccount, ProfileChange};
use entity::{access_tokens, datasets, users};
use iops_tests::{TestDb, count, on_both};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::support::{default_now, harness};

const PASSWORD: &str = "correct horse battery";

fn new_account(email: &str, password: &str) -> NewAccount {
    NewAccount {
        email: email.to_owned(),
        password: password.to_owned(),
        full_name: None,
    }
}

async fn register(d: &Domain, email: &str) -> domain::User {
    d.accounts
        .register(new_account(email, PASSWORD))
        .await
        .expect("register")
}

/// The user as stored, through the domain's own read.
async fn stored_user(d: &Domain, id: Id) -> domain::User {
    d.accounts.get(id).await.expect("user row")
}

/// The stored password hash (never part of what the domain hands out).
async fn stored_hash(d: &Domain, id: Id) -> String {
    users::Entity::find_by_id(id)
        .one(d.database().connection())
        .await
        .unwrap()
        .expect("user row")
        .password_hash
}

on_both!(register_normalizes_and_refuses_duplicates, register_cases);
async fn register_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;

    let user = d
        .accounts
        .register(NewAccount {
            full_name: Some("Alice A.".to_owned()),
            ..new_account("  Alice@Example.COM ", PASSWORD)
        })
        .await
        .unwrap();
    assert_eq!(user.email, "alice@example.com");
    assert_eq!(user.full_name.as_deref(), Some("Alice A."));
    assert_eq!(user.tier, Tier::Free);
    assert!(!user.is_admin);
    assert_eq!(user.created_at, h.clock.now_naive().and_utc());
    let hash = stored_hash(d, user.id).await;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_eq!(stored_user(d, user.id).await, user);

    for duplicate in [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "\t alice@example.com  ",
    ] {
        let err = d
            .accounts
            .register(new_account(duplicate, PASSWORD))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{duplicate:?}: {err:?}");
    }

    for bad in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "al ice@example.com",
        "bob@localhost",
    ] {
        let err = d
            .accounts
            .register(new_account(bad, PASSWORD))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{bad:?}: {err:?}");
    }
    let too_long_email = format!("{}@example.com", "b".repeat(250));
    assert!(matches!(
        d.accounts
            .register(new_account(&too_long_email, PASSWORD))
            .await,
        Err(Error::Validation(_))
    ));

    for bad_password in ["short", "1234567", &"p".repeat(1025)] {
        let err = d
            .accounts
            .register(new_account("bob@example.com", bad_password))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{err:?}");
    }
    let err = d
        .accounts
        .register(NewAccount {
            full_name: Some("n".repeat(256)),
            ..new_account("bob@example.com", PASSWORD)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");

    // Exactly 1024 bytes and exactly 8 characters are both allowed.
    d.accounts
        .register(new_account("bob@example.com", &"p".repeat(1024)))
        .await
        .unwrap();
    d.accounts
        .register(new_account("carol@example.com", "12345678"))
        .await
        .unwrap();
    assert_eq!(count(d.database().connection(), "users").await, 3);
}

on_both!(
    concurrent_registrations_have_one_winner,
    concurrent_registrations
);
async fn concurrent_registrations(db: TestDb) {
    let h = harness(db).await;
    let second = h.second_process().await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let d = if i % 2 == 0 {
            h.domain.clone()
        } else {
            second.clone()
        };
        let email = if i % 2 == 0 {
            "dup@example.com"
        } else {
            " DUP@example.com"
        };
        tasks.push(tokio::spawn(async move {
            d.accounts.register(new_account(email, PASSWORD)).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(count(h.domain.database().connection(), "users").await, 1);
}

on_both!(login_checks_the_password, login_cases);
async fn login_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let user = register(d, "alice@example.com").await;

    let session = d
        .accounts
        .login(" ALICE@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(session.user.id, user.id);
    assert_eq!(
        session.token.expires_at,
        default_now() + d.settings().session_ttl
    );
    assert_eq!(session.token.secret.len(), 43);
    assert_eq!(
        d.tokens
            .authenticate(&session.token.secret)
            .await
            .unwrap()
            .id(),
        user.id
    );

    // Only the SHA-256 of the secret is stored.
    let row = access_tokens::Entity::find()
        .filter(access_tokens::Column::UserId.eq(user.id))
        .one(d.database().connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.token_hash,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            session.token.secret.as_bytes()
        ))
    );
    assert_ne!(row.token_hash, session.token.secret);
    assert_eq!(row.token_hash.len(), 64);

    let wrong = d
        .accounts
        .login("alice@example.com", "not the password", "10.0.0.1")
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::Unauthorized(_)), "{wrong:?}");
    let unknown = d
        .accounts
        .login("nobody@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap_err();
    assert!(matches!(unknown, Error::Unauthorized(_)), "{unknown:?}");
    let malformed = d
        .accounts
        .login(&"x".repeat(400), PASSWORD, &"c".repeat(100))
        .await
        .unwrap_err();
    assert!(matches!(malformed, Error::Unauthorized(_)), "{malformed:?}");

    for garbage in [
        "",
        "Bearer",
        "not-a-token",
        &"A".repeat(43),
        &"A".repeat(5000),
    ] {
        assert!(matches!(
            d.tokens.authenticate(garbage).await,
            Err(Error::Unauthorized(_))
        ));
    }
}

on_both!(logout_revokes_the_token, logout_cases);
async fn logout_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    register(d, "alice@example.com").await;
    let one = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    let two = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();

    d.accounts.logout(&one.token.secret).await.unwrap();
    assert!(matches!(
        d.tokens.authenticate(&one.token.secret).await,
        Err(Error::Unauthorized(_))
    ));
    // Other sessions are unaffected, and a second logout is harmless.
    assert!(d.tokens.authenticate(&two.token.secret).await.is_ok());
    d.accounts.logout(&one.token.secret).await.unwrap();
    d.accounts.logout("garbage").await.unwrap();
}

on_both!(tokens_work_across_processes, cross_process_tokens);
async fn cross_process_tokens(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let other = h.second_process().await;
    let user = register(d, "alice@example.com").await;

    let here = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    assert_eq!(
        other
            .tokens
            .authenticate(&here.token.secret)
            .await
            .unwrap()
            .id(),
        user.id
    );
    d.accounts.logout(&here.token.secret).await.unwrap();
    assert!(matches!(
        other.tokens.authenticate(&here.token.secret).await,
        Err(Error::Unauthorized(_))
    ));

    let there = other
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    assert_eq!(
        d.tokens
            .authenticate(&there.token.secret)
            .await
            .unwrap()
            .id(),
        user.id
    );
    other.accounts.logout(&there.token.secret).await.unwrap();
    assert!(matches!(
        d.tokens.authenticate(&there.token.secret).await,
        Err(Error::Unauthorized(_))
    ));
}

on_both!(
    change_password_keeps_only_the_current_session,
    change_password_cases
);
async fn change_password_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let other = h.second_process().await;
    let user = register(d, "alice@example.com").await;
    let current = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    let elsewhere = other
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(1));

    let err = d
        .accounts
        .change_password(
            user.id,
            "wrong current",
            "brand new password",
            &current.token.secret,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    let err = d
        .accounts
        .change_password(user.id, PASSWORD, "short", &current.token.secret)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
    assert!(d.tokens.authenticate(&elsewhere.token.secret).await.is_ok());

    d.accounts
        .change_password(
            user.id,
            PASSWORD,
            "brand new password",
            &current.token.secret,
        )
        .await
        .unwrap();
    assert!(d.tokens.authenticate(&current.token.secret).await.is_ok());
    assert!(matches!(
        d.tokens.authenticate(&elsewhere.token.secret).await,
        Err(Error::Unauthorized(_))
    ));
    assert!(matches!(
        other.tokens.authenticate(&elsewhere.token.secret).await,
        Err(Error::Unauthorized(_))
    ));
    let changed = stored_user(d, user.id).await;
    assert!(changed.updated_at > user.updated_at);
    assert!(stored_hash(d, changed.id).await.starts_with("$argon2id$"));

    assert!(matches!(
        d.accounts.login("alice@example.com", PASSWORD, "c").await,
        Err(Error::Unauthorized(_))
    ));
    d.accounts
        .login("alice@example.com", "brand new password", "c")
        .await
        .unwrap();
}

on_both!(tokens_expire_with_the_clock, expiry_cases);
async fn expiry_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    register(d, "alice@example.com").await;
    let session = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    let revoked = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    d.accounts.logout(&revoked.token.secret).await.unwrap();

    h.clock
        .advance(d.settings().session_ttl - Duration::seconds(1));
    assert!(d.tokens.authenticate(&session.token.secret).await.is_ok());
    h.clock.advance(Duration::seconds(1));
    assert!(matches!(
        d.tokens.authenticate(&session.token.secret).await,
        Err(Error::Unauthorized(_))
    ));

    // Housekeeping keeps a day of grace, then deletes both the expired and the revoked.
    assert_eq!(d.tokens.purge_expired().await.unwrap(), 1);
    h.clock.advance(Duration::days(1) + Duration::seconds(1));
    assert_eq!(d.tokens.purge_expired().await.unwrap(), 1);
    assert_eq!(count(d.database().connection(), "access_tokens").await, 0);
}

on_both!(role_changes_apply_to_existing_tokens, role_change_cases);
async fn role_change_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let other = h.second_process().await;
    let user = register(d, "alice@example.com").await;
    let session = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    h.clock.advance(Duration::minutes(5));

    let updated = d
        .accounts
        .admin_update(
            &domain::Admin::local_operator(),
            user.id,
            Some(Tier::Pro),
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.tier, Tier::Pro);
    assert!(updated.updated_at > user.updated_at);
    assert_eq!(
        other
            .tokens
            .authenticate(&session.token.secret)
            .await
            .unwrap()
            .user()
            .tier,
        Tier::Pro
    );

    other
        .accounts
        .set_tier_by_email(
            &domain::Admin::local_operator(),
            " Alice@Example.com",
            Tier::Enterprise,
        )
        .await
        .unwrap();
    other
        .accounts
        .set_admin_by_email(&domain::Admin::local_operator(), "alice@example.com", true)
        .await
        .unwrap();
    let seen = d.tokens.authenticate(&session.token.secret).await.unwrap();
    assert_eq!(seen.user().tier, Tier::Enterprise);
    assert!(seen.user().is_admin);
    let revoked = d
        .accounts
        .set_admin_by_email(&domain::Admin::local_operator(), "alice@example.com", false)
        .await
        .unwrap();
    assert!(!revoked.is_admin);
    assert_eq!(revoked.tier, Tier::Enterprise);

    assert!(matches!(
        d.accounts
            .set_tier_by_email(
                &domain::Admin::local_operator(),
                "nobody@example.com",
                Tier::Pro
            )
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.accounts
            .set_admin_by_email(&domain::Admin::local_operator(), "nobody@example.com", true)
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.accounts
            .admin_update(
                &domain::Admin::local_operator(),
                Id(uuid::Uuid::new_v4()),
                Some(Tier::Pro),
                None
            )
            .await,
        Err(Error::NotFound)
    ));
}

on_both!(profile_updates, profile_cases);
async fn profile_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let alice = register(d, "alice@example.com").await;
    register(d, "bob@example.com").await;
    h.clock.advance(Duration::minutes(1));

    let named = d
        .accounts
        .update_profile(
            alice.id,
            ProfileChange {
                full_name: Some(Some("Alice".to_owned())),
                email: Some(" Alice.New@Example.com ".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(named.full_name.as_deref(), Some("Alice"));
    assert_eq!(named.email, "alice.new@example.com");
    assert!(named.updated_at > alice.updated_at);
    assert_eq!(named.created_at, alice.created_at);
    assert_eq!(stored_user(d, alice.id).await, named);

    let unchanged = d
        .accounts
        .update_profile(alice.id, ProfileChange::default())
        .await
        .unwrap();
    assert_eq!(unchanged, named);
    // Re-submitting one's own address (in any case) is not a conflict.
    d.accounts
        .update_profile(
            alice.id,
            ProfileChange {
                email: Some("ALICE.NEW@example.com".to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let cleared = d
        .accounts
        .update_profile(
            alice.id,
            ProfileChange {
                full_name: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.full_name, None);
    assert_eq!(cleared.email, "alice.new@example.com");

    let taken = d
        .accounts
        .update_profile(
            alice.id,
            ProfileChange {
                email: Some("BOB@example.com".to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::Conflict(_)), "{taken:?}");
    let bad = d
        .accounts
        .update_profile(
            alice.id,
            ProfileChange {
                email: Some("not an email".to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::Validation(_)), "{bad:?}");
    assert_eq!(
        d.accounts.get(alice.id).await.unwrap().email,
        "alice.new@example.com"
    );

    let missing = Id(uuid::Uuid::new_v4());
    assert!(matches!(
        d.accounts.get(missing).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.accounts
            .update_profile(
                missing,
                ProfileChange {
                    full_name: Some(None),
                    ..Default::default()
                },
            )
            .await,
        Err(Error::NotFound)
    ));
}

on_both!(admin_lists_users_newest_first, list_cases);
async fn list_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let mut ids = Vec::new();
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        ids.push(register(d, email).await.id);
        h.clock.advance(Duration::seconds(1));
    }
    d.accounts
        .admin_update(
            &domain::Admin::local_operator(),
            ids[1],
            Some(Tier::Pro),
            None,
        )
        .await
        .unwrap();

    let first = d
        .accounts
        .list(
            &domain::Admin::local_operator(),
            None,
            &PageRequest::new(Some(2), None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        first.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[2], ids[1]]
    );
    let cursor = first.next_cursor.expect("a second page");
    let second = d
        .accounts
        .list(
            &domain::Admin::local_operator(),
            None,
            &PageRequest::new(Some(2), Some(&cursor)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        second.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        [ids[0]]
    );
    assert!(second.next_cursor.is_none());

    let pro = d
        .accounts
        .list(
            &domain::Admin::local_operator(),
            Some(Tier::Pro),
            &PageRequest::new(None, None).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(pro.items.iter().map(|u| u.id).collect::<Vec<_>>(), [ids[1]]);
}

/// Ten failures use up the window of one client on one account.
async fn fail_ten_times(d: &Domain, client: &str) {
    for _ in 0..10 {
        let err = d
            .accounts
            .login("alice@example.com", "wrong password", client)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    }
}

on_both!(failed_logins_are_throttled, throttle_cases);
async fn throttle_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let other = h.second_process().await;
    register(d, "alice@example.com").await;
    register(d, "bob@example.com").await;

    fail_ten_times(d, "10.0.0.1").await;
    // Even the right password, from either process, and however the email is written.
    let err = d
        .accounts
        .login("alice@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after_secs: 900
            }
        ),
        "{err:?}"
    );
    h.clock.advance(Duration::minutes(10));
    let err = other
        .accounts
        .login(" ALICE@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RateLimited {
                retry_after_secs: 300
            }
        ),
        "{err:?}"
    );

    // Another client, and another account from the same client, are not affected.
    d.accounts
        .login("alice@example.com", PASSWORD, "10.0.0.2")
        .await
        .unwrap();
    d.accounts
        .login("bob@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap();

    // Once the window has passed, the right password works again and clears the count.
    h.clock.advance(Duration::minutes(5));
    d.accounts
        .login("alice@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(count(d.database().connection(), "attempt_limits").await, 0);

    // A success resets the count: nine failures, a success, nine more are all checked.
    for _ in 0..9 {
        assert!(matches!(
            d.accounts
                .login("bob@example.com", "wrong password", "c")
                .await,
            Err(Error::Unauthorized(_))
        ));
    }
    d.accounts
        .login("bob@example.com", PASSWORD, "c")
        .await
        .unwrap();
    for _ in 0..9 {
        assert!(matches!(
            d.accounts
                .login("bob@example.com", "wrong password", "c")
                .await,
            Err(Error::Unauthorized(_))
        ));
    }
}

on_both!(concurrent_guesses_cannot_pass_the_limit, concurrent_guesses);
async fn concurrent_guesses(db: TestDb) {
    let h = harness(db).await;
    let other = h.second_process().await;
    register(&h.domain, "alice@example.com").await;

    // Thirty simultaneous guesses, half through each "process": the limit is checked
    // under a hashing permit, so at most the hashes running at once (4 per test domain)
    // overshoot the ten; every other guess is refused unchecked.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let d = if i % 2 == 0 {
            h.domain.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            d.accounts
                .login("alice@example.com", "wrong password", "10.0.0.9")
                .await
        }));
    }
    let (mut unauthorized, mut limited) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Err(Error::Unauthorized(_)) => unauthorized += 1,
            Err(Error::RateLimited { retry_after_secs }) => {
                assert!((1..=900).contains(&retry_after_secs));
                limited += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!((10..=17).contains(&unauthorized), "{unauthorized} checked");
    assert_eq!(unauthorized + limited, 30);
}

on_both!(simultaneous_right_logins_are_never_refused, right_logins);
async fn right_logins(db: TestDb) {
    let h = harness(db).await;
    let other = h.second_process().await;
    register(&h.domain, "bob@example.com").await;
    // Failures are counted, not attempts: many right logins at once from one address.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let d = if i % 2 == 0 {
                h.domain.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move {
                d.accounts
                    .login("bob@example.com", PASSWORD, "10.0.0.7")
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("a right login");
    }
}

on_both!(legacy_bcrypt_password_is_upgraded_on_login, legacy_login);
async fn legacy_login(empty: TestDb) {
    let db = TestDb::legacy(empty.backend).await;
    drop(empty);
    let conn = db.migrated().await;
    let store = LocalStore::open(db.data_dir().join("datasets"))
        .await
        .unwrap();
    let d = iops_tests::domain(
        conn,
        Arc::new(FixedClock::new(default_now())),
        Arc::new(store),
        Settings::default(),
    );
    let before = users::Entity::find()
        .filter(users::Column::Email.eq("alice@example.com"))
        .one(d.database().connection())
        .await
        .unwrap()
        .expect("alice in the fixture");
    assert!(stored_hash(&d, before.id).await.starts_with("$2b$"));

    assert!(matches!(
        d.accounts
            .login("alice@example.com", "wrong-pass", "c")
            .await,
        Err(Error::Unauthorized(_))
    ));
    let session = d
        .accounts
        .login("alice@example.com", "alice-free-pass-1", "c")
        .await
        .unwrap();
    assert_eq!(session.user.id, before.id);
    assert!(
        stored_hash(&d, session.user.id)
            .await
            .starts_with("$argon2id$")
    );
    let after = stored_user(&d, before.id).await;
    assert!(
        stored_hash(&d, after.id).await.starts_with("$argon2id$"),
        "{}",
        stored_hash(&d, after.id).await
    );
    assert_eq!(after.tier, Tier::Free);

    d.accounts
        .login("Alice@Example.com", "alice-free-pass-1", "c")
        .await
        .unwrap();
    assert_eq!(
        d.tokens
            .authenticate(&session.token.secret)
            .await
            .unwrap()
            .id(),
        before.id
    );
    // Existing accounts of the fixture still count as taken.
    assert!(matches!(
        d.accounts
            .register(new_account("BOB@example.com", PASSWORD))
            .await,
        Err(Error::Conflict(_))
    ));
}

on_both!(delete_removes_rows_and_files, delete_cases);
async fn delete_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    let alice = register(d, "alice@example.com").await;
    let bob = register(d, "bob@example.com").await;
    let session = d
        .accounts
        .login("alice@example.com", PASSWORD, "c")
        .await
        .unwrap();
    assert!(matches!(
        d.accounts
            .login("alice@example.com", "wrong password", "c")
            .await,
        Err(Error::Unauthorized(_))
    ));

    let alice_key = dataset_with_file(&h.store, d, alice.id).await;
    let bob_key = dataset_with_file(&h.store, d, bob.id).await;
    assert!(h.store.exists(&alice_key).await.unwrap());

    d.accounts.delete(alice.id).await.unwrap();
    assert!(!h.store.exists(&alice_key).await.unwrap());
    assert!(h.store.exists(&bob_key).await.unwrap());
    assert!(matches!(
        d.accounts.get(alice.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        d.tokens.authenticate(&session.token.secret).await,
        Err(Error::Unauthorized(_))
    ));
    let owned = |user: Id| {
        let db = d.database().connection().clone();
        async move {
            let data = datasets::Entity::find()
                .filter(datasets::Column::UserId.eq(user))
                .count(&db)
                .await
                .unwrap();
            let tokens = access_tokens::Entity::find()
                .filter(access_tokens::Column::UserId.eq(user))
                .count(&db)
                .await
                .unwrap();
            (data, tokens)
        }
    };
    assert_eq!(owned(alice.id).await, (0, 0));
    assert_eq!(owned(bob.id).await, (1, 0));
    assert_eq!(count(d.database().connection(), "users").await, 1);
    assert_eq!(count(d.database().connection(), "attempt_limits").await, 0);

    assert!(matches!(
        d.accounts.delete(alice.id).await,
        Err(Error::NotFound)
    ));
    // The address is free again.
    register(d, "alice@example.com").await;
}

/// Stores a small file for `user` through the store and records it as a dataset.
async fn dataset_with_file(store: &LocalStore, d: &Domain, user: Id) -> String {
    let id = Id(uuid::Uuid::new_v4());
    let key = format!("{}/{}.csv", user.0, id.0);
    let staged = store.stage().await.unwrap();
    tokio::fs::write(&staged, b"a,b\n1,2\n").await.unwrap();
    store.publish(&staged, &key).await.unwrap();
    let now = d.now().naive_utc();
    datasets::Entity::insert(datasets::ActiveModel {
        id: Set(id),
        user_id: Set(user),
        name: Set("data.csv".to_owned()),
        file_path: Set(Some(key.clone())),
        connection_id: Set(None),
        row_count: Set(Some(1)),
        column_count: Set(Some(2)),
        size_bytes: Set(Some(8)),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(d.database().connection())
    .await
    .unwrap();
    key
}

on_both!(report_tokens_grant_one_report_only, report_tokens);
async fn report_tokens(empty: TestDb) {
    let db = TestDb::legacy(empty.backend).await;
    drop(empty);
    let h = harness(db).await;
    let d = &h.domain;
    let reports = entity::reports::Entity::find()
        .all(d.database().connection())
        .await
        .unwrap();
    let protected = reports
        .iter()
        .find(|r| r.short_code == "p7RtZ3wB")
        .unwrap()
        .id;
    let public = reports
        .iter()
        .find(|r| r.short_code == "Xk9Lm2Qa")
        .unwrap()
        .id;

    let issued = d.tokens.issue_unlock(protected).await.unwrap();
    assert_eq!(issued.expires_at, default_now() + d.settings().unlock_ttl);
    assert!(
        d.tokens
            .grants_report(&issued.secret, protected)
            .await
            .unwrap()
    );
    assert!(
        !d.tokens
            .grants_report(&issued.secret, public)
            .await
            .unwrap()
    );
    assert!(!d.tokens.grants_report("garbage", protected).await.unwrap());
    // An unlock token is not a login.
    assert!(matches!(
        d.tokens.authenticate(&issued.secret).await,
        Err(Error::Unauthorized(_))
    ));
    let other = h.second_process().await;
    assert!(
        other
            .tokens
            .grants_report(&issued.secret, protected)
            .await
            .unwrap()
    );

    h.clock.advance(d.settings().unlock_ttl);
    assert!(
        !d.tokens
            .grants_report(&issued.secret, protected)
            .await
            .unwrap()
    );

    let revoked = d.tokens.issue_unlock(protected).await.unwrap();
    assert!(
        d.tokens
            .grants_report(&revoked.secret, protected)
            .await
            .unwrap()
    );
    other.tokens.revoke(&revoked.secret).await.unwrap();
    assert!(
        !d.tokens
            .grants_report(&revoked.secret, protected)
            .await
            .unwrap()
    );
}

on_both!(
    housekeeping_forgets_finished_attempt_windows,
    housekeeping_cases
);
async fn housekeeping_cases(db: TestDb) {
    let h = harness(db).await;
    let d = &h.domain;
    register(d, "alice@example.com").await;
    for client in ["10.0.0.1", "10.0.0.2"] {
        assert!(
            d.accounts
                .login("alice@example.com", "not the password", client)
                .await
                .is_err()
        );
    }
    let conn = d.database().connection().clone();
    assert_eq!(count(&conn, "attempt_limits").await, 2);
    // A window still running is kept: it is what refuses the next guesses.
    h.clock
        .advance(domain::FAILURE_WINDOW - chrono::Duration::seconds(1));
    let swept = d.housekeeping().await;
    assert!(swept.iter().all(|(_, outcome)| outcome.is_ok()));
    assert_eq!(count(&conn, "attempt_limits").await, 2);
    h.clock.advance(chrono::Duration::seconds(1));
    let swept = d.housekeeping().await;
    let attempts = swept
        .iter()
        .find(|(what, _)| what.contains("failed-attempt"))
        .expect("the attempt windows are swept");
    assert_eq!(*attempts.1.as_ref().unwrap(), 2);
    assert_eq!(count(&conn, "attempt_limits").await, 0);
}
