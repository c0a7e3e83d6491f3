//! The coverage judge and the grading pipeline over the shipped rubrics: score bands per
//! answer quality, anti-gaming, determinism, evidence, ad hoc rubrics.

use grader::config::JudgeKind;
use grader::engine::{Engine, GradeError, GradeRequest, QuestionRef};
use grader::grade::{Flag, Grade, Verdict};

use crate::common::engine;

/// `answer` graded against a rubric derived from `reference` (see [`adhoc`]); it must grade.
async fn grade_adhoc(e: &Engine, question: &str, reference: &str, answer: &str) -> Grade {
    e.grade(&adhoc(question, reference, answer)).await.unwrap()
}

/// A request to grade `answer` against a rubric derived from `reference` (no alternatives, the
/// default judge).
fn adhoc(question: &str, reference: &str, answer: impl Into<String>) -> GradeRequest {
    GradeRequest {
        question: QuestionRef::AdHoc {
            question: question.into(),
            reference_answer: reference.into(),
            alternatives: Vec::new(),
        },
        answer: answer.into(),
        judge: None,
        samples: None,
    }
}

async fn grade(id: &str, answer: &str) -> Grade {
    engine()
        .await
        .grade(&GradeRequest {
            question: QuestionRef::Id(id.into()),
            answer: answer.into(),
            judge: Some(JudgeKind::Coverage),
            samples: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// (rubric, strong, partial, weak, off-topic)
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "core.copy",
        "copy.copy makes a shallow copy: a new outer list, but the nested lists inside are the very same objects, so appending to an inner list shows up in the original too. copy.deepcopy walks the structure recursively and copies every nested object, keeping a memo dict so shared references and cycles are copied once. I use a shallow copy for flat data or immutable items, and deepcopy when I need to change nested data without touching the original. Custom classes can control this with __copy__ and __deepcopy__.",
        "A shallow copy only copies the outer list, so the inner lists are still shared with the original. A deep copy copies everything.",
        "Copying makes another variable with the data, deep copy is the better one.",
        "Kubernetes schedules pods onto nodes based on resource requests and affinity rules.",
    ),
    (
        "concurrency.gil",
        "The GIL is a mutex in CPython that allows only one thread to execute Python bytecode at a time. It exists because CPython's memory management, reference counting in particular, is not thread-safe. The interpreter switches threads every few milliseconds (sys.setswitchinterval) and a thread releases the GIL while it waits on blocking I/O, and C extensions like NumPy release it during heavy computation. So threads work well for I/O-bound work but CPU-bound Python code does not run in parallel; for that you use multiprocessing or a native extension. Python 3.13 also has an experimental free-threaded build without the GIL.",
        "The GIL means only one thread runs Python code at a time, so threads don't speed up CPU-heavy code. For I/O they are still fine.",
        "The GIL is a lock Python uses for threads, I haven't really had issues with it.",
        "My favourite recipe is a slow-cooked tomato sauce with basil and garlic.",
    ),
    (
        "core.generators",
        "A generator is a function that contains yield; calling it returns a generator object, an iterator that produces values lazily, one per next() call. Each yield hands a value to the caller and suspends the function with its local state intact, and the next call resumes right after the yield. return ends the generator for good and raises StopIteration, whereas a normal function's return gives back one value once. Because values are produced on demand, generators use constant memory for huge or infinite sequences, for example reading a big file line by line. Generator expressions are the inline form, and yield from delegates to a sub-generator.",
        "Generators use yield to return values one at a time instead of building a whole list, so they save memory. return just ends the function.",
        "A generator generates things, yield is like return.",
        "TCP uses a three-way handshake with SYN, SYN-ACK and ACK before sending data.",
    ),
];

#[tokio::test]
async fn score_bands_follow_answer_quality() {
    for (id, strong, partial, weak, off) in CASES {
        let s = grade(id, strong).await.score;
        let p = grade(id, partial).await.score;
        let w = grade(id, weak).await.score;
        let o = grade(id, off).await.score;
        eprintln!("{id}: strong {s}, partial {p}, weak {w}, off-topic {o}");
        assert!(s >= 6.0, "{id}: strong answer scored {s}");
        assert!(s > p && p > w, "{id}: strong {s} > partial {p} > weak {w}");
        assert!(w >= o, "{id}: weak {w} >= off-topic {o}");
        assert!(o <= 1.5, "{id}: off-topic scored {o}");
    }
}

#[tokio::test]
async fn empty_and_restated_answers_score_near_zero() {
    let e = engine().await;
    for id in ["core.copy", "concurrency.gil", "core.generators"] {
        let q = e.catalog().get(id).unwrap().question.clone();
        for answer in [
            q.as_str(),
            "I don't know.",
            "It depends.",
            "Good question, I would have to look that up.",
        ] {
            let g = grade(id, answer).await;
            assert!(g.score <= 1.5, "{id}: {answer:?} scored {}", g.score);
        }
    }
}

/// A long answer that lists every keyword without explaining anything must not beat a
/// concise, correct one.
#[tokio::test]
async fn keyword_stuffing_does_not_beat_a_concise_correct_answer() {
    let stuffed = "Memory management: reference counting, refcount, sys.getrefcount, garbage collector, gc module, generational, generations, gen0, gen1, gen2, cycles, cyclic references, __del__, finalizers, weakref, pymalloc, arenas, pools, blocks, free lists, heap, stack, malloc, PyObject, ob_refcnt, gc.collect, thresholds, memory leaks, tracemalloc, objgraph, interning, small ints, memory pools. Also reference counting, generational GC, arenas, pymalloc, __del__, weakref, cycles, gc.collect, gc.disable, gc.freeze, arenas, pools.";
    let concise = "CPython frees most objects through reference counting: every object counts its references and is deallocated the moment the count drops to zero. Reference cycles never reach zero, so a cyclic garbage collector with three generations runs periodically to find and free unreachable cycles. __del__ runs when an object is finalised, but its timing is not guaranteed in cycles or at interpreter exit, so I use context managers for cleanup instead. Small objects come from pymalloc, which carves arenas into pools.";
    let s = grade("core.memory-management", stuffed).await.score;
    let c = grade("core.memory-management", concise).await.score;
    eprintln!("stuffed {s}, concise {c}");
    assert!(c > s, "concise {c} must beat stuffed {s}");
}

/// A terse list whose items each say something ("X for Y") is an answer: its keywords count.
/// The same keywords listed bare are a term list and earn nothing.
#[tokio::test]
async fn keywords_count_in_a_list_of_claims_but_not_in_a_term_list() {
    let claims = grade(
        "concurrency.choosing-model",
        "threading for I/O-bound calls, multiprocessing for CPU-bound math, asyncio for many sockets, pools for reuse.",
    )
    .await;
    let met = |g: &Grade, id: &str| {
        g.criteria
            .iter()
            .any(|c| c.id == id && c.verdict == Verdict::Met)
    };
    assert!(
        met(&claims, "threading") && met(&claims, "multiprocessing"),
        "{:?}",
        claims.criteria
    );
    assert!(claims.score >= 4.0, "{}", claims.score);
    let terms = grade(
        "concurrency.choosing-model",
        "threading, I/O-bound, multiprocessing, CPU-bound, asyncio, sockets, pools, reuse.",
    )
    .await;
    assert_eq!(terms.score, 0.0, "{:?}", terms.criteria);
}

/// A topical first sentence is the closest segment to every criterion, but it can state only
/// as many points as it has words for: a point it has no room for is taken from the sentence
/// that states it, not lost ("subclasses need their own __slots__" is the inheritance caveat
/// even though the opening sentence about __dict__ is nearer to it).
#[tokio::test]
async fn a_point_a_full_sentence_cannot_hold_comes_from_another_sentence() {
    let caveats = "The downside is you can't add new attributes, you need __weakref__ for weakrefs, and subclasses need their own __slots__ or they get a dict again.";
    let g = grade(
        "advanced.slots",
        &format!(
            "__slots__ lists the allowed attributes so instances don't get a __dict__. {caveats}"
        ),
    )
    .await;
    let verdict = |id: &str| g.criteria.iter().find(|c| c.id == id).expect(id);
    // The opening sentence is the nearest to all four points but has words for two; the
    // caveats come from the sentence that states them.
    for id in ["mechanism", "restrictions", "inheritance-caveats"] {
        assert_ne!(
            verdict(id).verdict,
            Verdict::Missed,
            "{id}: {:?}",
            g.criteria
        );
    }
    assert!(
        ["restrictions", "inheritance-caveats"]
            .iter()
            .any(|id| verdict(id).evidence == caveats),
        "{:?}",
        g.criteria
    );
    // Nothing in the answer says what slots save.
    assert_eq!(verdict("memory-speed").verdict, Verdict::Missed);
}

/// A sentence much closer to a misconception than to any point states it even in other words
/// ("You don't need a lock … the GIL makes increments atomic" for "The GIL already makes
/// count += 1 atomic, so no lock is needed"); a sentence that negates the misconception's
/// words ("Slots do not make objects immutable") is not charged with it, however close.
#[tokio::test]
async fn a_misconception_in_other_words_is_charged_and_its_denial_is_not() {
    let wrong = grade(
        "practice.thread-safe-counter",
        "You don't need a lock in Python because the GIL makes increments atomic; just use count += 1.",
    )
    .await;
    assert!(
        wrong.misconceptions.iter().any(|m| m.id == "gil-enough"),
        "{:?}",
        wrong.misconceptions
    );
    assert!(wrong.score <= 2.0, "{}: {:?}", wrong.score, wrong.criteria);
    let denial = grade(
        "advanced.slots",
        "__slots__ replaces the per-instance __dict__ with fixed slots, which saves memory. Slots do not make objects immutable - values can still be reassigned.",
    )
    .await;
    assert!(
        denial.misconceptions.is_empty(),
        "{:?}",
        denial.misconceptions
    );
}

/// A sentence charged as a misconception is evidence for no criterion: "lst[:] gives a
/// completely independent copy" does not also earn "slicing is a way to make a shallow copy".
#[tokio::test]
async fn a_misconception_is_evidence_for_nothing() {
    let wrong = "Slicing a list with lst[:] gives you a completely independent copy, including the nested lists.";
    let g = grade(
        "core.copy",
        &format!("A shallow copy shares the nested objects with the original. {wrong}"),
    )
    .await;
    assert!(
        g.misconceptions.iter().any(|m| m.id == "slice-is-deep"),
        "{:?}",
        g.misconceptions
    );
    for c in &g.criteria {
        assert!(c.evidence != wrong, "{} quotes the misconception", c.id);
    }
    let shallow = g.criteria.iter().find(|c| c.id == "ways-to-shallow-copy");
    assert_eq!(
        shallow.map(|c| c.verdict),
        Some(Verdict::Missed),
        "{:?}",
        g.criteria
    );
}

#[tokio::test]
async fn grades_are_deterministic_and_evidence_is_quoted_from_the_answer() {
    let (id, strong, ..) = CASES[0];
    let a = grade(id, strong).await;
    let b = grade(id, strong).await;
    let strip = |g: &Grade| Grade {
        latency_ms: 0,
        id: uuid::Uuid::nil(),
        ..g.clone()
    };
    assert_eq!(strip(&a), strip(&b), "same input, same grade");
    assert_ne!(a.id, b.id, "every grade has its own id");
    assert_eq!(a.judge.kind, JudgeKind::Coverage);
    let norm = grader::text::normalize_for_match(strong);
    for c in &a.criteria {
        if c.verdict != Verdict::Missed {
            assert!(
                !c.evidence.is_empty() && c.evidence_verified,
                "{}: verdict without evidence",
                c.id
            );
            assert!(
                norm.contains(&grader::text::normalize_for_match(&c.evidence)),
                "{}: evidence not from the answer",
                c.id
            );
        } else {
            assert!(c.evidence.is_empty());
        }
    }
    assert!(!a.flags.contains(&Flag::EvidenceUnverified));
    // Score = max × Σ w·v / Σ w − penalties, from the verdicts.
    assert!(
        (a.score - grader::grade::compute_score(a.max_score, &a.criteria, &a.misconceptions)).abs()
            < 1e-6
    );
    assert_eq!(
        a.rubric_version,
        engine().await.catalog().get(id).unwrap().version
    );
}

#[tokio::test]
async fn gaps_name_what_is_missing() {
    let (id, _, partial, ..) = CASES[0];
    let g = grade(id, partial).await;
    let missed: Vec<_> = g
        .criteria
        .iter()
        .filter(|c| c.verdict != Verdict::Met)
        .collect();
    assert!(!missed.is_empty());
    assert!(
        g.gaps.len() >= missed.len(),
        "a gap per unmet criterion: {:?}",
        g.gaps
    );
    assert!(g.gaps.iter().all(|x| x.starts_with("Missing: ")
        || x.starts_with("Only partly covered")
        || x.starts_with("Incorrect claim")));
    assert!(!g.feedback.is_empty());
}

#[test]
fn evidence_verification_downgrades_missing_quotes() {
    use grader::grade::{
        CriterionResult, JudgeInfo, Judgement, MisconceptionResult, Usage, verify_evidence,
    };
    let c = |id: &str, v: Verdict, e: &str| CriterionResult {
        id: id.into(),
        verdict: v,
        weight: 1.0,
        evidence: e.into(),
        evidence_verified: false,
        reason: String::new(),
        credit: None,
    };
    let mut j = Judgement {
        criteria: vec![
            c("a", Verdict::Met, "The  GIL is   released during I/O"),
            c("b", Verdict::Met, "“threads” don’t help"),
            c("c", Verdict::Met, "something never said"),
            c("d", Verdict::Partial, "nor this"),
            c("e", Verdict::Met, ""),
            c("f", Verdict::Met, "the GIL ... CPU-bound"),
        ],
        misconceptions: vec![MisconceptionResult {
            id: "m".into(),
            evidence: "not in the answer".into(),
            penalty: 2.0,
        }],
        gaps: vec![],
        feedback: String::new(),
        strength: vec![],
        judge: JudgeInfo {
            kind: JudgeKind::Llm,
            model: "x".into(),
            samples: 1,
            agreement: 1.0,
        },
        flags: vec![],
        usage: Usage::default(),
    };
    let answer = "the gil is released during I/O, so \"threads\" don't help CPU-bound work.";
    assert!(verify_evidence(answer, &mut j));
    let v: Vec<(Verdict, bool)> = j
        .criteria
        .iter()
        .map(|c| (c.verdict, c.evidence_verified))
        .collect();
    assert_eq!(
        v,
        vec![
            (Verdict::Met, true),
            (Verdict::Met, true),
            (Verdict::Partial, false),
            (Verdict::Missed, false),
            (Verdict::Partial, false),
            (Verdict::Met, true)
        ]
    );
    assert!(
        j.misconceptions.is_empty(),
        "an unquoted misconception is not charged"
    );
}

#[tokio::test]
async fn ad_hoc_rubrics_grade_questions_without_a_rubric_file() {
    let e = engine().await;
    let question = "What is a database index and when does it not help?";
    let reference = "A database index is a separate data structure, usually a B-tree, that maps column values to row locations so lookups avoid scanning the whole table. It speeds up reads on selective predicates, joins and ORDER BY. It costs extra storage and slows down inserts, updates and deletes because the index must be maintained. It does not help for low-selectivity columns, tiny tables, or queries that wrap the column in a function.";
    let req = |a: &str| adhoc(question, reference, a);
    let good = e.grade(&req("An index is a B-tree on a column that points at the rows, so the database can find matching rows without a full table scan. It makes writes slower since every insert or update must update the index too, and it is useless when the column has few distinct values or the table is tiny.")).await.unwrap();
    let weak = e
        .grade(&req("An index makes the database faster."))
        .await
        .unwrap();
    let off = e
        .grade(&req("Python generators yield values lazily."))
        .await
        .unwrap();
    assert!(good.rubric_id.starts_with("adhoc."));
    assert!(good.flags.contains(&Flag::AdHocRubric));
    assert_eq!(good.criteria.len(), 4, "one criterion per key statement");
    assert!(
        good.score > weak.score && weak.score >= off.score,
        "{} > {} >= {}",
        good.score,
        weak.score,
        off.score
    );
    assert!(good.score >= 7.0, "{}", good.score);
    // One vague sentence cannot be the evidence for all four statements at once.
    assert!(
        weak.score <= 3.0,
        "a one-line vague answer scored {}",
        weak.score
    );
    let err = e.grade(&adhoc("Q?", "... ?", "x")).await.unwrap_err();
    assert!(matches!(err, GradeError::EmptyReference));
}

/// A reference of a few words is one criterion (it was "no statements to grade against"), and
/// alternative references count as its phrasings.
#[tokio::test]
async fn a_one_phrase_reference_is_one_criterion() {
    let e = engine().await;
    let req = |a: &str, alternatives: Vec<String>| GradeRequest {
        question: QuestionRef::AdHoc {
            question: "How does a for loop get the items of a list in Python?".into(),
            reference_answer: "Through iteration.".into(),
            alternatives,
        },
        answer: a.into(),
        judge: None,
        samples: None,
    };
    let correct = "Through iteration: the for loop calls iter() on the list, then next() until StopIteration.";
    let right = e.grade(&req(correct, Vec::new())).await.unwrap();
    assert_eq!(right.criteria.len(), 1);
    let wrong = e
        .grade(&req(
            "Python copies the list into a new array first.",
            Vec::new(),
        ))
        .await
        .unwrap();
    assert!(
        right.score > wrong.score,
        "{} vs {}",
        right.score,
        wrong.score
    );
    let with_alt = e
        .grade(&req(
            correct,
            vec!["By calling iter() on it and next() until StopIteration.".into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        with_alt.criteria.len(),
        1,
        "an alternative is a phrasing, not a criterion"
    );
    assert_ne!(
        with_alt.rubric_id, right.rubric_id,
        "alternatives are part of the rubric's key"
    );
}

/// A reference of a sentence or two is also read whole, as human graders read it: an answer
/// that states it in fewer or differently split sentences gets full credit, and the quote is
/// the answer's own. Reading whole does not outvote polarity: a short statement negated, or
/// one sentence saying the opposite, still loses.
#[tokio::test]
async fn a_short_reference_is_read_whole_and_negations_still_lose() {
    let e = engine().await;
    let grade = |q, r, a| grade_adhoc(&e, q, r, a);
    let q = "What happens to the volume of the sound if you pluck a rubber band harder?";
    let r = "The volume increases. The sound is louder.";
    let right = grade(q, r, "It makes a louder noise.").await;
    assert_eq!(right.criteria.len(), 2);
    assert_eq!(right.score, 10.0, "{:?}", right.criteria);
    assert!(
        right
            .criteria
            .iter()
            .any(|c| c.reason.contains("states the reference as a whole")),
        "{:?}",
        right.criteria
    );
    assert!(
        right
            .criteria
            .iter()
            .all(|c| c.evidence == "It makes a louder noise."),
        "the evidence is the answer's sentence: {:?}",
        right.criteria
    );
    let negated = grade(q, r, "The sound is not louder.").await;
    assert_eq!(negated.score, 0.0, "{:?}", negated.criteria);
    assert!(
        negated
            .misconceptions
            .iter()
            .any(|m| m.id.starts_with("contradicts:")),
        "{:?}",
        negated.misconceptions
    );
    let q = "Which solution(s) is saturated? What is the evidence of saturation?";
    let r = "Mixtures 4 and 5 are saturated. There is material on the bottom of 4 and 5.";
    let terse = grade(q, r, "4 and 5. There is material on the bottom.").await;
    assert!(terse.score >= 7.5, "{:?}", terse.criteria);
    let half_false = grade(
        q,
        r,
        "Mixtures 1 and 2 are saturated. There is no material on the bottom.",
    )
    .await;
    assert!(
        half_false.score <= 2.5,
        "a contradiction is charged even when the rest reads well: {} {:?}",
        half_false.score,
        half_false.criteria
    );
}

/// The pair reader (SemEval's science questions) reads an on-topic wrong answer to a Python
/// question as half correct; it may lift a whole reading only a little above what the vectors
/// see, so such answers stay near zero while a paraphrase of the reference is met.
#[tokio::test]
async fn the_pair_reader_cannot_lift_an_on_topic_wrong_answer() {
    let e = engine().await;
    let grade = |q, r, a| grade_adhoc(&e, q, r, a);
    let q = "Why does a shallow copy of a nested list share the inner lists?";
    let r =
        "A shallow copy creates a new outer list but copies only references to the inner lists.";
    let right = grade(
        q,
        r,
        "copy.copy makes a new outer list whose elements are the same inner list objects, so both lists point at the same inner lists.",
    )
    .await;
    assert_eq!(right.score, 10.0, "{:?}", right.criteria);
    let wrong = grade(q, r, "Because Python deep copies everything by default.").await;
    assert!(wrong.score <= 2.0, "{} {:?}", wrong.score, wrong.criteria);
    let q = "Why should you not use a mutable default argument?";
    let r = "The default is evaluated once when the function is defined, so the same list is shared across calls.";
    let right = grade(
        q,
        r,
        "The default list is created only once at def time, so every call mutates the same shared list.",
    )
    .await;
    assert_eq!(right.score, 10.0, "{:?}", right.criteria);
    for a in [
        "Because Python does not allow lists as default values.",
        "It is slower, since the list is rebuilt on every call.",
    ] {
        let wrong = grade(q, r, a).await;
        assert!(
            wrong.score <= 2.0,
            "{a}: {} {:?}",
            wrong.score,
            wrong.criteria
        );
    }
}

/// A short reference reads a terse answer whole: a one-word answer that is the reference's
/// point earns it, a wrong one, a list of candidates or a repeat of the question earns nothing.
#[tokio::test]
async fn a_terse_answer_is_read_whole_against_a_short_reference() {
    let e = engine().await;
    let grade = |a| {
        grade_adhoc(
            &e,
            "Jen was talking on the phone with her Uncle Bill who lives in Canada. When she asked him how the weather was, he said it was nice and warm, about 28 degrees. What unit is Uncle Bill using to report the temperature?",
            "Bill must have been using degrees Celsius if 28 is a warm temperature.",
            a,
        )
    };
    let right = grade("Celsius.").await;
    assert!(right.score >= 7.0, "{} {:?}", right.score, right.criteria);
    assert!(
        right.criteria[0].evidence.contains("Celsius"),
        "{:?}",
        right.criteria
    );
    for wrong in [
        "Fahrenheit.",
        "Kelvin.",
        "Celsius, Fahrenheit, Kelvin.",
        "Canada.",
    ] {
        let g = grade(wrong).await;
        assert!(g.score <= 2.0, "{wrong}: {} {:?}", g.score, g.criteria);
    }
    let restated = grade_adhoc(
        &e,
        "What is the difference between a shallow copy and a deep copy in Python?",
        "A deep copy also copies nested objects; a shallow copy shares them.",
        "Deep copy.",
    )
    .await;
    assert!(
        restated.score <= 2.0,
        "{} {:?}",
        restated.score,
        restated.criteria
    );
}

/// An answer in another language is not graded by the local judge: a clear error, never a
/// score of 0 or 9 by accident. English with code, or a short foreign phrase, is graded.
#[tokio::test]
async fn answers_in_another_language_are_refused_not_scored() {
    let e = engine().await;
    let grade = |a: &str| {
        let req = GradeRequest {
            question: QuestionRef::Id("core.copy".into()),
            answer: a.into(),
            judge: None,
            samples: None,
        };
        let e = e.clone();
        async move { e.grade(&req).await }
    };
    for (answer, language) in [
        (
            "Eine flache Kopie erstellt einen neuen äußeren Container, aber die inneren Objekte werden geteilt. Eine tiefe Kopie kopiert alles rekursiv.",
            "German",
        ),
        (
            "Una copia superficial crea un nuevo contenedor, pero los objetos internos son compartidos. Una copia profunda copia todo de forma recursiva.",
            "Spanish",
        ),
    ] {
        let err = grade(answer).await.unwrap_err();
        assert!(
            matches!(&err, GradeError::LanguageUnsupported { language: l, .. } if l == language),
            "{err}"
        );
        assert!(err.is_input_error());
        assert!(err.to_string().contains("judge = \"llm\""), "{err}");
    }
    let english = grade("A shallow copy shares the nested objects; copy.deepcopy copies them recursively. Déjà vu aside, b = a copies nothing.").await;
    assert!(english.is_ok(), "{english:?}");
}

#[test]
fn ad_hoc_keywords_are_each_statements_distinctive_terms() {
    use grader::text::{is_stopword, key_terms, stem, words};
    for w in ["a", "about", "down", "your", "which"] {
        assert!(
            is_stopword(w),
            "{w} (the list must stay sorted for binary search)"
        );
    }
    assert!(!is_stopword("index"));
    assert_eq!(stem("maintained"), "maintain");
    assert_eq!(stem("indexes"), "index");
    assert_eq!(stem("inserts"), "insert");
    assert_eq!(stem("tree"), "tree", "short words keep their ending");
    let statements = vec![
        "A database index maps column values to row locations.".to_string(),
        "Indexes slow down inserts because they must be maintained.".to_string(),
        "They do not help on tiny tables or low-selectivity columns.".to_string(),
    ];
    let question = words("What is a database index?").collect();
    let terms = key_terms(&statements, &question, 3);
    assert_eq!(terms.len(), 3);
    // The question's own words (in any inflection) are never keywords: every on-topic
    // answer repeats them.
    for t in terms.iter().flatten() {
        assert!(
            !t.starts_with("index") && !t.starts_with("database"),
            "{terms:?}"
        );
        assert!(t.ends_with('*'), "keywords are prefixes: {t}");
    }
    assert_eq!(terms[1], ["maintain*", "insert*", "slow*"]);
    // A word two statements share ("column") ranks after words only one statement has.
    assert!(!terms[0][..2].contains(&"column*".to_string()), "{terms:?}");
}

#[tokio::test]
async fn grading_by_question_text_and_errors() {
    let e = engine().await;
    let g = e
        .grade(&GradeRequest {
            question: QuestionRef::Text(
                "Can you explain what the GIL is and why it matters for threads?".into(),
            ),
            answer: CASES[1].2.into(),
            judge: None,
            samples: None,
        })
        .await
        .unwrap();
    assert_eq!(g.rubric_id, "concurrency.gil");
    let err = e
        .grade(&GradeRequest {
            question: QuestionRef::Text("What's the best way to cook risotto?".into()),
            answer: "Stir it.".into(),
            judge: None,
            samples: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GradeError::Unmatched { candidates, .. } if !candidates.is_empty()),
        "{err}"
    );
    let err = e
        .grade(&GradeRequest {
            question: QuestionRef::Id("core.copies".into()),
            answer: "x".into(),
            judge: None,
            samples: None,
        })
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("core.copy"),
        "suggests the right id: {err}"
    );
    let err = e
        .grade(&GradeRequest {
            question: QuestionRef::Id("core.copy".into()),
            answer: "  \n ".into(),
            judge: None,
            samples: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, GradeError::EmptyAnswer));
}

/// The real embedder, counting the calls that embed a given text.
struct Counting {
    inner: grader::embed::LocalEmbedder,
    watch: String,
    calls: std::sync::atomic::AtomicUsize,
}

impl grader::embed::Embedder for Counting {
    fn dim(&self) -> usize {
        grader::embed::Embedder::dim(&self.inner)
    }
    fn model_id(&self) -> &str {
        grader::embed::Embedder::model_id(&self.inner)
    }
    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, grader::embed::EmbedError>> {
        if texts.iter().any(|t| t == &self.watch) {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        grader::embed::Embedder::embed(&self.inner, texts)
    }
}

/// Concurrent grades against one new reference answer build its rubric once (single flight),
/// and later grades reuse it; every grade gets the same rubric.
#[tokio::test]
async fn an_ad_hoc_rubric_is_built_once_under_concurrency() {
    use crate::common;
    let question = "How does a B-tree index speed up range queries in a relational database?";
    let counting = std::sync::Arc::new(Counting {
        inner: common::embedder(),
        watch: question.to_string(),
        calls: Default::default(),
    });
    let engine = std::sync::Arc::new(
        grader::engine::Engine::with_parts(
            common::settings(),
            common::catalog(common::Rubrics::Fixture),
            counting.clone(),
            std::sync::Arc::new(grader::store::EmbeddedStore::in_memory()),
            common::calibration(),
            &|_, _| {},
        )
        .await
        .expect("engine"),
    );
    let request = |answer: String| GradeRequest {
        judge: Some(JudgeKind::Coverage),
        ..adhoc(
            question,
            "A B-tree keeps keys sorted in balanced pages. A range query descends once to the first key and then scans the leaves in order.",
            answer,
        )
    };
    let grades = futures::future::join_all((0..16).map(|i| {
        let engine = engine.clone();
        let answer = format!("The keys are sorted, so the scan walks the leaves in order ({i}).");
        async move { engine.grade(&request(answer)).await.expect("grade") }
    }))
    .await;
    assert_eq!(
        counting.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the reference was embedded more than once"
    );
    let ids: std::collections::HashSet<&str> =
        grades.iter().map(|g| g.rubric_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    engine
        .grade(&request("A later answer about sorted leaves.".into()))
        .await
        .expect("grade");
    assert_eq!(counting.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A partial verdict earns a quarter to three quarters of its criterion by how close its
/// evidence came to met; the score follows the credits, and met and missed keep 1 and 0.
#[tokio::test]
async fn partial_credit_follows_how_close_the_evidence_came() {
    let e = engine().await;
    let grade = |a: &'static str| {
        let req = adhoc(
            "What is the difference between a process and a thread?",
            "Threads share the memory of their process, while processes each have their own separate memory.",
            a,
        );
        let e = e.clone();
        async move { e.grade(&req).await.unwrap() }
    };
    let full = grade(
        "Threads share the memory of their process, while processes each have their own memory.",
    )
    .await;
    assert_eq!(
        full.criteria[0].verdict,
        Verdict::Met,
        "{:?}",
        full.criteria
    );
    assert_eq!(full.criteria[0].credit, Some(1.0));
    assert_eq!(full.score, 10.0);
    let mut partial = Vec::new();
    for a in [
        "Processes have their own memory.",
        "Threads are lighter than processes.",
    ] {
        let g = grade(a).await;
        let c = &g.criteria[0];
        assert_eq!(c.verdict, Verdict::Partial, "{a}: {:?}", g.criteria);
        let credit = c.credit.expect("the coverage judge gives a credit");
        assert!((0.25..=0.75).contains(&credit), "{a}: credit {credit}");
        assert_eq!(
            g.score,
            (credit * 100.0).round() / 10.0,
            "{a}: the score is 10 × the credit"
        );
        partial.push(credit);
    }
    assert_ne!(
        partial[0], partial[1],
        "two partial answers with different evidence earn different credit"
    );
    let missed = grade("Processes run programs.").await;
    assert_eq!(missed.criteria[0].verdict, Verdict::Missed);
    assert_eq!(missed.criteria[0].credit, Some(0.0));
    assert_eq!(missed.score, 0.0);
}
