//! Fingerprint: an error record in, a stable error-type id out.
//!
//! Same bug → same id, on any instance, after any restart. The id is a hash
//! of a documented, versioned canonical form (see `docs/fingerprint.md`):
//!
//! ```text
//! faultline.fp/v1 \x1f service \x1f exception class \x1f frame|frame|… \x1f template
//! ```
//!
//! where `template` is the masked message ([`mask`]) generalised by the
//! learned stage ([`learn`]), and class and frames come from the stack trace
//! ([`stack`]). Changing anything in that form changes every id, so it is
//! versioned; the state records the version and the pattern digest that
//! produced each fingerprint.

pub mod cef;
pub mod declared;
pub mod delimited;
pub mod keyed;
pub mod layout;
pub mod learn;
pub mod mask;
pub mod message_keys;
pub mod object;
pub mod patterns;
pub mod rows;
pub mod scan;
pub mod stack;

use std::fmt;
use std::hash::Hasher;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::FingerprintConfig;
use crate::keys;
use crate::record::Record;

pub use learn::Learner;
pub use mask::{Fired, Masker, VAR};
pub use patterns::{GroupAction, PatternError, PatternSet};

/// Version tag of the canonical form; part of every hash.
pub const CANONICAL_VERSION: &str = "faultline.fp/v1";

/// A stable error-type id: 64 bits, written as 16 lowercase hex digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Fingerprint, String> {
        if s.len() != 16 {
            return Err(format!("`{s}` is not a fingerprint (16 hex digits)"));
        }
        u64::from_str_radix(s, 16)
            .map(Fingerprint)
            .map_err(|_| format!("`{s}` is not a fingerprint (16 hex digits)"))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The parts of an error type's identity other than its template.
#[derive(Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Context {
    pub service: String,
    pub exception: String,
    pub frames: Vec<String>,
}

impl Clone for Context {
    fn clone(&self) -> Context {
        Context {
            service: self.service.clone(),
            exception: self.exception.clone(),
            frames: self.frames.clone(),
        }
    }

    /// Reuses the buffers (the derived one would not): the hot path copies
    /// a context into a reused [`Typed`] for every error.
    fn clone_from(&mut self, source: &Context) {
        self.service.clone_from(&source.service);
        self.exception.clone_from(&source.exception);
        self.frames.clone_from(&source.frames);
    }
}

impl Context {
    /// Hash of the context alone: templates generalise only within one.
    pub fn key(&self) -> u64 {
        hash_concat(|b| self.write(b))
    }

    fn write(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(CANONICAL_VERSION.as_bytes());
        b.push(0x1f);
        b.extend_from_slice(self.service.as_bytes());
        b.push(0x1f);
        b.extend_from_slice(self.exception.as_bytes());
        b.push(0x1f);
        for (i, f) in self.frames.iter().enumerate() {
            if i > 0 {
                b.push(b'|');
            }
            b.extend_from_slice(f.as_bytes());
        }
        b.push(0x1f);
    }

    /// The fingerprint of `template` in this context (the canonical form).
    pub fn fingerprint(&self, template: &str) -> Fingerprint {
        Fingerprint(hash_concat(|b| {
            self.write(b);
            b.extend_from_slice(template.as_bytes());
        }))
    }
}

/// Hasher for keys that already are well-mixed hashes (xxh3 values:
/// fingerprints, the learner's keys). SipHash on them was a few percent of
/// the fingerprint stage for nothing.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; this keeps any other use correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by a hash value, see [`Prehashed`].
pub type PrehashedMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Prehashed>>;

/// xxh3 of the bytes `fill` writes. The same value as feeding them to a
/// streaming `Xxh3` piece by piece (xxh3 hashes a byte string, however it
/// arrives), but one-shot hashing of a short buffer costs a fraction of
/// setting up the streaming state — and this runs several times for every
/// error record. The buffer is per thread and reused.
pub(crate) fn hash_concat(fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|b| {
        b.clear();
        fill(b);
        let h = xxh3_64(b);
        if b.capacity() > 1 << 16 {
            *b = Vec::new();
        }
        h
    })
}

