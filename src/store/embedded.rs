//! The embedded store: an exact (brute-force) cosine index kept in memory and persisted under
//! the data directory.
//!
//! Why exact search: the rubric set is hundreds to tens of thousands of vectors, where a scan of
//! contiguous f32 rows takes microseconds to a millisecond and is always right (Qdrant itself
//! scans segments below its indexing threshold). Each collection is stored as
//! `<dir>/<collection>/points.json` (ids, payloads, dimension) and `vectors.f32` (little-endian
//! rows, in the same order), written atomically on [`VectorStore::flush`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Filter, Hit, Payload, Point, StoreError, VectorStore};
use crate::embed::dot;

#[derive(Default)]
struct Collection {
    dim: usize,
    ids: Vec<u64>,
    payloads: Vec<Payload>,
    /// Row-major, `ids.len() * dim` floats.
    vectors: Vec<f32>,
    pos: HashMap<u64, usize>,
    dirty: bool,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    dim: usize,
    ids: Vec<u64>,
    payloads: Vec<Payload>,
}

impl Collection {
    fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    fn remove_where(&mut self, keep: impl Fn(&Payload) -> bool) {
        let before = self.ids.len();
        let mut ids = Vec::with_capacity(before);
        let mut payloads = Vec::with_capacity(before);
        let mut vectors = Vec::with_capacity(self.vectors.len());
        for i in 0..before {
            if keep(&self.payloads[i]) {
                ids.push(self.ids[i]);
                payloads.push(self.payloads[i].clone());
                vectors.extend_from_slice(self.row(i));
            }
        }
        if ids.len() != before {
            self.ids = ids;
            self.payloads = payloads;
            self.vectors = vectors;
            self.pos = self
                .ids
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i))
                .collect();
            self.dirty = true;
        }
    }
}

/// The in-process exact index. `dir = None` keeps everything in memory only.
pub struct EmbeddedStore {
    dir: Option<PathBuf>,
    collections: RwLock<BTreeMap<String, Collection>>,
}

impl EmbeddedStore {
    /// A store that is never written to disk (tests, one-off runs).
    pub fn in_memory() -> Self {
        EmbeddedStore {
            dir: None,
            collections: RwLock::new(BTreeMap::new()),
        }
    }

    /// Load the store under `dir` into memory, detached from it: changes are never written
    /// back (tests and benchmarks start many engines from one prebuilt index this way).
    pub fn load_detached(dir: &Path) -> Result<Self, StoreError> {
        let mut store = Self::open(dir)?;
        store.dir = None;
        Ok(store)
    }

    /// Open the store under `dir`, loading every collection found there. A missing `dir` is an
    /// empty store: nothing is created until the first flush writes, so a start that fails
    /// leaves nothing behind.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |path: &Path, e: std::io::Error| StoreError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut collections = BTreeMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries.collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if !path.is_dir() || !path.join("points.json").is_file() {
                continue;
            }
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            collections.insert(name, load_collection(&path)?);
        }
        Ok(EmbeddedStore {
            dir: Some(dir.to_path_buf()),
            collections: RwLock::new(collections),
        })
    }
}

fn load_collection(path: &Path) -> Result<Collection, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read(path.join("points.json")).map_err(|e| corrupt(e.to_string()))?;
    let stored: Stored =
        serde_json::from_slice(&text).map_err(|e| corrupt(format!("points.json: {e}")))?;
    let bytes = std::fs::read(path.join("vectors.f32")).map_err(|e| corrupt(e.to_string()))?;
    if stored.ids.len() != stored.payloads.len() || bytes.len() != stored.ids.len() * stored.dim * 4
    {
        return Err(corrupt(format!(
            "{} ids, {} payloads and {} vector bytes do not agree (dimension {})",
            stored.ids.len(),
            stored.payloads.len(),
            bytes.len(),
            stored.dim
        )));
    }
    let vectors: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let pos = stored
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    Ok(Collection {
        dim: stored.dim,
        ids: stored.ids,
        payloads: stored.payloads,
        vectors,
        pos,
        dirty: false,
    })
}

fn write_collection(path: &Path, c: &Collection) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(path).map_err(io)?;
    let stored = Stored {
        dim: c.dim,
        ids: c.ids.clone(),
        payloads: c.payloads.clone(),
    };
    let json = serde_json::to_vec(&stored).map_err(|e| io(std::io::Error::other(e)))?;
    let mut bytes = Vec::with_capacity(c.vectors.len() * 4);
    for x in &c.vectors {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    // Vectors first, then the payload file that names them: a crash in between leaves a size
    // mismatch that `open` reports, never a silently wrong index.
    for (name, data) in [("vectors.f32", &bytes), ("points.json", &json)] {
        let tmp = path.join(format!("{name}.tmp"));
        std::fs::write(&tmp, data).map_err(io)?;
        std::fs::rename(&tmp, path.join(name)).map_err(io)?;
    }
    Ok(())
}

