//! The only `unsafe` code of the crate: libdtrace's C declarations (`raw`), the stubs that
//! stand in for them off illumos, and [`Consumer`], which owns a `dtrace_hdl_t *` and calls
//! them. Layouts and constants are those of illumos' `<dtrace.h>` and `<sys/dtrace.h>`
//! (LP64); each `SAFETY` note says which invariant a block relies on.
//!
//! libdtrace is "MT-Level Unsafe" and its D compiler keeps process-wide state, so every call
//! here holds [`LIBDTRACE`]; a handle may move between threads (it holds no thread-local
//! state) but is used by one at a time (`Send`, not `Sync`).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Error;
use crate::record::{AggregateRecord, AggregateValue, Key, QUANTIZE_BUCKETS};

/// C declarations of `<dtrace.h>` / `<sys/dtrace.h>` used here.
#[allow(non_camel_case_types, dead_code)]
mod raw {
    use std::ffi::{c_char, c_int, c_uint, c_void};
    use std::marker::{PhantomData, PhantomPinned};

    /// `DTRACE_VERSION`: the library ABI version `dtrace_open` must be given.
    pub(super) const DTRACE_VERSION: c_int = 3;
    /// `DTRACE_PROBESPEC_NAME`: a bare description in a program is a probe name.
    pub(super) const DTRACE_PROBESPEC_NAME: c_int = 3;
    pub(super) const DTRACE_HANDLE_OK: c_int = 0;
    pub(super) const DTRACE_AGGWALK_NEXT: c_int = 0;
    pub(super) const DTRACE_AGGWALK_REMOVE: c_int = 5;
    pub(super) const DTRACE_STATUS_NONE: c_int = 0;
    pub(super) const DTRACE_STATUS_OKAY: c_int = 1;
    pub(super) const DTRACE_STATUS_EXITED: c_int = 2;
    pub(super) const DTRACE_STATUS_FILLED: c_int = 3;
    pub(super) const DTRACE_STATUS_STOPPED: c_int = 4;
    pub(super) const DTRACEACT_AGGREGATION: u16 = 0x0700;
    pub(super) const DTRACEAGG_COUNT: u16 = DTRACEACT_AGGREGATION + 1;
    pub(super) const DTRACEAGG_MIN: u16 = DTRACEACT_AGGREGATION + 2;
    pub(super) const DTRACEAGG_MAX: u16 = DTRACEACT_AGGREGATION + 3;
    pub(super) const DTRACEAGG_SUM: u16 = DTRACEACT_AGGREGATION + 5;
    pub(super) const DTRACEAGG_QUANTIZE: u16 = DTRACEACT_AGGREGATION + 7;

    /// `dtrace_hdl_t`: opaque.
    #[repr(C)]
    pub(super) struct dtrace_hdl_t {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `dtrace_prog_t`: opaque, owned by the handle (freed by `dtrace_close`).
    #[repr(C)]
    pub(super) struct dtrace_prog_t {
        _private: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    /// `dtrace_proginfo_t` (24 bytes; the attributes are three `uint8_t` each).
    #[repr(C)]
    #[derive(Default)]
    pub(super) struct dtrace_proginfo_t {
        pub(super) dpi_descattr: [u8; 3],
        pub(super) dpi_stmtattr: [u8; 3],
        pub(super) dpi_aggregates: c_uint,
        pub(super) dpi_recgens: c_uint,
        pub(super) dpi_matches: c_uint,
        pub(super) dpi_speculations: c_uint,
    }

    /// `dtrace_recdesc_t` (32 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    pub(super) struct dtrace_recdesc_t {
        pub(super) dtrd_action: u16,
        pub(super) dtrd_size: u32,
        pub(super) dtrd_offset: u32,
        pub(super) dtrd_alignment: u16,
        pub(super) dtrd_format: u16,
        pub(super) dtrd_arg: u64,
        pub(super) dtrd_uarg: u64,
    }

    /// `dtrace_aggdesc_t`; `dtagd_rec` really holds `dtagd_nrecs` records.
    #[repr(C)]
    pub(super) struct dtrace_aggdesc_t {
        pub(super) dtagd_name: *const c_char,
        pub(super) dtagd_varid: i64,
        pub(super) dtagd_flags: c_int,
        pub(super) dtagd_id: u32,
        pub(super) dtagd_epid: u32,
        pub(super) dtagd_size: u32,
        pub(super) dtagd_nrecs: c_int,
        pub(super) dtagd_pad: u32,
        pub(super) dtagd_rec: [dtrace_recdesc_t; 1],
    }

