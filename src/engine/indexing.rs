//! Indexing after start: [`Engine::start`](super::Engine) deletes stale points and loads the
//! rubrics already indexed; [`Engine::index`] embeds the rest while the engine serves, and each
//! rubric can be graded by id as soon as all its points are in. Until then a request that needs
//! it (its id, or matching a question by text, which needs every question) gets
//! [`GradeError::Indexing`]: a 503 with `Retry-After` that says how far indexing has got.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::index::{IndexPlan, IndexReport, Indexed, Knowledge, Progress, run_index};
use crate::judge::ResolvedRubric;

use super::{Engine, GradeError, OpenError};

/// Indexing left to do after start, and how far it has got.
#[derive(Debug)]
pub(super) struct IndexState {
    /// Taken by the one [`Engine::index`] call that runs it.
    plan: Mutex<Option<IndexPlan>>,
    done: AtomicUsize,
    total: AtomicUsize,
    complete: AtomicBool,
    report: Mutex<IndexReport>,
}

impl IndexState {
    pub(super) fn new(plan: IndexPlan) -> Self {
        let total = plan.total();
        let nothing = plan.pending().next().is_none();
        IndexState {
            complete: AtomicBool::new(nothing),
            total: AtomicUsize::new(total),
            done: AtomicUsize::new(0),
            plan: Mutex::new(Some(plan)),
            report: Mutex::new(IndexReport::default()),
        }
    }

    pub(super) fn report(&self) -> IndexReport {
        self.report.lock().expect("index report").clone()
    }
}

/// How far indexing after start has got: texts embedded and to embed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexProgress {
    pub done: usize,
    pub total: usize,
}

impl std::fmt::Display for IndexProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "indexing {}/{}", self.done, self.total)
    }
}

impl Engine {
    /// Embed and write the rubrics [`Engine::start`] found changed or new, calling `progress`
    /// with texts done and to do. Each rubric is graded by id as soon as its points are in.
    /// Runs once: a second call (or one on an engine with nothing to index) returns at once.
    pub async fn index(&self, progress: Progress<'_>) -> Result<(), OpenError> {
        let Some(plan) = self.index.plan.lock().expect("index plan").take() else {
            return Ok(());
        };
        let counted = |done: usize, total: usize| {
            self.index.total.store(total, Ordering::Relaxed);
            self.index.done.store(done, Ordering::Relaxed);
            progress(done, total);
        };
        let indexed = |w: Indexed<'_>| self.add_indexed(w);
        // Outside any request's ticket, the fair embedder passes these large calls straight to
        // the model; grades admitted meanwhile share its workers.
        let report = run_index(
            plan,
            &self.catalog,
            self.store.as_ref(),
            self.embedder.as_ref(),
            &self.collections,
            &counted,
            &indexed,
        )
        .await?;
        *self.index.report.lock().expect("index report") = report;
        self.index.complete.store(true, Ordering::Release);
        Ok(())
    }

    /// How far indexing after start has got, or `None` once every rubric is indexed.
    pub fn indexing(&self) -> Option<IndexProgress> {
        if self.index.complete.load(Ordering::Acquire) {
            return None;
        }
        Some(IndexProgress {
            done: self.index.done.load(Ordering::Relaxed),
            total: self.index.total.load(Ordering::Relaxed),
        })
    }

    /// Fail with [`GradeError::Indexing`] while indexing after start, for work that needs the
    /// whole index (`what` says which).
    pub(super) fn require_index(&self, what: &str) -> Result<(), GradeError> {
        match self.indexing() {
            Some(progress) => Err(GradeError::Indexing {
                what: what.to_string(),
                progress,
            }),
            None => Ok(()),
        }
    }

    /// A rubric's points are all in: it can be graded by id from now on.
    fn add_indexed(&self, w: Indexed<'_>) {
        let Some(rubric) = self.catalog.get_shared(w.rubric_id) else {
            return;
        };
        let mut knowledge = Knowledge::from_points(&self.catalog, w.criteria);
        let vectors = knowledge.rubrics.remove(&rubric.id);
        self.resolved.write().expect("resolved rubrics").insert(
            rubric.id.clone(),
            ResolvedRubric::catalog(rubric, vectors, w.question),
        );
    }
}
