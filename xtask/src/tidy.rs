//! Tidy tests: the architecture rules of `docs/architecture.md`, checked on the manifests.