    /// The leading fields of `dtrace_aggdata_t`, stable across illumos releases (later
    /// fields were added after 2013). Only ever read through a pointer from libdtrace.
    #[repr(C)]
    pub(super) struct dtrace_aggdata_t {
        pub(super) dtada_handle: *mut dtrace_hdl_t,
        pub(super) dtada_desc: *const dtrace_aggdesc_t,
        pub(super) dtada_edesc: *const c_void,
        pub(super) dtada_pdesc: *const c_void,
        pub(super) dtada_data: *const c_char,
        pub(super) dtada_normal: u64,
        pub(super) dtada_size: usize,
    }

    /// `dtrace_dropdata_t`.
    #[repr(C)]
    pub(super) struct dtrace_dropdata_t {
        pub(super) dtdda_handle: *mut dtrace_hdl_t,
        pub(super) dtdda_cpu: c_int,
        pub(super) dtdda_kind: c_int,
        pub(super) dtdda_drops: u64,
        pub(super) dtdda_total: u64,
        pub(super) dtdda_msg: *const c_char,
    }

    pub(super) type dtrace_aggregate_f = unsafe extern "C" fn(*const dtrace_aggdata_t, *mut c_void) -> c_int;
    pub(super) type dtrace_handle_drop_f = unsafe extern "C" fn(*const dtrace_dropdata_t, *mut c_void) -> c_int;

    #[cfg(target_os = "illumos")]
    #[link(name = "dtrace")]
    unsafe extern "C" {
        pub(super) fn dtrace_open(version: c_int, flags: c_int, errp: *mut c_int) -> *mut dtrace_hdl_t;
        pub(super) fn dtrace_close(dtp: *mut dtrace_hdl_t);
        pub(super) fn dtrace_errno(dtp: *mut dtrace_hdl_t) -> c_int;
        pub(super) fn dtrace_errmsg(dtp: *mut dtrace_hdl_t, error: c_int) -> *const c_char;
        pub(super) fn dtrace_setopt(dtp: *mut dtrace_hdl_t, opt: *const c_char, val: *const c_char) -> c_int;
        pub(super) fn dtrace_program_strcompile(
            dtp: *mut dtrace_hdl_t,
            s: *const c_char,
            spec: c_int,
            cflags: c_uint,
            argc: c_int,
            argv: *const *const c_char,
        ) -> *mut dtrace_prog_t;
        pub(super) fn dtrace_program_exec(dtp: *mut dtrace_hdl_t, pgp: *mut dtrace_prog_t, pip: *mut dtrace_proginfo_t) -> c_int;
        pub(super) fn dtrace_handle_drop(dtp: *mut dtrace_hdl_t, hdlr: dtrace_handle_drop_f, arg: *mut c_void) -> c_int;
        pub(super) fn dtrace_go(dtp: *mut dtrace_hdl_t) -> c_int;
        pub(super) fn dtrace_stop(dtp: *mut dtrace_hdl_t) -> c_int;
        pub(super) fn dtrace_status(dtp: *mut dtrace_hdl_t) -> c_int;
        pub(super) fn dtrace_aggregate_snap(dtp: *mut dtrace_hdl_t) -> c_int;
        pub(super) fn dtrace_aggregate_walk(dtp: *mut dtrace_hdl_t, func: dtrace_aggregate_f, arg: *mut c_void) -> c_int;
        pub(super) fn dtrace_aggregate_clear(dtp: *mut dtrace_hdl_t);
    }

    #[cfg(not(target_os = "illumos"))]
    pub(super) use super::stubs::*;
}

/// Off illumos: the same signatures, failing as libdtrace fails when it cannot open. Only
/// `dtrace_open` and `dtrace_errmsg(NULL, ..)` are ever reached; the rest return errors.
#[cfg(not(target_os = "illumos"))]
#[allow(clippy::missing_safety_doc)]
mod stubs {
    use super::raw::*;
    use std::ffi::{c_char, c_int, c_uint, c_void};

    const ENOTSUP: c_int = 48;