/// What the stateless part of fingerprinting makes of a record.
///
/// A struct rather than an enum of owned parts so that one value can be
/// filled again and again ([`Fingerprinter::identify_into`]): the stream
/// identifies every error line, and allocating a template and a context per
/// line was a sixth of the fingerprinting cost.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub kind: IdentityKind,
    /// The masked message (`Learned`), the group rule's template (`Fixed`),
    /// or empty (`Ignored`).
    pub template: String,
    // Private so that `key` is always `context.key()`: kept from record to
    // record while the context stays the same (one service's errors, or
    // bare messages), it saves hashing the context for every error.
    context: Context,
    key: u64,
}

impl Default for Identity {
    fn default() -> Identity {
        // Hashed once: the owning wrappers start from a default per call.
        static EMPTY_KEY: std::sync::LazyLock<u64> =
            std::sync::LazyLock::new(|| Context::default().key());
        Identity {
            kind: IdentityKind::default(),
            template: String::new(),
            key: *EMPTY_KEY,
            context: Context::default(),
        }
    }
}

impl Identity {
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// `self.context().key()`, without hashing it again.
    pub fn context_key(&self) -> u64 {
        self.key
    }

    /// Sets the context, rehashing only when it changed.
    fn set_context(&mut self, service: &str, exception: &str, frames: Vec<String>) {
        let c = &mut self.context;
        if !keys::eq(&c.service, service)
            || !keys::eq(&c.exception, exception)
            || c.frames != frames
        {
            c.service.clear();
            c.service.push_str(service);
            c.exception.clear();
            c.exception.push_str(exception);
            c.frames = frames;
            self.key = c.key();
        }
    }
}

/// How an [`Identity`] becomes a type.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum IdentityKind {
    /// The usual case: a masked template for the learner.
    #[default]
    Learned,
    /// A grouping rule fixes the type: no learning applies.
    Fixed,
    /// A grouping rule says to drop it.
    Ignored { rule: String },
}

/// The stateless half: masking, stack analysis and grouping rules.
#[derive(Clone, Debug)]
pub struct Fingerprinter {
    masker: Masker,
    patterns: PatternSet,
    include_service: bool,
    in_app: Vec<String>,
    max_frames: usize,
}

/// Any problem building a fingerprinter.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Build(#[from] mask::BuildError),
}

impl Fingerprinter {
    pub fn new(cfg: &FingerprintConfig) -> Result<Fingerprinter, FingerprintError> {
        let patterns = PatternSet::load(&cfg.patterns)?;
        Fingerprinter::with_patterns(cfg, patterns)
    }

    pub fn with_patterns(
        cfg: &FingerprintConfig,
        patterns: PatternSet,
    ) -> Result<Fingerprinter, FingerprintError> {
        Ok(Fingerprinter {
            masker: Masker::new(&patterns)?,
            patterns,
            include_service: cfg.include_service,
            in_app: cfg.in_app.clone(),
            max_frames: cfg.max_frames,
        })
    }

    pub fn patterns(&self) -> &PatternSet {
        &self.patterns
    }

