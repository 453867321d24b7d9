//! An employee, as the directory lists them.

use serde::{Deserialize, Serialize};

/// One employee, as the directory lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    /// The employee ID as the directory writes it.
    pub id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Work e-mail address.
    pub email: String,
    /// Department or service.
    pub department: String,
}

impl Employee {
    /// "First Last".
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}