    pub(crate) unsafe extern "C" fn dtrace_open(_version: c_int, _flags: c_int, errp: *mut c_int) -> *mut dtrace_hdl_t {
        if !errp.is_null() {
            // SAFETY: the caller passes a valid out-pointer (as for libdtrace).
            unsafe { *errp = ENOTSUP };
        }
        std::ptr::null_mut()
    }
    pub(crate) unsafe extern "C" fn dtrace_close(_dtp: *mut dtrace_hdl_t) {}
    pub(crate) unsafe extern "C" fn dtrace_errno(_dtp: *mut dtrace_hdl_t) -> c_int {
        ENOTSUP
    }
    pub(crate) unsafe extern "C" fn dtrace_errmsg(_dtp: *mut dtrace_hdl_t, _error: c_int) -> *const c_char {
        c"libdtrace is only available on illumos".as_ptr()
    }
    pub(crate) unsafe extern "C" fn dtrace_setopt(_: *mut dtrace_hdl_t, _: *const c_char, _: *const c_char) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_program_strcompile(
        _: *mut dtrace_hdl_t,
        _: *const c_char,
        _: c_int,
        _: c_uint,
        _: c_int,
        _: *const *const c_char,
    ) -> *mut dtrace_prog_t {
        std::ptr::null_mut()
    }
    pub(crate) unsafe extern "C" fn dtrace_program_exec(
        _: *mut dtrace_hdl_t,
        _: *mut dtrace_prog_t,
        _: *mut dtrace_proginfo_t,
    ) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_handle_drop(_: *mut dtrace_hdl_t, _: dtrace_handle_drop_f, _: *mut c_void) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_go(_: *mut dtrace_hdl_t) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_stop(_: *mut dtrace_hdl_t) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_status(_: *mut dtrace_hdl_t) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_aggregate_snap(_: *mut dtrace_hdl_t) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_aggregate_walk(_: *mut dtrace_hdl_t, _: dtrace_aggregate_f, _: *mut c_void) -> c_int {
        -1
    }
    pub(crate) unsafe extern "C" fn dtrace_aggregate_clear(_: *mut dtrace_hdl_t) {}
}

/// Serialises every libdtrace call in the process.
static LIBDTRACE: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding the lock leaves libdtrace as it was: keep going.
    LIBDTRACE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A compiled D program, enabled with [`Consumer::enable`]. It lives as long as the handle
/// that compiled it (libdtrace frees programs only in `dtrace_close`).
#[derive(Debug)]
pub struct Program {
    prog: *mut raw::dtrace_prog_t,
    owner: *mut raw::dtrace_hdl_t,
}

/// What `dtrace_status` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStatus {
    /// Nothing new.
    None,
    /// Tracing is on.
    Okay,
    /// A program called `exit()`.
    Exited,
    /// A principal buffer filled (`bufpolicy=fill`).
    Filled,
    /// Tracing was stopped.
    Stopped,
}

/// One libdtrace consumer handle (`dtrace_open` .. `dtrace_close`).
#[derive(Debug)]
pub struct Consumer {
    dtp: *mut raw::dtrace_hdl_t,
    /// Drops reported by libdtrace's drop handler; boxed so its address is stable.
    drops: Box<AtomicU64>,
    started: bool,
}

// SAFETY: the handle holds no thread-local state (errors live in the handle); every call
// holds LIBDTRACE, and `&mut self` keeps one user at a time. Not `Sync`.
unsafe impl Send for Consumer {}
// SAFETY: as for `Consumer`; a program pointer is only used with its own handle.
unsafe impl Send for Program {}

/// Counts drops instead of letting libdtrace abort on them (`EDT_DROPABORT`).
unsafe extern "C" fn on_drop(data: *const raw::dtrace_dropdata_t, arg: *mut c_void) -> c_int {
    // SAFETY: libdtrace passes a valid dropdata for the duration of the call, and `arg` is
    // the `AtomicU64` the consumer registered, which outlives the handle.
    unsafe {
        if let (Some(data), Some(drops)) = (data.as_ref(), (arg as *const AtomicU64).as_ref()) {
            drops.fetch_add(data.dtdda_drops, Ordering::Relaxed);
        }
    }
    raw::DTRACE_HANDLE_OK
}