    /// The service name that scopes learning for a record of `service`
    /// (empty when `include_service` is off, as in the identity).
    pub fn learn_scope<'s>(&self, service: Option<&'s str>) -> &'s str {
        match service {
            Some(s) if self.include_service => s,
            _ => "",
        }
    }

    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    /// Masks a bare message (`fingerprint --raw`): no service, no trace.
    pub fn identify_message(&self, message: &str, fired: Option<&mut Vec<Fired>>) -> Identity {
        let mut id = Identity::default();
        id.template.reserve(message.len());
        self.identify_message_into(message, fired, &mut id);
        id
    }

    /// [`Fingerprinter::identify_message`] into `out`, reusing its buffers.
    pub fn identify_message_into(
        &self,
        message: &str,
        fired: Option<&mut Vec<Fired>>,
        out: &mut Identity,
    ) {
        out.kind = IdentityKind::Learned;
        out.set_context("", "", Vec::new());
        self.mask_line(message, &mut out.template, fired);
    }

    /// The identity of an error record, before learning.
    pub fn identify(&self, rec: &Record, fired: Option<&mut Vec<Fired>>) -> Identity {
        let mut id = Identity::default();
        id.template.reserve(rec.message.len());
        self.identify_into(rec, fired, &mut id);
        id
    }

    /// [`Fingerprinter::identify`] into `out`, reusing its buffers: no
    /// allocation per record once they have grown, but for stack frames.
    pub fn identify_into(&self, rec: &Record, fired: Option<&mut Vec<Fired>>, out: &mut Identity) {
        let service = match &rec.service {
            Some(s) if self.include_service => s.as_str(),
            _ => "",
        };
        for g in &self.patterns.groups {
            let hit = |re: &Option<regex::Regex>, v: Option<&str>| match re {
                None => true,
                Some(re) => v.is_some_and(|v| re.is_match(v)),
            };
            if hit(&g.service, rec.service.as_deref())
                && hit(&g.logger, rec.logger.as_deref())
                && hit(&g.error_type, rec.error_type.as_deref())
                && hit(&g.message, Some(&rec.message))
            {
                out.set_context(service, "", Vec::new());
                out.template.clear();
                out.kind = match &g.action {
                    GroupAction::Ignore => IdentityKind::Ignored {
                        rule: g.name.clone(),
                    },
                    GroupAction::Fixed(t) | GroupAction::Template(t) => {
                        out.template.push_str(t);
                        IdentityKind::Fixed
                    }
                };
                return;
            }
        }
        let first_line = rec.message.lines().next().unwrap_or("");
        let info = stack::analyze(
            first_line,
            rec.stack_trace.as_deref(),
            &self.in_app,
            self.max_frames,
        );
        let exception = rec
            .error_type
            .as_deref()
            .or(info.exception.as_deref())
            .unwrap_or_default();
        out.set_context(service, exception, info.frames);
        out.kind = IdentityKind::Learned;
        self.mask_line(first_line, &mut out.template, fired);
    }

    /// Masks a message's first line into `out`: a row of quoted fields
    /// ([`delimited`]) field by field, each field one token (its inner
    /// whitespace joined by `_`) and the fields joined by the separator, so
    /// every column keeps its position for the learned stage; a row of
    /// tab-separated fields field by field ([`Fingerprinter::mask_tab_row`]);
    /// any other line as one text.
    fn mask_line(&self, line: &str, out: &mut String, mut fired: Option<&mut Vec<Fired>>) {
        // A message that is one JSON object: its message and keys
        // ([`object`]); one byte compared on every other line.
        if line.trim_ascii_start().starts_with('{') && self.mask_object(line, out, &mut fired) {
            return;
        }
        // A CEF or LEEF record ([`cef`]): only a line with a `|` is looked
        // at, and only the word before its first one. The first `|` is
        // found once, for this and the pipe-row test below.
        let bar = memchr::memchr(b'|', line.as_bytes());
        if let Some(bar) = bar
            && let Some((start, standard)) = cef::header_start(line, bar)
            && cef::mask_record(line, start, standard, out, |text, one| {
                self.masker.mask_into(text, one, fired.as_deref_mut())
            })
        {
            return;
        }
        // Most lines have neither a quote nor a tab: one memchr2 and the
        // usual masking.
        let Some(first) = memchr::memchr2(b'"', b'\t', line.as_bytes()) else {
            if !bar.is_some_and(|bar| self.mask_pipe_row(line, bar, out, fired.as_deref_mut())) {
                self.masker.mask_into(line, out, fired);
            }
            return;
        };
        if line.as_bytes()[first] == b'\t' && memchr::memchr(b'"', line.as_bytes()).is_none() {
            if !self.mask_tab_row(line, out, fired.as_deref_mut()) {
                self.masker.mask_into(line, out, fired);
            }
            return;
        }
        thread_local! {
            static ROW: std::cell::RefCell<delimited::Scratch> =
                const { std::cell::RefCell::new((String::new(), Vec::new(), String::new())) };
        }
        let done = ROW.with_borrow_mut(|(buf, fields, one)| {
            let Some(sep) = delimited::split(line, buf, fields) else {
                return false;
            };
            out.clear();
            for (i, &(s, e)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(delimited::joiner(sep));
                }
                self.masker.mask_into(&buf[s..e], one, fired.as_deref_mut());
                // An empty field is a column too: it keeps its place.
                if one.trim_ascii().is_empty() {
                    out.push_str("\"\"");
                    continue;
                }
                if one.contains(VAR) {
                    out.push_str(VAR);
                    continue;
                }
                delimited::push_one_word(out, one);
            }
            if buf.capacity() > 1 << 16 {
                *buf = String::new();
                *one = String::new();
            }
            true
        });
        if !done && !self.mask_tab_row(line, out, fired.as_deref_mut()) {
            self.masker.mask_into(line, out, fired);
        }
    }

    /// Masks a row of fields glued by `|` (`2026-12-06|06:00:35|SITE-2|
    /// W04|CYCLE_START|COTTON|60|45 min|11,50 zł`) field by field into
    /// `out`, the fields joined by `|` again. False (and `out` untouched)
    /// when `line` is not such a row: a row of `|` ([`rows::is_row`]) with
    /// no space beside its first separator, whose first field is a value
    /// alone (it masks to `<*>`: a date, a time, a number).
    ///
    /// Masked as one text, the rules read the glued fields after the
    /// opening value as one composite value (`pipe_fields`) up to the
    /// first character outside its class (a letter with a diacritic, a
    /// decimal comma): the record type, the outcome and half a word of
    /// the row became one `<*>`, the learned separator (`rows`) then
    /// found a row of the wrong columns, and no column of the source was
    /// learned. Field by field, every column keeps its place, and the
    /// source's own rows decide (per source, [`rows::RowStats`]) which
    /// are values. A composite key inside a message (`seen 0|app|121`,
    /// `remove:0|app|121`) opens with words, not a value, and is left to
    /// the rules as before.
    fn mask_pipe_row(
        &self,
        line: &str,
        bar: usize,
        out: &mut String,
        fired: Option<&mut Vec<Fired>>,
    ) -> bool {
        let first = &line[..bar];
        // Cheap tests first: a value opens the row, glued to its separator.
        if first.is_empty()
            || first.len() > MAX_PIPE_LEAD
            || first.bytes().any(|b| b.is_ascii_whitespace())
            || line[bar + 1..].starts_with([' ', '\t'])
            || !rows::is_row(line, '|')
        {
            return false;
        }
        FIELD.with_borrow_mut(|one| {
            self.masker.mask_into(first, one, None);
            if one != VAR {
                return false;
            }
            self.mask_fields(line.split('|'), "|", None, one, out, fired);
            true
        })
    }

    /// Masks a message that is one JSON object ([`object::mask_object`])
    /// into `out`; its message is masked as a line (a shipper's envelope
    /// around a JSON line is read one level down). False (and `out`
    /// untouched) when it is not one.
    fn mask_object(
        &self,
        line: &str,
        out: &mut String,
        fired: &mut Option<&mut Vec<Fired>>,
    ) -> bool {
        object::mask_object(line, out, |text, one| {
            let inner = text.trim_ascii_start().starts_with('{')
                && object::mask_object(text, one, |t, o| {
                    self.masker.mask_into(t, o, fired.as_deref_mut())
                });
            if !inner {
                self.masker.mask_into(text, one, fired.as_deref_mut());
            }
        })
    }

    /// Masks a tab-separated row ([`delimited::tab_fields`]) field by
    /// field into `out`: each field masked alone, its words kept as words
    /// (a free-text column stays text the learner reads word by word), an
    /// empty field written `""` so every later column keeps its place, the
    /// fields joined by [`delimited::TAB_JOINER`] (the tab is the column
    /// bound the layout reads, `layout::columns`). False (and `out`
    /// untouched) when `line` is not such a row.
    fn mask_tab_row(&self, line: &str, out: &mut String, fired: Option<&mut Vec<Fired>>) -> bool {
        let Some(fields) = delimited::tab_fields(line) else {
            return false;
        };
        FIELD.with_borrow_mut(|one| {
            let joiner = delimited::TAB_JOINER;
            self.mask_fields(fields, joiner, Some("\"\""), one, out, fired);
        });
        true
    }

    /// Masks `fields` one by one into `out` (cleared first), joined by
    /// `joiner`: the loop of the `|` and tab rows. With `empty`, a field's
    /// words are joined by one space and a field with none is written
    /// `empty` (a column keeps its place); without, each masked field is
    /// written as it comes. `one` is the caller's scratch
    /// ([`FIELD`]), trimmed here when one huge field grew it.
    fn mask_fields<'f>(
        &self,
        fields: impl Iterator<Item = &'f str>,
        joiner: &str,
        empty: Option<&str>,
        one: &mut String,
        out: &mut String,
        mut fired: Option<&mut Vec<Fired>>,
    ) {
        out.clear();
        for (i, field) in fields.enumerate() {
            if i > 0 {
                out.push_str(joiner);
            }
            self.masker.mask_into(field, one, fired.as_deref_mut());
            let Some(empty) = empty else {
                out.push_str(one);
                continue;
            };
            let mut words = one.split_ascii_whitespace();
            match words.next() {
                None => out.push_str(empty),
                Some(w) => {
                    out.push_str(w);
                    for w in words {
                        out.push(' ');
                        out.push_str(w);
                    }
                }
            }
        }
        if one.capacity() > 1 << 16 {
            *one = String::new();
        }
    }
}

