//! Backtraces in reports (SPEC §12): which frames help an admin find the bug, and which are
//! left out (capture machinery, middleware, runtime).

/// Frames at the top of every backtrace that only show how it was captured.
const CAPTURE_PREFIXES: &[&str] = &[
    "std::backtrace",
    "std::panicking",
    "std::panic::",
    "core::panicking",
    "__rustc::",
    "rust_begin_unwind",
    "anyhow::",
    "<anyhow::",
    "autosend::web::error::",
    "<autosend::web::error::",
    "autosend::panics::",
    "autosend::reporting::",
];

/// autosend frames that only carry a request to its handler (the middleware stack).
const PLUMBING: &[&str] = &[
    "autosend::web::middleware::",
    "autosend::web::server::",
    "autosend::web::auth::load_user",
    "autosend::telemetry::",
];

/// A backtrace without the frames that never help: capture machinery at the top, and the
/// middleware and runtime (tokio, poem, std) below the outermost autosend frame that is not
/// middleware (the handler or task), each replaced by a line
/// saying how many were left out. Frames between (a dependency autosend called) stay. A
/// backtrace without autosend frames, or not in std's format, is kept whole.
pub fn compact(backtrace: &str) -> String {
    // A frame is its "N: name" line and the "at file:line" lines under it.
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in backtrace.lines() {
        let is_head = line
            .trim_start()
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !is_head => frame.push(line),
            _ if is_head => frames.push(vec![line]),
            _ => return backtrace.to_string(),
        }
    }
    let name = |frame: &Vec<&str>| {
        frame[0]
            .trim_start()
            .split_once(": ")
            .map(|(_, name)| name.to_string())
            .unwrap_or_default()
    };
    let own = |f: &Vec<&str>| name(f).contains("autosend::");
    let plumbing = |f: &Vec<&str>| {
        let name = name(f);
        PLUMBING.iter().any(|p| name.contains(p))
    };
    // The handler (or task) is the last frame of ours that is not middleware; an error raised
    // in the middleware itself keeps the middleware.
    let Some(last_own) = frames
        .iter()
        .rposition(|f| own(f) && !plumbing(f))
        .or_else(|| frames.iter().rposition(own))
    else {
        return backtrace.to_string();
    };
    let first_kept = frames[..last_own]
        .iter()
        .position(|f| {
            let name = name(f);
            !CAPTURE_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        .unwrap_or(last_own);
    let mut out = String::new();
    if first_kept > 0 {
        out.push_str(&format!("      … {first_kept} capture frames left out\n"));
    }
    for frame in &frames[first_kept..=last_own] {
        for line in frame {
            out.push_str(line);
            out.push('\n');
        }
    }
    let below = frames.len() - last_own - 1;
    if below > 0 {
        out.push_str(&format!(
            "      … {below} middleware and runtime frames left out\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtraces_lose_capture_and_runtime_frames_only() {
        let bt = "   0: std::backtrace::Backtrace::force_capture
             at /rustc/x/library/std/src/backtrace.rs:312:13
   1: autosend::web::error::InternalError::new
             at ./src/web/error.rs:55:24
   2: sqlx_core::pool::inner::acquire
             at /cargo/sqlx-core/src/pool/inner.rs:10:1
   3: autosend::db::recipients::find::{{closure}}
             at ./src/db/recipients.rs:12:5
   4: autosend::web::middleware::edge::{{closure}}
   5: tokio::runtime::task::harness::poll
             at /cargo/tokio/src/runtime/task/harness.rs:1:1
   6: std::thread::start
";
        assert_eq!(
            compact(bt),
            "      … 2 capture frames left out
   2: sqlx_core::pool::inner::acquire
             at /cargo/sqlx-core/src/pool/inner.rs:10:1
   3: autosend::db::recipients::find::{{closure}}
             at ./src/db/recipients.rs:12:5
      … 3 middleware and runtime frames left out
"
        );
        // Nothing of ours, or not a std backtrace: kept whole.
        let foreign = "   0: tokio::x\n   1: std::y\n";
        assert_eq!(compact(foreign), foreign);
        assert_eq!(compact("disabled backtrace"), "disabled backtrace");
        assert_eq!(compact(""), "");
    }
}