impl Consumer {
    /// Opens libdtrace (`dtrace_open(DTRACE_VERSION, 0, &err)`) and installs a drop
    /// handler. Off illumos this is [`Error::Unsupported`].
    pub fn open() -> Result<Self, Error> {
        let _guard = lock();
        let mut err: c_int = 0;
        // SAFETY: `err` is a valid out-pointer for the call.
        let dtp = unsafe { raw::dtrace_open(raw::DTRACE_VERSION, 0, &mut err) };
        if dtp.is_null() {
            if !cfg!(target_os = "illumos") {
                return Err(Error::Unsupported);
            }
            // SAFETY: dtrace_errmsg accepts a NULL handle and returns a static string.
            let message = unsafe { c_message(raw::dtrace_errmsg(std::ptr::null_mut(), err)) };
            return Err(Error::Call { call: "dtrace_open", message });
        }
        let consumer = Self { dtp, drops: Box::new(AtomicU64::new(0)), started: false };
        let arg = &*consumer.drops as *const AtomicU64 as *mut c_void;
        // SAFETY: `dtp` is open; `arg` points into a Box owned by the consumer, freed only
        // after `dtrace_close` (field order and Drop below).
        let rc = unsafe { raw::dtrace_handle_drop(consumer.dtp, on_drop, arg) };
        consumer.check(rc, "dtrace_handle_drop")?;
        Ok(consumer)
    }

    fn last_error(&self, call: &'static str) -> Error {
        // SAFETY: `dtp` is open; the message is owned by the handle or static, copied here.
        let message = unsafe { c_message(raw::dtrace_errmsg(self.dtp, raw::dtrace_errno(self.dtp))) };
        Error::Call { call, message }
    }

    fn check(&self, rc: c_int, call: &'static str) -> Result<c_int, Error> {
        if rc == -1 { Err(self.last_error(call)) } else { Ok(rc) }
    }