thread_local! {
    /// One field's masked text, reused per thread by the row maskers.
    static FIELD: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl Fingerprinter {
    /// A stream's header-declared step ([`declared`]) for an identity
    /// about to be laid out, from its record's first line `line`: a
    /// directive line (`#Fields: …`) is remembered for the context; a row
    /// that fits one of the context's directives is masked field by field
    /// by its columns' declared names. True when `id`'s template is such a
    /// row's: the declared columns are its layout, and the learned layout
    /// (which judges columns by their masked values) is not applied.
    pub fn lay_out_declared(
        &self,
        layouts: &mut layout::LayoutLearner,
        line: &str,
        id: &mut Identity,
    ) -> bool {
        if id.kind != IdentityKind::Learned {
            return false;
        }
        if line.starts_with('#') {
            layouts.declare(id.context_key(), line);
            return false;
        }
        self.apply_declared(layouts, line, id)
    }

    /// [`Fingerprinter::lay_out_declared`] without learning a directive:
    /// what re-deriving a stored type's id does.
    pub fn apply_declared(
        &self,
        layouts: &layout::LayoutLearner,
        line: &str,
        id: &mut Identity,
    ) -> bool {
        if id.kind != IdentityKind::Learned {
            return false;
        }
        match layouts.declared(id.context_key(), line) {
            Some(h) => self.mask_declared(h, line, &mut id.template),
            None => false,
        }
    }

    /// Masks `row` into `out` by `header`'s columns ([`declared::Role`]):
    /// a run of value columns is one `<*>` (empty or not), a closed column's word
    /// stays, a path keeps its words, a text column is masked as a
    /// message; an empty field of those stays as the format writes it. False (and `out` untouched) when the
    /// row does not have the header's number of fields.
    pub fn mask_declared(&self, header: &declared::Header, row: &str, out: &mut String) -> bool {
        let Some(fields) = header.fields(row) else {
            return false;
        };
        let joiner = if header.sep == '\t' {
            delimited::TAB_JOINER
        } else {
            " "
        };
        FIELD.with_borrow_mut(|one| {
            out.clear();
            // A run of value columns is written as one `<*>`: the event is
            // in the other columns, and the same event under another field
            // list (a roll that adds or drops values) is the same template.
            let mut in_values = false;
            for (i, (v, role)) in fields.enumerate() {
                if role == declared::Role::Value {
                    if in_values {
                        continue;
                    }
                    in_values = true;
                } else {
                    in_values = false;
                }
                if i > 0 {
                    out.push_str(joiner);
                }
                // A value column is a value whether the client filled it
                // or not (a missing referer or agent is not another event);
                // an empty closed, path or text field stays as written.
                if role != declared::Role::Value && declared::is_empty_mark(v) {
                    out.push_str(if v.is_empty() { "\"\"" } else { v });
                    continue;
                }
                match role {
                    declared::Role::Closed if declared::keeps_closed(v) => out.push_str(v),
                    declared::Role::Path => declared::push_path(v, VAR, out),
                    declared::Role::Text => {
                        self.masker.mask_into(v, one, None);
                        out.push_str(one);
                    }
                    _ => out.push_str(VAR),
                }
            }
            if one.capacity() > 1 << 16 {
                *one = String::new();
            }
        });
        true
    }
}

/// Longest first field of a `|` row ([`Fingerprinter::mask_pipe_row`]):
/// a value that opens a row (a date, a time, an epoch, an id) is short.
const MAX_PIPE_LEAD: usize = 40;

/// An error record's type after learning.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Typed {
    pub fingerprint: Fingerprint,
    pub template: String,
    pub context: Context,
    /// No type matched: the template is new to the learner.
    pub created: bool,
    /// Fingerprints that became aliases of `fingerprint` in this step.
    pub merged: Vec<Fingerprint>,
}

