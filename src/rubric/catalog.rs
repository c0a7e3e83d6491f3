//! The catalog: every rubric of a folder by id, with the file each came from; duplicate ids
//! and every bad file are reported together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Rubric, RubricError, RubricErrors, RubricKind, content_hash};

/// All rubrics, by id, with the file each came from.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    rubrics: BTreeMap<String, std::sync::Arc<Rubric>>,
    files: BTreeMap<String, PathBuf>,
}

impl Catalog {
    /// The configured set: the one built into the binary when `setting` (`rubrics_dir`) is
    /// empty, else every rubric under that folder (relative to `base`).
    pub fn open(setting: &Path, base: &Path) -> Result<Catalog, RubricErrors> {
        if setting.as_os_str().is_empty() {
            Self::shipped()
        } else {
            Self::load_dir(&crate::config::Settings::resolve(base, setting))
        }
    }

    /// The rubric set built into the binary (`rubrics/` when it was built); messages name its
    /// files `rubrics/<topic>/<slug>.toml`.
    pub fn shipped() -> Result<Catalog, RubricErrors> {
        Self::from_parsed(crate::assets::RUBRICS.iter().map(|(path, text)| {
            let file = Path::new("rubrics").join(path);
            let parsed = Rubric::parse(&file, text);
            (file, parsed)
        }))
    }

    /// Load every `*.toml` under `dir` (recursively). Collects every error before failing.
    pub fn load_dir(dir: &Path) -> Result<Catalog, RubricErrors> {
        let mut files = Vec::new();
        collect_toml(dir, &mut files).map_err(|e| {
            RubricErrors(vec![RubricError::Io {
                file: dir.to_path_buf(),
                message: format!("{e} (set rubrics_dir or --dir to the rubric folder)"),
            }])
        })?;
        files.sort();
        if files.is_empty() {
            return Err(RubricErrors(vec![RubricError::Empty {
                dir: dir.to_path_buf(),
            }]));
        }
        Self::from_parsed(files.into_iter().map(|file| {
            let parsed = Rubric::load(&file);
            (file, parsed)
        }))
    }

    /// A catalog of parsed files, or every error (bad files and duplicate ids) at once.
    fn from_parsed(
        parsed: impl IntoIterator<Item = (PathBuf, Result<Rubric, Vec<RubricError>>)>,
    ) -> Result<Catalog, RubricErrors> {
        let mut catalog = Catalog::default();
        let mut errors = Vec::new();
        for (file, parsed) in parsed {
            match parsed {
                Ok(r) => {
                    if let Err(e) = catalog.insert(r, file) {
                        errors.push(e);
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(RubricErrors(errors))
        }
    }

    /// Add a rubric; a duplicate id is an error naming both files.
    pub fn insert(&mut self, rubric: Rubric, file: PathBuf) -> Result<(), RubricError> {
        if let Some(first) = self.files.get(&rubric.id) {
            return Err(RubricError::Duplicate {
                id: rubric.id.clone(),
                first: first.clone(),
                second: file,
            });
        }
        self.files.insert(rubric.id.clone(), file);
        self.rubrics
            .insert(rubric.id.clone(), std::sync::Arc::new(rubric));
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Rubric> {
        self.rubrics.get(id).map(|r| &**r)
    }

    /// A shared handle to a rubric (cheap to clone into a request).
    pub fn get_shared(&self, id: &str) -> Option<std::sync::Arc<Rubric>> {
        self.rubrics.get(id).cloned()
    }

    pub fn file_of(&self, id: &str) -> Option<&Path> {
        self.files.get(id).map(PathBuf::as_path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Rubric> {
        self.rubrics.values().map(|r| &**r)
    }

    pub fn len(&self) -> usize {
        self.rubrics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rubrics.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rubrics.keys().map(String::as_str)
    }

    /// A hash over every rubric version: changes whenever any rubric does.
    pub fn version(&self) -> String {
        let joined: String = self
            .rubrics
            .values()
            .map(|r| format!("{}={};", r.id, r.version))
            .collect();
        content_hash(&joined)
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_toml(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// One line of `grader rubrics list --json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RubricSummary {
    pub id: String,
    pub topic: String,
    pub kind: RubricKind,
    pub question: String,
    pub criteria: usize,
    pub misconceptions: usize,
    pub exemplars: usize,
    pub aliases: usize,
    pub version: String,
}

impl From<&Rubric> for RubricSummary {
    fn from(r: &Rubric) -> Self {
        RubricSummary {
            id: r.id.clone(),
            topic: r.topic.clone(),
            kind: r.kind,
            question: r.question.clone(),
            criteria: r.criteria.len(),
            misconceptions: r.misconceptions.len(),
            exemplars: r.exemplars.len(),
            aliases: r.aliases.len(),
            version: r.version.clone(),
        }
    }
}
