//! The employee directory: who an employee ID belongs to.
//!
//! HR exports it as CSV with a header row and the columns `id`, `first_name`, `last_name`,
//! `email`, `department` (in any order; other columns are ignored). IDs are compared
//! without regard to case, spaces or dashes, since a badge read by OCR and a spreadsheet
//! rarely agree on those.

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

use crate::domain::Employee;

/// What loading a directory can fail with.
#[derive(Debug, Error)]
pub enum DirectoryError {
    /// The file could not be read.
    #[error("employee directory {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A row is malformed.
    #[error("employee directory {path}, line {line}: {message}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Two rows share an ID.
    #[error("employee directory {path}: employee ID {id} appears twice")]
    Duplicate {
        /// The file.
        path: String,
        /// The repeated ID.
        id: String,
    },
}

/// Employees by ID.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    by_id: HashMap<String, Employee>,
}

impl Directory {
    /// Reads a CSV directory file.
    pub fn load(path: &Path) -> Result<Directory, DirectoryError> {
        let shown = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|source| DirectoryError::Io { path: shown.clone(), source })?;
        Directory::from_csv(&bytes, &shown)
    }

    /// Parses CSV text; `origin` names it in errors.
    pub fn from_csv(csv_text: &[u8], origin: &str) -> Result<Directory, DirectoryError> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(csv_text);
        let mut by_id = HashMap::new();
        for row in reader.deserialize::<Employee>() {
            let employee = row.map_err(|e| DirectoryError::Row {
                path: origin.to_owned(),
                line: e.position().map_or(0, |p| p.line()),
                message: e.to_string(),
            })?;
            let key = normalize_id(&employee.id);
            if key.is_empty() {
                return Err(DirectoryError::Row {
                    path: origin.to_owned(),
                    line: reader.position().line(),
                    message: "empty employee ID".into(),
                });
            }
            if by_id.contains_key(&key) {
                return Err(DirectoryError::Duplicate { path: origin.to_owned(), id: employee.id });
            }
            by_id.insert(key, employee);
        }
        Ok(Directory { by_id })
    }

    /// The employee with this ID, compared without case, spaces or dashes.
    pub fn get(&self, id: &str) -> Option<&Employee> {
        self.by_id.get(&normalize_id(id))
    }

    /// Number of employees.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when the directory lists nobody.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// The comparison key of an ID: alphanumerics only, upper-cased.
pub fn normalize_id(id: &str) -> String {
    id.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_uppercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "id,first_name,last_name,email,department\n\
                       712056,Élodie,Garçon,elodie.garcon@example.com,Finance\n\
                       21957-B, Loïc ,Martin,loic.martin@example.com,IT\n";

    #[test]
    fn ids_match_whatever_their_case_spaces_or_dashes() {
        let dir = Directory::from_csv(CSV.as_bytes(), "test").unwrap();
        assert_eq!(dir.len(), 2);
        assert_eq!(dir.get("712056").unwrap().full_name(), "Élodie Garçon");
        let loic = dir.get("21957 b").unwrap();
        assert_eq!((loic.first_name.as_str(), loic.department.as_str()), ("Loïc", "IT"));
        assert!(dir.get("999").is_none());
    }

    #[test]
    fn a_duplicate_id_is_refused_with_its_value() {
        let csv = format!("{CSV}21957B,Other,Person,o@example.com,HR\n");
        let err = Directory::from_csv(csv.as_bytes(), "dir.csv").unwrap_err();
        assert!(err.to_string().contains("21957B appears twice"), "{err}");
    }

    #[test]
    fn a_short_row_names_its_line() {
        let csv = "id,first_name,last_name,email,department\n1,A,B,a@example.com,X\n2,C\n";
        let err = Directory::from_csv(csv.as_bytes(), "dir.csv").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