/// The stateful half: maps identities to (possibly generalised) types.
/// `None` when a grouping rule ignores the record.
pub fn classify(learner: &mut Learner, identity: Identity) -> Option<Typed> {
    let mut typed = Typed::default();
    classify_into(learner, &identity, &mut typed).then_some(typed)
}

/// [`classify`] into `out`, reusing its buffers: the stream's path, which
/// allocates nothing for a known type. Returns false (and leaves `out` as
/// it was) when a grouping rule ignores the record.
pub fn classify_into(learner: &mut Learner, identity: &Identity, out: &mut Typed) -> bool {
    match &identity.kind {
        IdentityKind::Ignored { .. } => return false,
        IdentityKind::Fixed => {
            out.fingerprint = identity.context().fingerprint(&identity.template);
            out.created = false;
            out.merged.clear();
            out.template.clone_from(&identity.template);
        }
        IdentityKind::Learned => {
            let ctx = identity.context();
            let r = learner.observe_in(identity.context_key(), &ctx.service, &identity.template);
            out.fingerprint = learner.fingerprint_of(r.cluster, |t| ctx.fingerprint(t));
            out.created = r.created;
            out.merged.clear();
            for &m in &r.merged {
                let f = learner.fingerprint_of(m, |t| ctx.fingerprint(t));
                out.merged.push(f);
            }
            out.template.clear();
            out.template.push_str(learner.template(r.cluster));
        }
    }
    out.context.clone_from(identity.context());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> Fingerprinter {
        Fingerprinter::new(&FingerprintConfig::default()).unwrap()
    }

    fn rec(service: &str, msg: &str) -> Record {
        Record {
            service: Some(service.into()),
            message: msg.into(),
            ..Record::default()
        }
    }

    #[test]
    fn a_row_of_quoted_fields_keeps_its_event_column_and_masks_its_value_columns() {
        let f = fp();
        let a = f.identify_message(
            r#""2031-02-03T04:05:06Z","kim.ray@ex.test","Archived","/a/b, c ""d"".txt","10.1.2.3","ok""#,
            None,
        );
        assert_eq!(a.template, "<*>, <*>, Archived, <*>, <*>, ok");
        let b = f.identify_message(
            r#""2031-02-03T04:05:07Z","lu@ex.test","Restored","/x/y.txt","10.9.9.9","ok""#,
            None,
        );
        assert_eq!(b.template, "<*>, <*>, Restored, <*>, <*>, ok");
    }

    #[test]
    fn a_declared_row_is_masked_by_its_columns_names() {
        let f = fp();
        let h = declared::Header::parse(
            "#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query cs(Referer) sc-status x-note",
        )
        .unwrap();
        let mut out = String::new();
        assert!(f.mask_declared(
            &h,
            "2031-02-03 04:05:06 10.1.2.3 PATCH /v2/crates/7781/lid k=9 - 409 jammed",
            &mut out
        ));
        assert_eq!(out, "<*> PATCH /<*>/crates/<*>/lid <*> 409 jammed");
        // A row of another field count is not this header's.
        assert!(!f.mask_declared(&h, "2031-02-03 04:05:06 PATCH /x 409", &mut out));
    }

    #[test]
    fn a_stream_masks_rows_by_the_directive_its_source_declared() {
        let f = fp();
        let mut layouts = layout::LayoutLearner::new();
        let mut id = f.identify_message("7 8 ZAP 418", None);
        assert!(!f.lay_out_declared(&mut layouts, "7 8 ZAP 418", &mut id));
        let line = "#Fields: date time cs-method sc-status";
        let mut d = f.identify_message(line, None);
        assert!(!f.lay_out_declared(&mut layouts, line, &mut d));
        let mut id = f.identify_message("7 8 ZAP 418", None);
        assert!(f.lay_out_declared(&mut layouts, "7 8 ZAP 418", &mut id));
        assert_eq!(id.template, "<*> ZAP 418");
        // Kept in the state: a restart masks the same way.
        let back: layout::LayoutLearner =
            serde_json::from_str(&serde_json::to_string(&layouts).unwrap()).unwrap();
        let mut again = f.identify_message("7 9 ZAP 418", None);
        assert!(f.apply_declared(&back, "7 9 ZAP 418", &mut again));
        assert_eq!(again.template, "<*> ZAP 418");
    }

    #[test]
    fn a_row_glued_by_pipes_is_masked_field_by_field() {
        let f = fp();
        let t = f
            .identify_message(
                "2031-05-06|07:08:09|DEPOT-NW-3|M07|RINSE_START|ŻYTO|40|12,50 zł",
                None,
            )
            .template;
        assert_eq!(t, "<*>|<*>|DEPOT-NW-<*>|<*>|RINSE_START|ŻYTO|<*>|<*> zł");
        // Its record type and state stay words however the row ends.
        let t = f
            .identify_message("2031-05-06|07:08:09|DEPOT-NW-3|M07|HATCH|SEALED", None)
            .template;
        assert_eq!(t, "<*>|<*>|DEPOT-NW-<*>|<*>|HATCH|SEALED");
        // Empty fields keep their places.
        let t = f
            .identify_message("1800000000|M07||HATCH|SEALED", None)
            .template;
        assert_eq!(t, "<*>|<*>||HATCH|SEALED");
    }

    #[test]
    fn pipe_joined_values_inside_a_message_stay_one_value() {
        let f = fp();
        for m in [
            "marking entry as seen 0|org.quill.app|121|null|10111",
            "remove:0|org.quill.app|121|null|10111",
            "RUN|SWEEP|ZONE4|ok",
            "07:08:09 | INFO | vault.Sweeper | sweep done",
        ] {
            assert_eq!(
                f.identify_message(m, None).template,
                f.masker().mask(m),
                "{m}"
            );
        }
    }

    #[test]
    fn a_free_text_field_of_a_row_is_one_token() {
        let t = fp()
            .identify_message(r#""t","Archived","cannot reach the vault""#, None)
            .template;
        assert_eq!(t, "t, Archived, cannot_reach_the_vault");
    }

    #[test]
    fn an_empty_or_blank_field_of_a_row_keeps_its_place() {
        let t = fp()
            .identify_message(r#""t","","   ","Archived""#, None)
            .template;
        assert_eq!(t, r#"t, "", "", Archived"#);
    }

    #[test]
    fn a_tab_separated_row_keeps_empty_fields_and_its_text_words() {
        let t = fp()
            .identify_message(
                "2031-02-03 04:05:06\tNorth Gate\t\tJAM\tBarrier stuck at 42 deg\t",
                None,
            )
            .template;
        assert_eq!(
            t,
            "<*>\t North Gate\t \"\"\t JAM\t Barrier stuck at <*> deg\t \"\""
        );
    }

    #[test]
    fn a_line_indented_by_a_tab_is_masked_as_before() {
        let f = fp();
        let m = "\tcannot open spool 7, retrying";
        assert_eq!(f.identify_message(m, None).template, f.masker().mask(m));
    }

    #[test]
    fn a_message_with_a_quoted_word_is_masked_as_before() {
        let f = fp();
        let m = r#"cannot open "spool", retrying"#;
        assert_eq!(f.identify_message(m, None).template, f.masker().mask(m));
    }

    fn typed(f: &Fingerprinter, l: &mut Learner, r: &Record) -> Typed {
        classify(l, f.identify(r, None)).unwrap()
    }

    #[test]
    fn one_reused_identity_and_typed_give_what_fresh_ones_give() {
        let f = fp();
        let trace = "java.lang.IllegalStateException: x\n\tat com.shop.Cart.close(Cart.java:3)";
        let mut with_trace = rec("api", "cart 7 closed");
        with_trace.stack_trace = Some(trace.into());
        let mut typed_err = rec("api", "boom 3");
        typed_err.error_type = Some("com.shop.Boom".into());
        let mut no_service = rec("x", "db down 5");
        no_service.service = None;
        let records = [
            rec("api", "user 42 not found"),
            rec("api", "user 43 not found"),
            rec("worker", "user 44 not found"),
            with_trace,
            typed_err,
            no_service,
            rec("api", "user 45 not found"),
        ];
        let (mut fresh, mut reused) = (Learner::new(true, 3, 0.0), Learner::new(true, 3, 0.0));
        let mut identity = Identity::default();
        let mut typed = Typed::default();
        for r in &records {
            let want = f.identify(r, None);
            f.identify_into(r, None, &mut identity);
            assert_eq!(identity, want, "{}", r.message);
            assert_eq!(identity.context_key(), identity.context().key());
            let want = classify(&mut fresh, want).unwrap();
            assert!(classify_into(&mut reused, &identity, &mut typed));
            assert_eq!(typed, want, "{}", r.message);
        }
        f.identify_message_into("plain 9", None, &mut identity);
        assert_eq!(identity, f.identify_message("plain 9", None));
        assert_eq!(identity.context_key(), Context::default().key());
    }

    #[test]
    fn fingerprints_print_as_sixteen_hex_digits_and_parse_back() {
        let f = Fingerprint(0xdead_beef);
        assert_eq!(f.to_string(), "00000000deadbeef");
        assert_eq!("00000000deadbeef".parse::<Fingerprint>().unwrap(), f);
        assert!("xyz".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn the_canonical_form_is_stable_across_releases() {
        // If this changes, every stored id changes: bump CANONICAL_VERSION.
        let c = Context {
            service: "checkout".into(),
            exception: "java.lang.IllegalStateException".into(),
            frames: vec!["com.shop.Cart.close".into()],
        };
        assert_eq!(
            c.fingerprint("cart <*> is closed").to_string(),
            "5092edc94492622a"
        );
    }

    #[test]
    fn variable_values_do_not_change_the_fingerprint() {
        let f = fp();
        let mut l = Learner::new(true, 3, 0.0);
        let a = typed(&f, &mut l, &rec("api", "user 42 from 10.0.0.1 took 12ms"));
        let b = typed(
            &f,
            &mut l,
            &rec("api", "user 97 from 192.168.3.4 took 1.5s"),
        );
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn one_bug_in_two_services_is_two_types() {
        let f = fp();
        let mut l = Learner::new(true, 3, 0.0);
        let a = typed(&f, &mut l, &rec("api", "db down"));
        let b = typed(&f, &mut l, &rec("worker", "db down"));
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn two_messages_differing_by_one_constant_word_get_different_fingerprints() {
        let f = fp();
        let mut l = Learner::new(true, 3, 0.0);
        let a = typed(&f, &mut l, &rec("api", "timeout connecting to redis"));
        let b = typed(&f, &mut l, &rec("api", "timeout connecting to postgres"));
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn the_same_record_gets_the_same_id_on_a_fresh_instance() {
        let r = rec("api", "payment 7781 declined for user bob");
        let a = typed(&fp(), &mut Learner::new(true, 3, 0.0), &r);
        let b = typed(&fp(), &mut Learner::new(true, 3, 0.0), &r);
        assert_eq!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn stack_traces_identify_by_class_and_in_app_frames() {
        let f = fp();
        let mut l = Learner::new(true, 3, 0.0);
        let trace = |line: u32| {
            format!(
                "java.lang.NullPointerException: null\n\tat com.shop.Cart.total(Cart.java:{line})\n\tat java.lang.Thread.run(Thread.java:1)"
            )
        };
        let mut r1 = rec("checkout", "request failed");
        r1.stack_trace = Some(trace(10));
        let mut r2 = r1.clone();
        r2.stack_trace = Some(trace(99));
        let t1 = typed(&f, &mut l, &r1);
        let t2 = typed(&f, &mut l, &r2);
        assert_eq!(t1.fingerprint, t2.fingerprint);
        assert_eq!(t1.context.exception, "java.lang.NullPointerException");
        assert_eq!(t1.context.frames, ["com.shop.Cart.total"]);
        let mut r3 = r1.clone();
        r3.stack_trace = Some(trace(10).replace("Cart.total", "Cart.add"));
        assert_ne!(typed(&f, &mut l, &r3).fingerprint, t1.fingerprint);
    }

    #[test]
    fn grouping_rules_fix_or_ignore_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        std::fs::write(
            &p,
            "[[group]]\nname = \"resets\"\nmessage = '(?i)connection reset'\nfingerprint = 'connection-reset'\n\n\
             [[group]]\nname = \"noise\"\nmessage = '^health check'\nignore = true\n",
        )
        .unwrap();
        let cfg = FingerprintConfig {
            patterns: vec![p],
            ..FingerprintConfig::default()
        };
        let f = Fingerprinter::new(&cfg).unwrap();
        let mut l = Learner::new(true, 3, 0.0);
        let a = typed(&f, &mut l, &rec("api", "Connection reset by peer"));
        let b = typed(
            &f,
            &mut l,
            &rec("api", "upstream: connection reset while reading"),
        );
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.template, "connection-reset");
        assert!(classify(&mut l, f.identify(&rec("api", "health check failed"), None)).is_none());
    }
}