    /// `dtrace_setopt`: `bufsize`, `aggsize`, `strsize` must be set before [`Self::go`]
    /// (`strsize` before compiling); `aggrate` and other dynamic options at any time.
    /// `None` sets a flag option.
    pub fn set_option(&mut self, option: &str, value: Option<&str>) -> Result<(), Error> {
        let option = CString::new(option).map_err(|_| Error::Nul { what: "option" })?;
        let value = value.map(CString::new).transpose().map_err(|_| Error::Nul { what: "option value" })?;
        let _guard = lock();
        // SAFETY: `dtp` is open; both strings are NUL-terminated and outlive the call.
        let rc =
            unsafe { raw::dtrace_setopt(self.dtp, option.as_ptr(), value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr())) };
        self.check(rc, "dtrace_setopt").map(drop)
    }

    /// Compiles a D program from source (`dtrace_program_strcompile`, bare descriptions
    /// being probe names, as `dtrace -n`). A compile error carries the compiler's message.
    pub fn compile(&mut self, source: &str) -> Result<Program, Error> {
        let source = CString::new(source).map_err(|_| Error::Nul { what: "D program" })?;
        let _guard = lock();
        // SAFETY: `dtp` is open; `source` is NUL-terminated; argc 0 with a NULL argv.
        let prog = unsafe {
            raw::dtrace_program_strcompile(self.dtp, source.as_ptr(), raw::DTRACE_PROBESPEC_NAME, 0, 0, std::ptr::null())
        };
        if prog.is_null() {
            return Err(self.last_error("dtrace_program_strcompile"));
        }
        Ok(Program { prog, owner: self.dtp })
    }

    /// Enables a compiled program (`dtrace_program_exec`); returns how many probes it
    /// matched.
    pub fn enable(&mut self, program: &Program) -> Result<u32, Error> {
        if program.owner != self.dtp {
            return Err(Error::Call { call: "dtrace_program_exec", message: "program compiled by another handle".into() });
        }
        let mut info = raw::dtrace_proginfo_t::default();
        let _guard = lock();
        // SAFETY: `dtp` is open and `prog` was compiled by it (checked above); `info` is a
        // valid out-parameter of the documented layout.
        let rc = unsafe { raw::dtrace_program_exec(self.dtp, program.prog, &mut info) };
        self.check(rc, "dtrace_program_exec")?;
        Ok(info.dpi_matches)
    }

    /// Starts tracing (`dtrace_go`).
    pub fn go(&mut self) -> Result<(), Error> {
        let _guard = lock();
        // SAFETY: `dtp` is open.
        let rc = unsafe { raw::dtrace_go(self.dtp) };
        self.check(rc, "dtrace_go")?;
        self.started = true;
        Ok(())
    }

    /// `dtrace_status`: must run at least every few seconds while tracing, or the kernel's
    /// deadman ends the enabling.
    pub fn status(&mut self) -> Result<TraceStatus, Error> {
        let _guard = lock();
        // SAFETY: `dtp` is open.
        let rc = unsafe { raw::dtrace_status(self.dtp) };
        Ok(match self.check(rc, "dtrace_status")? {
            raw::DTRACE_STATUS_OKAY => TraceStatus::Okay,
            raw::DTRACE_STATUS_EXITED => TraceStatus::Exited,
            raw::DTRACE_STATUS_FILLED => TraceStatus::Filled,
            raw::DTRACE_STATUS_STOPPED => TraceStatus::Stopped,
            _ => TraceStatus::None,
        })
    }

    /// Copies the kernel's aggregation buffers into the consumer (`dtrace_aggregate_snap`).
    /// With the default `aggrate` libdtrace silently skips snapshots closer than a second:
    /// set `aggrate` to `0` to snapshot at the caller's pace.
    pub fn snapshot(&mut self) -> Result<(), Error> {
        let _guard = lock();
        // SAFETY: `dtp` is open.
        let rc = unsafe { raw::dtrace_aggregate_snap(self.dtp) };
        self.check(rc, "dtrace_aggregate_snap").map(drop)
    }

    /// Walks every aggregation record of the last snapshot, keeping them.
    pub fn walk(&mut self, f: impl FnMut(AggregateRecord)) -> Result<(), Error> {
        self.walk_with(f, raw::DTRACE_AGGWALK_NEXT)
    }

    /// Walks every record of the last snapshot and removes it: the next snapshot holds only
    /// what was counted after this one, and keys that stop appearing (exited processes) do
    /// not accumulate in the consumer.
    pub fn drain(&mut self, f: impl FnMut(AggregateRecord)) -> Result<(), Error> {
        self.walk_with(f, raw::DTRACE_AGGWALK_REMOVE)
    }

    fn walk_with<F: FnMut(AggregateRecord)>(&mut self, mut f: F, after: c_int) -> Result<(), Error> {
        struct Walk<'a, F> {
            f: &'a mut F,
            after: c_int,
        }
        unsafe extern "C" fn visit<F: FnMut(AggregateRecord)>(data: *const raw::dtrace_aggdata_t, arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the `Walk` below, alive for the whole walk; libdtrace passes a
            // valid aggdata for the duration of the callback.
            unsafe {
                let walk = &mut *(arg as *mut Walk<'_, F>);
                if let Some(record) = data.as_ref().and_then(|d| decode(d)) {
                    (walk.f)(record);
                }
                walk.after
            }
        }
        let mut walk = Walk { f: &mut f, after };
        let _guard = lock();
        // SAFETY: `dtp` is open; `visit::<F>` matches `dtrace_aggregate_f`; `walk` outlives
        // the call, which does not retain `arg`.
        let rc = unsafe { raw::dtrace_aggregate_walk(self.dtp, visit::<F>, &mut walk as *mut Walk<'_, F> as *mut c_void) };
        self.check(rc, "dtrace_aggregate_walk").map(drop)
    }

    /// Zeroes every aggregation value in the consumer (`dtrace_aggregate_clear`); keys stay.
    /// Prefer [`Self::drain`]: clearing also zeroes `min()`/`max()` and `lquantize()`'s
    /// parameters.
    pub fn clear(&mut self) {
        let _guard = lock();
        // SAFETY: `dtp` is open.
        unsafe { raw::dtrace_aggregate_clear(self.dtp) }
    }

    /// Drops reported by libdtrace since the handle opened (aggregation buffers full,
    /// dynamic variables exhausted).
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _guard = lock();
        // SAFETY: `dtp` is open and closed exactly once, here; programs die with it. The drop
        // counter (a field, dropped after this body) outlives the handle.
        unsafe {
            if self.started {
                raw::dtrace_stop(self.dtp);
            }
            raw::dtrace_close(self.dtp);
        }
    }
}

/// Copies a C message (NULL: empty).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn c_message(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: per the function's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Reads `size` bytes at `offset` of a record's data as a signed integer of that width.
fn read_int(bytes: &[u8]) -> Option<i64> {
    Some(match bytes.len() {
        1 => i64::from(i8::from_ne_bytes(bytes.try_into().ok()?)),
        2 => i64::from(i16::from_ne_bytes(bytes.try_into().ok()?)),
        4 => i64::from(i32::from_ne_bytes(bytes.try_into().ok()?)),
        8 => i64::from_ne_bytes(bytes.try_into().ok()?),
        _ => return None,
    })
}

