//! What each role may do: the one table every use case checks.

use std::fmt;

use crate::Role;

/// Something a use case needs the actor to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read patients (practitioners: only patients booked with them).
    ReadPatients,
    /// Register and change patients.
    WritePatients,
    /// Soft-delete patients.
    DeletePatients,
    /// Read practitioners, schedules and slots.
    ReadPractitioners,
    /// Register, change, deactivate and reactivate practitioners.
    WritePractitioners,
    /// Set schedules, time off and extra hours (practitioners: only their own).
    WriteSchedules,
    /// Read appointments (practitioners: only their own).
    ReadAppointments,
    /// Book, reschedule and cancel appointments.
    BookAppointments,
    /// Move appointments through check-in, start and completion.
    RunAppointments,
    /// Book outside availability or in the past.
    Overbook,
    /// Check a patient in outside the clinic's check-in window.
    OverrideCheckIn,
    /// Create, list and change staff users.
    ManageUsers,
    /// Read the audit log.
    ReadAudit,
    /// See the queue and its board.
    ReadQueue,
    /// Add walk-ins, re-triage, recall, and record that a patient left.
    ManageQueue,
    /// Call the next patient, start and finish service, write visit notes.
    ServePatients,
    /// Read the clinic's settings.
    ReadClinic,
    /// Change the clinic's settings, its webhook, and retry outbox messages.
    ManageClinic,
}

impl Permission {
    /// Every permission, for the table in the docs and for tests.
    pub const ALL: [Permission; 18] = [
        Permission::ReadPatients,
        Permission::WritePatients,
        Permission::DeletePatients,
        Permission::ReadPractitioners,
        Permission::WritePractitioners,
        Permission::WriteSchedules,
        Permission::ReadAppointments,
        Permission::BookAppointments,
        Permission::RunAppointments,
        Permission::Overbook,
        Permission::OverrideCheckIn,
        Permission::ManageUsers,
        Permission::ReadAudit,
        Permission::ReadQueue,
        Permission::ManageQueue,
        Permission::ServePatients,
        Permission::ReadClinic,
        Permission::ManageClinic,
    ];

    /// The stable snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Permission::ReadPatients => "read_patients",
            Permission::WritePatients => "write_patients",
            Permission::DeletePatients => "delete_patients",
            Permission::ReadPractitioners => "read_practitioners",
            Permission::WritePractitioners => "write_practitioners",
            Permission::WriteSchedules => "write_schedules",
            Permission::ReadAppointments => "read_appointments",
            Permission::BookAppointments => "book_appointments",
            Permission::RunAppointments => "run_appointments",
            Permission::Overbook => "overbook",
            Permission::OverrideCheckIn => "override_check_in",
            Permission::ManageUsers => "manage_users",
            Permission::ReadAudit => "read_audit",
            Permission::ReadQueue => "read_queue",
            Permission::ManageQueue => "manage_queue",
            Permission::ServePatients => "serve_patients",
            Permission::ReadClinic => "read_clinic",
            Permission::ManageClinic => "manage_clinic",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Role {
    /// The role -> permission table.
    pub fn allows(&self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Practitioner => matches!(
                permission,
                ReadPatients
                    | WritePatients
                    | ReadPractitioners
                    | WriteSchedules
                    | ReadAppointments
                    | BookAppointments
                    | RunAppointments
                    | Overbook
                    | OverrideCheckIn
                    | ReadQueue
                    | ManageQueue
                    | ServePatients
                    | ReadClinic
            ),
            Role::Receptionist => matches!(
                permission,
                ReadPatients
                    | WritePatients
                    | ReadPractitioners
                    | ReadAppointments
                    | BookAppointments
                    | RunAppointments
                    | ReadQueue
                    | ManageQueue
                    | ReadClinic
            ),
            Role::Nurse => {
                matches!(
                    permission,
                    ReadPatients
                        | ReadPractitioners
                        | ReadAppointments
                        | RunAppointments
                        | ReadQueue
                        | ManageQueue
                        | ServePatients
                        | ReadClinic
                )
            }
            // Only what the no-show sweeper does: find overdue appointments and mark them.
            Role::System => matches!(permission, ReadAppointments | RunAppointments),
        }
    }
}