impl VectorStore for EmbeddedStore {
    fn describe(&self) -> String {
        match &self.dir {
            Some(d) => format!("embedded exact index at {}", d.display()),
            None => "embedded exact index (in memory)".into(),
        }
    }

    fn ensure_collection<'a>(
        &'a self,
        name: &'a str,
        dim: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cols = self.collections.write().expect("store lock");
            let c = cols.entry(name.to_string()).or_insert_with(|| Collection {
                dim,
                dirty: true,
                ..Collection::default()
            });
            if c.dim != dim {
                if c.ids.is_empty() {
                    c.dim = dim;
                } else {
                    // A different embedding model: the old vectors are useless.
                    *c = Collection {
                        dim,
                        dirty: true,
                        ..Collection::default()
                    };
                }
            }
            Ok(())
        })
    }

    fn recreate_collection<'a>(
        &'a self,
        name: &'a str,
        dim: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cols = self.collections.write().expect("store lock");
            cols.insert(
                name.to_string(),
                Collection {
                    dim,
                    dirty: true,
                    ..Collection::default()
                },
            );
            Ok(())
        })
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        points: Vec<Point>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cols = self.collections.write().expect("store lock");
            let c = cols
                .get_mut(collection)
                .ok_or_else(|| StoreError::NoCollection(collection.into()))?;
            for p in points {
                if p.vector.len() != c.dim {
                    return Err(StoreError::Dimension {
                        collection: collection.into(),
                        want: c.dim,
                        got: p.vector.len(),
                    });
                }
                match c.pos.get(&p.id) {
                    Some(&i) => {
                        let dim = c.dim;
                        c.vectors[i * dim..(i + 1) * dim].copy_from_slice(&p.vector);
                        c.payloads[i] = p.payload;
                    }
                    None => {
                        c.pos.insert(p.id, c.ids.len());
                        c.ids.push(p.id);
                        c.vectors.extend_from_slice(&p.vector);
                        c.payloads.push(p.payload);
                    }
                }
            }
            c.dirty = true;
            Ok(())
        })
    }

    fn delete<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut cols = self.collections.write().expect("store lock");
            if let Some(c) = cols.get_mut(collection) {
                c.remove_where(|p| !filter.matches(p));
            }
            Ok(())
        })
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        vector: &'a [f32],
        filter: &'a Filter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Hit>, StoreError>> {
        Box::pin(async move {
            let cols = self.collections.read().expect("store lock");
            let c = cols
                .get(collection)
                .ok_or_else(|| StoreError::NoCollection(collection.into()))?;
            if vector.len() != c.dim {
                return Err(StoreError::Dimension {
                    collection: collection.into(),
                    want: c.dim,
                    got: vector.len(),
                });
            }
            let mut scored: Vec<(f32, usize)> = (0..c.ids.len())
                .filter(|&i| filter.matches(&c.payloads[i]))
                .map(|i| (dot(c.row(i), vector), i))
                .collect();
            let limit = limit.min(scored.len());
            if limit == 0 {
                return Ok(Vec::new());
            }
            // Partial selection, then sort only the winners; ties broken by id for determinism.
            let cmp = |a: &(f32, usize), b: &(f32, usize)| {
                b.0.total_cmp(&a.0).then(c.ids[a.1].cmp(&c.ids[b.1]))
            };
            if limit < scored.len() {
                scored.select_nth_unstable_by(limit - 1, cmp);
                scored.truncate(limit);
            }
            scored.sort_by(cmp);
            Ok(scored
                .into_iter()
                .map(|(score, i)| Hit {
                    id: c.ids[i],
                    score,
                    payload: c.payloads[i].clone(),
                })
                .collect())
        })
    }

    fn scroll<'a>(
        &'a self,
        collection: &'a str,
        filter: &'a Filter,
    ) -> BoxFuture<'a, Result<Vec<Point>, StoreError>> {
        Box::pin(async move {
            let cols = self.collections.read().expect("store lock");
            let Some(c) = cols.get(collection) else {
                return Ok(Vec::new());
            };
            let mut out: Vec<Point> = (0..c.ids.len())
                .filter(|&i| filter.matches(&c.payloads[i]))
                .map(|i| Point {
                    id: c.ids[i],
                    vector: c.row(i).to_vec(),
                    payload: c.payloads[i].clone(),
                })
                .collect();
            out.sort_by_key(|p| p.id);
            Ok(out)
        })
    }

    fn count<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let cols = self.collections.read().expect("store lock");
            Ok(cols.get(collection).map_or(0, |c| c.ids.len()))
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(dir) = &self.dir else {
                return Ok(());
            };
            let mut cols = self.collections.write().expect("store lock");
            for (name, c) in cols.iter_mut() {
                if c.dirty {
                    write_collection(&dir.join(name), c)?;
                    c.dirty = false;
                }
            }
            Ok(())
        })
    }
}