/// Decodes one walk record: `rec[0]` is the aggregation variable id the compiler adds,
/// `rec[1..n-1]` the keys, `rec[n-1]` the aggregating action. A key of 1, 2, 4 or 8 bytes is
/// an integer, any other size a NUL-padded string (`strsize` bytes). Records that do not fit
/// their data are skipped (`None`), never read out of bounds.
///
/// # Safety
/// `data` comes from libdtrace (or a test building the same layout): `dtada_desc` points to
/// a descriptor with `dtagd_nrecs` records, `dtada_data` to `dtada_size` readable bytes, and
/// `dtagd_name` is NULL or a NUL-terminated string.
unsafe fn decode(data: &raw::dtrace_aggdata_t) -> Option<AggregateRecord> {
    // SAFETY: per the function's contract.
    let desc = unsafe { data.dtada_desc.as_ref()? };
    let nrecs = usize::try_from(desc.dtagd_nrecs).ok().filter(|n| *n >= 2)?;
    if data.dtada_data.is_null() {
        return None;
    }
    // SAFETY: the descriptor holds `nrecs` records from `dtagd_rec` on; the data buffer
    // holds `dtada_size` bytes.
    let (recs, bytes) = unsafe {
        (
            std::slice::from_raw_parts(desc.dtagd_rec.as_ptr(), nrecs),
            std::slice::from_raw_parts(data.dtada_data as *const u8, data.dtada_size),
        )
    };
    let field = |rec: &raw::dtrace_recdesc_t| {
        let start = usize::try_from(rec.dtrd_offset).ok()?;
        bytes.get(start..start.checked_add(usize::try_from(rec.dtrd_size).ok()?)?)
    };
    let aggregation = if desc.dtagd_name.is_null() {
        String::new()
    } else {
        // SAFETY: per the function's contract.
        unsafe { c_message(desc.dtagd_name) }
    };
    let mut keys = Vec::with_capacity(nrecs - 2);
    for rec in &recs[1..nrecs - 1] {
        let raw_key = field(rec)?;
        keys.push(match read_int(raw_key) {
            Some(i) => Key::Int(i),
            None => {
                let end = raw_key.iter().position(|b| *b == 0).unwrap_or(raw_key.len());
                Key::Str(String::from_utf8_lossy(&raw_key[..end]).into_owned())
            }
        });
    }
    let value_rec = &recs[nrecs - 1];
    let value = field(value_rec)?;
    let first = || value.get(..8).and_then(read_int);
    let value = match value_rec.dtrd_action {
        raw::DTRACEAGG_COUNT => AggregateValue::Count(u64::try_from(first()?).unwrap_or(0)),
        raw::DTRACEAGG_SUM => AggregateValue::Sum(first()?),
        raw::DTRACEAGG_MIN => AggregateValue::Min(first()?),
        raw::DTRACEAGG_MAX => AggregateValue::Max(first()?),
        raw::DTRACEAGG_QUANTIZE if value.len() == QUANTIZE_BUCKETS * 8 => {
            AggregateValue::Quantize(value.chunks_exact(8).filter_map(read_int).collect())
        }
        other => AggregateValue::Other(other),
    };
    Some(AggregateRecord { aggregation, keys, value })
}

#[cfg(test)]
mod tests {
    use super::raw::*;
    use super::*;