/// The actor's role lacks a permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {role} may not {permission}")]
pub struct Denied {
    /// The actor's role.
    pub role: Role,
    /// What was asked for.
    pub permission: Permission,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_may_do_everything_and_only_admins_manage_users_and_read_the_audit_log() {
        for p in Permission::ALL {
            assert!(Role::Admin.allows(p));
        }
        for role in [Role::Practitioner, Role::Receptionist, Role::Nurse] {
            assert!(!role.allows(Permission::ManageUsers));
            assert!(!role.allows(Permission::ReadAudit));
            assert!(!role.allows(Permission::DeletePatients));
        }
    }

    #[test]
    fn the_system_role_may_only_read_and_run_appointments() {
        let allowed: Vec<Permission> = Permission::ALL
            .into_iter()
            .filter(|p| Role::System.allows(*p))
            .collect();
        assert_eq!(
            allowed,
            [Permission::ReadAppointments, Permission::RunAppointments]
        );
    }

    #[test]
    fn nurses_triage_and_serve_receptionists_add_walk_ins_but_do_not_serve() {
        assert!(
            Role::Nurse.allows(Permission::ManageQueue)
                && Role::Nurse.allows(Permission::ServePatients)
        );
        assert!(Role::Receptionist.allows(Permission::ManageQueue));
        assert!(!Role::Receptionist.allows(Permission::ServePatients));
        assert!(Role::Practitioner.allows(Permission::ServePatients));
    }

    #[test]
    fn receptionists_book_nurses_do_not_and_only_clinicians_overbook() {
        assert!(Role::Receptionist.allows(Permission::BookAppointments));
        assert!(!Role::Nurse.allows(Permission::BookAppointments));
        assert!(!Role::Nurse.allows(Permission::WritePatients));
        assert!(Role::Practitioner.allows(Permission::Overbook));
        assert!(!Role::Receptionist.allows(Permission::Overbook));
        // A check-in outside the window waives a clinic rule, as an overbooking does.
        assert!(Role::Practitioner.allows(Permission::OverrideCheckIn));
        assert!(!Role::Receptionist.allows(Permission::OverrideCheckIn));
        assert!(!Role::Nurse.allows(Permission::OverrideCheckIn));
    }

    /// The API documentation, whose "Roles" section shows this table to readers.
    const API_DOCS: &str = include_str!("../../../docs/api.md");

