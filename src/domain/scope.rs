//! Who may see and change what (SPEC §5): the one visibility rule every list and object
//! query goes through.

/// The viewer's reach over objects owned by users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub user_id: i64,
    /// `view_all_mailings`: sees everyone's objects, read-only.
    pub view_all: bool,
    pub superuser: bool,
}

impl Scope {
    /// Whether the viewer may see an object of `owner_id` (otherwise: 404).
    pub fn can_view(&self, owner_id: i64) -> bool {
        self.superuser || self.view_all || owner_id == self.user_id
    }

    /// Whether the viewer may change an object of `owner_id`.
    pub fn can_change(&self, owner_id: i64) -> bool {
        self.superuser || owner_id == self.user_id
    }

    /// The owner to restrict list queries to; `None` means every owner.
    pub fn owner_filter(&self) -> Option<i64> {
        (!(self.superuser || self.view_all)).then_some(self.user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn the_four_kinds_of_viewer() {
        let owner = Scope {
            user_id: 1,
            view_all: false,
            superuser: false,
        };
        let viewer = Scope {
            user_id: 2,
            view_all: true,
            superuser: false,
        };
        let admin = Scope {
            user_id: 3,
            view_all: false,
            superuser: true,
        };
        assert!(owner.can_view(1) && owner.can_change(1));
        assert!(!owner.can_view(9) && !owner.can_change(9));
        assert!(viewer.can_view(1) && !viewer.can_change(1));
        assert!(viewer.can_change(2));
        assert!(admin.can_view(1) && admin.can_change(1));
        assert_eq!(owner.owner_filter(), Some(1));
        assert_eq!(viewer.owner_filter(), None);
        assert_eq!(admin.owner_filter(), None);
    }
}