    #[test]
    fn layouts_match_the_illumos_headers() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<dtrace_recdesc_t>(), 32);
        assert_eq!(offset_of!(dtrace_recdesc_t, dtrd_offset), 8);
        assert_eq!(offset_of!(dtrace_recdesc_t, dtrd_arg), 16);
        assert_eq!(size_of::<dtrace_aggdesc_t>(), 72);
        assert_eq!(offset_of!(dtrace_aggdesc_t, dtagd_nrecs), 32);
        assert_eq!(offset_of!(dtrace_aggdesc_t, dtagd_rec), 40);
        assert_eq!(offset_of!(dtrace_aggdata_t, dtada_data), 32);
        assert_eq!(offset_of!(dtrace_aggdata_t, dtada_size), 48);
        assert_eq!(size_of::<dtrace_proginfo_t>(), 24);
        assert_eq!(offset_of!(dtrace_proginfo_t, dpi_matches), 16);
        assert_eq!(offset_of!(dtrace_dropdata_t, dtdda_drops), 16);
        assert_eq!(offset_of!(dtrace_dropdata_t, dtdda_msg), 32);
    }

    /// An aggregation descriptor with room for `N` records, laid out as libdtrace's.
    #[repr(C)]
    struct Desc<const N: usize> {
        name: *const c_char,
        varid: i64,
        flags: c_int,
        id: u32,
        epid: u32,
        size: u32,
        nrecs: c_int,
        pad: u32,
        recs: [dtrace_recdesc_t; N],
    }

    fn rec(action: u16, offset: u32, size: u32) -> dtrace_recdesc_t {
        dtrace_recdesc_t { dtrd_action: action, dtrd_size: size, dtrd_offset: offset, ..Default::default() }
    }

    fn decode_with<const N: usize>(name: &CStr, recs: [dtrace_recdesc_t; N], bytes: &[u8]) -> Option<AggregateRecord> {
        let desc = Desc { name: name.as_ptr(), varid: 1, flags: 0, id: 1, epid: 1, size: 0, nrecs: N as c_int, pad: 0, recs };
        let data = dtrace_aggdata_t {
            dtada_handle: std::ptr::null_mut(),
            dtada_desc: &desc as *const Desc<N> as *const dtrace_aggdesc_t,
            dtada_edesc: std::ptr::null(),
            dtada_pdesc: std::ptr::null(),
            dtada_data: bytes.as_ptr() as *const c_char,
            dtada_normal: 1,
            dtada_size: bytes.len(),
        };
        // SAFETY: `desc` and `bytes` are laid out as the contract of `decode` says.
        unsafe { decode(&data) }
    }

    #[test]
    fn decodes_string_and_int_keys_and_a_count() {
        // [aggid u32 | pad][varid i64][zonename 64][cpu i32 | pad][count i64]
        let mut bytes = vec![0u8; 8 + 8 + 64 + 8 + 8];
        bytes[8..16].copy_from_slice(&7i64.to_ne_bytes());
        bytes[16..22].copy_from_slice(b"global");
        bytes[80..84].copy_from_slice(&3i32.to_ne_bytes());
        bytes[88..96].copy_from_slice(&812i64.to_ne_bytes());
        let recs = [rec(1, 8, 8), rec(1, 16, 64), rec(1, 80, 4), rec(DTRACEAGG_COUNT, 88, 8)];
        let record = decode_with(c"cpu", recs, &bytes).unwrap();
        assert_eq!(record.aggregation, "cpu");
        assert_eq!(record.keys, vec![Key::Str("global".into()), Key::Int(3)]);
        assert_eq!(record.value, AggregateValue::Count(812));
    }

    #[test]
    fn decodes_a_quantize_and_negative_keys() {
        let mut bytes = vec![0u8; 16 + 2 + 6 + QUANTIZE_BUCKETS * 8];
        bytes[16..18].copy_from_slice(&(-2i16).to_ne_bytes());
        let base = 24;
        bytes[base + 8 * 74..base + 8 * 75].copy_from_slice(&5i64.to_ne_bytes());
        let recs = [rec(1, 8, 8), rec(1, 16, 2), rec(DTRACEAGG_QUANTIZE, base as u32, (QUANTIZE_BUCKETS * 8) as u32)];
        let record = decode_with(c"lat", recs, &bytes).unwrap();
        assert_eq!(record.keys, vec![Key::Int(-2)]);
        let AggregateValue::Quantize(buckets) = record.value else { panic!("not a quantize") };
        assert_eq!(crate::quantize_bounds(&buckets).collect::<Vec<_>>(), vec![(1024, 5)]);
    }

    #[test]
    fn records_outside_their_data_are_skipped() {
        let bytes = vec![0u8; 24];
        assert!(decode_with(c"x", [rec(1, 0, 8), rec(1, 8, 8), rec(DTRACEAGG_COUNT, 20, 8)], &bytes).is_none());
        assert!(decode_with(c"x", [rec(1, 0, 8), rec(1, u32::MAX, 8), rec(DTRACEAGG_COUNT, 8, 8)], &bytes).is_none());
        assert!(decode_with(c"x", [rec(1, 0, 8)], &bytes).is_none());
    }

    #[test]
    fn open_is_unsupported_off_illumos() {
        if cfg!(target_os = "illumos") {
            return;
        }
        assert!(matches!(Consumer::open(), Err(Error::Unsupported)));
    }
}
