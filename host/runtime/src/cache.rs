//! The compile cache: plain `.wasm` in, native code out, stored as
//! `<cache>/<sha256 of the wasm>-<engine compatibility hash>.cwasm`. Compilation runs in a
//! short-lived child process ([`compile_to_cache`] is what the child calls) because cranelift
//! keeps its memory; the agent only ever maps files it finds under its own cache directory
//! under the key it computed from the `.wasm` bytes it was given.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::CompilerCommand;
use crate::engine::codegen_config;
use crate::error::{EngineError, RuntimeError};

/// The cache file for `wasm` under `cache_dir` for this engine.
pub(crate) fn cache_path(engine: &Engine, wasm: &[u8], cache_dir: &Path) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let digest = hex::encode(Sha256::digest(wasm));
    cache_dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
}

/// Compiles `wasm_path` into `cache_dir` (created if missing) and returns the cache file. A
/// file already present under the same key is reused. Meant for the compile child process
/// (`usp-agent __compile <wasm> <cache-dir>`); it uses the same engine settings as the host.
pub fn compile_to_cache(wasm_path: &Path, cache_dir: &Path) -> Result<PathBuf, RuntimeError> {
    let cache_io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::CacheIo { path, source }
    };
    let engine = Engine::new(&codegen_config()).map_err(|err| RuntimeError::Engine(err.into()))?;
    let wasm = std::fs::read(wasm_path).map_err(|source| RuntimeError::WasmRead {
        wasm: wasm_path.to_path_buf(),
        source,
    })?;
    let target = cache_path(&engine, &wasm, cache_dir);
    if target.is_file() {
        return Ok(target);
    }
    let native = engine
        .precompile_component(&wasm)
        .map_err(|err| RuntimeError::Precompile {
            wasm: wasm_path.to_path_buf(),
            source: err.into(),
        })?;
    std::fs::create_dir_all(cache_dir).map_err(cache_io(cache_dir))?;
    // Written under a temporary name and renamed, so a reader never maps a partial file.
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, &native).map_err(cache_io(&partial))?;
    std::fs::rename(&partial, &target).map_err(cache_io(&target))?;
    Ok(target)
}

/// Returns the component for `wasm`, compiling it in a child process when the cache misses.
pub(crate) async fn load_component(
    engine: &Engine,
    compiler: &CompilerCommand,
    plugin: &str,
    wasm_path: &Path,
    wasm: &[u8],
    cache_dir: &Path,
) -> Result<Component, RuntimeError> {
    let compile_error = |message: String| RuntimeError::Compile {
        plugin: plugin.to_string(),
        wasm: wasm_path.to_path_buf(),
        message,
    };
    let cached = cache_path(engine, wasm, cache_dir);
    if !cached.is_file() {
        let output = tokio::process::Command::new(&compiler.program)
            .args(&compiler.args)
            .arg(wasm_path)
            .arg(cache_dir)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| RuntimeError::CompilerSpawn {
                plugin: plugin.to_string(),
                wasm: wasm_path.to_path_buf(),
                program: compiler.program.clone(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(compile_error(format!(
                "{} ({})",
                stderr.trim(),
                output.status
            )));
        }
        if !cached.is_file() {
            return Err(compile_error(format!(
                "the compiler exited without writing {}",
                cached.display()
            )));
        }
    }
    deserialize(engine, &cached).map_err(|source| RuntimeError::CacheLoad {
        plugin: plugin.to_string(),
        wasm: wasm_path.to_path_buf(),
        cached,
        source,
    })
}

/// Maps a cache file produced by [`compile_to_cache`].
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, cached: &Path) -> Result<Component, EngineError> {
    // SAFETY: `deserialize_file` trusts the file to be wasmtime's own output. The path is
    // inside the agent's cache directory under a name derived from the sha256 of the `.wasm`
    // being loaded, and only `compile_to_cache` writes there (atomically, via rename); a
    // `.cwasm` from anywhere else is never passed here. Wasmtime still rejects files from
    // another version or configuration.
    unsafe { Component::deserialize_file(engine, cached) }.map_err(EngineError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_wasm_fails_to_compile_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("bad.wasm");
        std::fs::write(&wasm, b"\0asm garbage").unwrap();
        let error = compile_to_cache(&wasm, &dir.path().join("cache")).unwrap_err();
        assert!(error.to_string().contains("bad.wasm"), "{error}");
    }

    #[test]
    fn cache_key_changes_with_the_wasm_bytes() {
        let engine = Engine::new(&codegen_config()).unwrap();
        let dir = Path::new("/cache");
        assert_ne!(
            cache_path(&engine, b"a", dir),
            cache_path(&engine, b"b", dir)
        );
        assert_eq!(
            cache_path(&engine, b"a", dir),
            cache_path(&engine, b"a", dir)
        );
    }
}
