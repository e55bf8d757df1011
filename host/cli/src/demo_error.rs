//! The demos' error: which step failed and why.

/// A demo failure, with the step that failed.
#[derive(Debug, thiserror::Error)]
#[error("demo step '{step}' failed: {message}")]
pub struct DemoError {
    /// The step.
    pub step: &'static str,
    /// What happened.
    pub message: String,
}

/// A closure turning an error into a [`DemoError`] of `step`.
pub fn fail(step: &'static str) -> impl Fn(&dyn std::fmt::Display) -> DemoError {
    move |e| DemoError {
        step,
        message: e.to_string(),
    }
}
