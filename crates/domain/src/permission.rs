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
    /// Register and change practitioners.
    WritePractitioners,
    /// Set schedules and time off (practitioners: only their own).
    WriteSchedules,
    /// Read appointments (practitioners: only their own).
    ReadAppointments,
    /// Book, reschedule and cancel appointments.
    BookAppointments,
    /// Move appointments through check-in, start and completion.
    RunAppointments,
    /// Book outside availability or in the past.
    Overbook,
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
    pub const ALL: [Permission; 17] = [
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
    }
}