    /// The row of the table in docs/api.md that stands for `permission`. The match is
    /// exhaustive, so a new permission does not compile until it is given a row.
    fn documented_as(permission: Permission) -> &'static str {
        match permission {
            Permission::ReadPatients => "read patients",
            Permission::WritePatients => "register and change patients",
            Permission::DeletePatients => "delete patients",
            Permission::ReadPractitioners => "read practitioners, schedules, slots",
            Permission::WritePractitioners => "register, change and deactivate practitioners",
            Permission::WriteSchedules => "set schedules, time off and extra hours",
            Permission::ReadAppointments => "read appointments",
            Permission::BookAppointments => "book, reschedule, cancel",
            Permission::RunAppointments => "confirm, check in, start, complete, no-show",
            Permission::Overbook => "overbook (outside availability or in the past)",
            Permission::OverrideCheckIn => "check in outside the check-in window",
            Permission::ManageUsers => "manage users",
            Permission::ReadAudit => "read the audit log",
            Permission::ReadQueue => "see the queue and its live board",
            Permission::ManageQueue => "add walk-ins, re-triage, recall, mark left",
            Permission::ServePatients => "call next, start and finish service, write visit notes",
            Permission::ReadClinic => "read the clinic's settings",
            Permission::ManageClinic => {
                "change the clinic's settings and webhook, see and retry the outbox"
            }
        }
    }

    /// The permission a row label of the docs stands for; `None` for a row nobody maps.
    fn permission_documented_as(label: &str) -> Option<Permission> {
        Permission::ALL
            .into_iter()
            .find(|p| documented_as(*p) == label)
    }

    /// The "Roles" section of docs/api.md, up to the next section.
    fn roles_section() -> &'static str {
        let (_, rest) = API_DOCS
            .split_once("\n## Roles\n")
            .expect("docs/api.md has a \"## Roles\" section");
        rest.split_once("\n## ")
            .map_or(rest, |(section, _)| section)
    }

    /// The cells of a Markdown table row, trimmed.
    fn cells(line: &str) -> Vec<&str> {
        line.trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split('|')
            .map(str::trim)
            .collect()
    }

    /// Whether a cell of the table grants the permission: "no" does not; "yes", "yes (…)" and
    /// "own … only" do (the qualifier is a row-level rule, enforced by the services' filters).
    fn grants(cell: &str) -> bool {
        match cell {
            "no" => false,
            "yes" => true,
            qualified if qualified.starts_with("yes (") && qualified.ends_with(')') => true,
            own if own.starts_with("own ") && own.ends_with(" only") => true,
            other => panic!("a cell of the roles table reads {other:?}: neither yes nor no"),
        }
    }

    #[test]
    fn the_roles_table_in_the_api_docs_agrees_with_the_permission_table_cell_by_cell() {
        let mut lines = roles_section()
            .lines()
            .filter(|l| l.trim_start().starts_with('|'));
        let header = cells(lines.next().expect("the roles table has a header"));
        assert_eq!(
            header[0], "permission",
            "the first column names the permission"
        );
        let roles: Vec<Role> = header[1..]
            .iter()
            .map(|name| {
                name.parse()
                    .unwrap_or_else(|e| panic!("column {name:?} is not a staff role: {e}"))
            })
            .collect();
        for role in [
            Role::Admin,
            Role::Practitioner,
            Role::Receptionist,
            Role::Nurse,
        ] {
            assert!(roles.contains(&role), "the table has no column for {role}");
        }
        let separator = cells(lines.next().expect("the header's separator row"));
        assert!(
            separator
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':')),
            "{separator:?}"
        );

        let mut documented = Vec::new();
        let mut disagreements = Vec::new();
        for line in lines {
            let row = cells(line);
            assert_eq!(row.len(), header.len(), "a row of another width: {line}");
            let label = row[0];
            let permission = permission_documented_as(label).unwrap_or_else(|| {
                panic!("the docs' row {label:?} stands for no permission of the table")
            });
            assert!(
                !documented.contains(&permission),
                "{permission} has two rows in the docs"
            );
            documented.push(permission);
            for (role, cell) in roles.iter().zip(&row[1..]) {
                if grants(cell) != role.allows(permission) {
                    disagreements.push(format!(
                        "{label:?} for {role}: the docs say {cell:?}, Role::allows says {}",
                        role.allows(permission)
                    ));
                }
            }
        }
        for permission in Permission::ALL {
            if !documented.contains(&permission) {
                disagreements.push(format!(
                    "{permission} has no row in the docs' roles table (expected {:?})",
                    documented_as(permission)
                ));
            }
        }
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }

    #[test]
    fn the_api_docs_name_exactly_what_the_system_role_holds() {
        // "It holds only "read appointments" and "confirm, …", and uses them for one thing".
        let section = roles_section();
        let (_, after) = section
            .split_once("It holds only")
            .expect("the docs say what the system role holds");
        let (held, _) = after
            .split_once("and uses them")
            .expect("the sentence goes on to say what it is for");
        let named: Vec<Permission> = held
            .split('"')
            .skip(1)
            .step_by(2)
            .map(|label| {
                permission_documented_as(label)
                    .unwrap_or_else(|| panic!("{label:?} is not a row of the roles table"))
            })
            .collect();
        let allowed: Vec<Permission> = Permission::ALL
            .into_iter()
            .filter(|p| Role::System.allows(*p))
            .collect();
        assert_eq!(named, allowed);
    }
}
