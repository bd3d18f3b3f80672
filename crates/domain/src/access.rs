//! Who is calling, as values the services check: a [`Caller`] comes only from
//! [`crate::Tokens::authenticate`], and an [`Admin`] proof only from a caller whose account
//! is an admin *now* (or from [`Admin::local_operator`]). Admin operations take the proof,
//! so no code path can reach them with a forgotten check.
use crate::{Error, Id, Result, User};

/// An authenticated caller: the account a live login token belongs to, as the row is now.
#[derive(Clone)]
pub struct Caller {
    user: User,
}

/// The email is personal data: a logged caller shows its id only.
impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("id", &self.user.id).finish()
    }
}

impl Caller {
    pub(crate) fn new(user: User) -> Self {
        Self { user }
    }

    /// The caller's account id.
    pub fn id(&self) -> Id {
        self.user.id
    }

    /// The caller's account.
    pub fn user(&self) -> &User {
        &self.user
    }

    /// The caller's account, by value.
    pub fn into_user(self) -> User {
        self.user
    }

    /// Proof that the caller may use admin operations; [`Error::Forbidden`] otherwise.
    pub fn admin(&self) -> Result<Admin> {
        if self.user.is_admin {
            Ok(Admin { _private: () })
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// Proof that the holder may use admin operations. It cannot be built outside this
/// crate except through [`Caller::admin`] and [`Admin::local_operator`].
#[derive(Debug)]
pub struct Admin {
    _private: (),
}

impl Admin {
    /// The proof for a program run by the operator on the database itself (the `iops`
    /// command line): whoever holds the database credentials can change any row anyway, so
    /// there is nothing further to check. Never call this on behalf of a remote client.
    pub fn local_operator() -> Self {
        Admin { _private: () }
    }
}
