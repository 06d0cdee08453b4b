//! The example plugins written in Python, JavaScript and C (`examples/plugins/`), built by
//! `examples/plugins/build.sh --no-install` and loaded through the real plugin host exactly as
//! the agent loads a plugin directory. One table of expectations drives all three through
//! `usp_dm::Provider`: Gets (typed values, a table, faults), a Set in a transaction (with the
//! pushed ValueChange), an aborted transaction, and the synchronous `Increment()` command.
//!
//! A missing toolchain fails these tests; it is never a skip. Install the toolchains with
//! `examples/plugins/build.sh` (what CI runs before `cargo test`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use usp_dm::{Args, Change, GetRequest, OperateOutcome, ParamValues, Provider, ProviderError};
use usp_runtime::{PluginHost, PluginProvider};

use crate::common;

/// The example plugins: build-script directory name and the `X_EXAMPLE_<name>` of its subtree.
const LANGUAGES: [(&str, &str); 3] = [
    ("python", "Python"),
    ("javascript", "JavaScript"),
    ("c", "C"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the build script puts its toolchains, cache and plugin directories: the build
/// target's tmp directory, which is also the script's default when run by hand or by CI.
fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("example-plugins")
}

fn run_build_script(out: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(repo_root().join("examples/plugins/build.sh"))
        .args(["--no-install", "--out"])
        .arg(out)
        .output()
        .expect("bash runs examples/plugins/build.sh")
}

/// Builds the three plugins once per test binary (a cache hit when nothing changed) and
/// returns the directory holding one plugin directory per language.
fn plugins_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = build_dir();
        let output = run_build_script(&out);
        assert!(
            output.status.success(),
            "examples/plugins/build.sh failed ({}); install the toolchains with \
             `examples/plugins/build.sh`:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        out.join("plugins")
    })
}

/// Serialises loading: the first load of a component compiles it (seconds of debug-built
/// cranelift for Python and JavaScript) into the compile cache shared by the crate's tests, and
/// two tests compiling the same component at once would only double that.
static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Loads one example plugin into a host whose state (key-value stores) lives in `state`, and
/// collects the changes it pushes.
async fn load(state: &Path, lang: &str) -> (PluginHost, Arc<PluginProvider>, common::Collected) {
    let host = common::host(state);
    let provider = {
        let _loading = LOADING.lock().await;
        host.load(&plugins_dir().join(lang))
            .await
            .unwrap_or_else(|error| panic!("loading the {lang} example plugin: {error}"))
    };
    let collected = common::Collected::default();
    provider.attach(collected.sink());
    (host, provider, collected)
}

fn request(object: &str, params: &[&str]) -> GetRequest {
    GetRequest {
        object: object.to_string(),
        params: params.iter().map(|name| name.to_string()).collect(),
    }
}

fn values(pairs: &[(&str, &str)]) -> ParamValues {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn assert_fault<T: std::fmt::Debug>(result: Result<T, ProviderError>, code: u32, names: &str) {
    let error = match result {
        Ok(value) => panic!("expected fault {code} naming {names}, got {value:?}"),
        Err(error) => error,
    };
    assert_eq!(error.code.code(), code, "{error}");
    assert!(error.message.contains(names), "{error} should name {names}");
}

async fn get_one(
    provider: &dyn Provider,
    object: &str,
    params: &[&str],
) -> Result<ParamValues, ProviderError> {
    provider.get(&[request(object, params)]).await.remove(0)
}

async fn exercise_reads(provider: &dyn Provider, name: &str) {
    let root = format!("Device.X_EXAMPLE_{name}.");
    let sensors = format!("{root}Sensor.");

    let schema = provider.schema();
    let top = schema.object(&root).expect("the root object is described");
    let param_names: Vec<&str> = top.params.iter().map(|param| param.name.as_str()).collect();
    assert_eq!(
        param_names,
        [
            "Language",
            "Enable",
            "Greeting",
            "Offset",
            "Counter",
            "BigValue",
            "BuildTime",
            "SensorNumberOfEntries"
        ]
    );
    assert_eq!(top.commands.len(), 1);
    let table = schema
        .object(&format!("{sensors}{{i}}."))
        .expect("the Sensor table is described");
    assert!(table.multi_instance);
    assert_eq!(table.unique_keys, [["Name"]]);

    assert_eq!(
        provider
            .instances(&sensors)
            .await
            .expect("Sensor instances"),
        [1, 2]
    );
    assert_fault(
        provider.instances(&format!("{root}Nope.")).await,
        7026,
        "Nope",
    );

    let answers = provider
        .get(&[
            request(&root, &[]),
            request(&format!("{sensors}2."), &["Name", "Value"]),
            request(&format!("{sensors}1."), &[]),
            request(&format!("{sensors}3."), &[]),
            request(&root, &["Nope"]),
        ])
        .await;
    assert_eq!(answers.len(), 5);
    let mut answers = answers.into_iter();
    assert_eq!(
        answers.next().expect("root").expect("root values"),
        values(&[
            ("Language", name),
            ("Enable", "false"),
            ("Greeting", "hello"),
            ("Offset", "-42"),
            ("Counter", "0"),
            ("BigValue", "18446744073709551615"),
            ("BuildTime", "2026-11-25T00:00:00Z"),
            ("SensorNumberOfEntries", "2"),
        ])
    );
    assert_eq!(
        answers.next().expect("sensor 2").expect("sensor 2 values"),
        values(&[("Name", "outlet"), ("Value", "35")])
    );
    assert_eq!(
        answers.next().expect("sensor 1").expect("sensor 1 values"),
        values(&[("Name", "inlet"), ("Value", "21"), ("Unit", "Cel")])
    );
    assert_fault(
        answers.next().expect("sensor 3"),
        7016,
        &format!("{sensors}3."),
    );
    assert_fault(
        answers.next().expect("unknown param"),
        7026,
        &format!("{root}Nope"),
    );
}

async fn exercise_writes(provider: &dyn Provider, collected: &common::Collected, name: &str) {
    let root = format!("Device.X_EXAMPLE_{name}.");

    let mut txn = provider.begin().await.expect("begin");
    txn.set(&root, "Enable", "true").await.expect("set Enable");
    txn.set(&root, "Greeting", "grüß dich")
        .await
        .expect("set Greeting");
    assert_fault(
        txn.set(&root, "Language", "Rust").await,
        7013,
        &format!("{root}Language"),
    );
    assert_fault(
        txn.set(&root, "Nope", "1").await,
        7010,
        &format!("{root}Nope"),
    );
    assert_fault(
        txn.set(&root, "Greeting", &"x".repeat(65)).await,
        7012,
        &format!("{root}Greeting"),
    );
    assert_fault(
        txn.add(&format!("{root}Sensor."), &ParamValues::new())
            .await,
        7019,
        "Sensor.",
    );
    assert_fault(
        txn.delete(&format!("{root}Sensor.1.")).await,
        7024,
        "Sensor.1.",
    );
    txn.prepare().await.expect("prepare");
    txn.commit().await.expect("commit");
    assert_eq!(
        get_one(provider, &root, &["Enable", "Greeting"])
            .await
            .expect("values after commit"),
        values(&[("Enable", "true"), ("Greeting", "grüß dich")])
    );
    let changes = collected.wait_for(2).await;
    for (param, value) in [("Enable", "true"), ("Greeting", "grüß dich")] {
        let expected = Change::ValueChanged {
            path: format!("{root}{param}"),
            value: value.to_string(),
        };
        assert!(
            changes.contains(&expected),
            "{expected:?} not pushed: {changes:?}"
        );
    }

    let mut aborted = provider.begin().await.expect("begin");
    aborted
        .set(&root, "Greeting", "never committed")
        .await
        .expect("set Greeting");
    drop(aborted);
    assert_eq!(
        get_one(provider, &root, &["Greeting"])
            .await
            .expect("Greeting"),
        values(&[("Greeting", "grüß dich")])
    );
}

async fn exercise_command(provider: &dyn Provider, name: &str) {
    let root = format!("Device.X_EXAMPLE_{name}.");
    let command = format!("{root}Increment()");
    let by_five: Args = values(&[("By", "5")]);
    let outcome = provider
        .operate(&command, "key-1", by_five)
        .await
        .expect("Increment(By=5)");
    assert_eq!(outcome, OperateOutcome::Done(values(&[("Counter", "5")])));
    let outcome = provider
        .operate(&command, "key-2", Args::new())
        .await
        .expect("Increment()");
    assert_eq!(outcome, OperateOutcome::Done(values(&[("Counter", "6")])));
    assert_eq!(
        get_one(provider, &root, &["Counter"])
            .await
            .expect("Counter"),
        values(&[("Counter", "6")])
    );
    assert_fault(
        provider
            .operate(&command, "key-3", values(&[("By", "many")]))
            .await,
        7027,
        &command,
    );
    assert_fault(
        provider
            .operate(&format!("{root}Nope()"), "key-4", Args::new())
            .await,
        7026,
        &format!("{root}Nope()"),
    );
}

async fn exercise(lang: &str, name: &str) {
    let state = tempfile::tempdir().expect("state dir");
    let (_host, provider, collected) = load(state.path(), lang).await;
    assert_eq!(provider.name(), format!("example-{lang}"));
    exercise_reads(&*provider, name).await;
    exercise_writes(&*provider, &collected, name).await;
    exercise_command(&*provider, name).await;
}

#[tokio::test]
async fn python_plugin_answers_gets_set_and_command() {
    exercise("python", "Python").await;
}

#[tokio::test]
async fn javascript_plugin_answers_gets_set_and_command() {
    exercise("javascript", "JavaScript").await;
}

#[tokio::test]
async fn c_plugin_answers_gets_set_and_command() {
    exercise("c", "C").await;
}

#[tokio::test]
async fn all_three_load_side_by_side_from_one_directory() {
    let state = tempfile::tempdir().expect("state dir");
    let host = common::host(state.path());
    let results = {
        let _loading = LOADING.lock().await;
        host.load_dir(plugins_dir()).await
    };
    for (path, result) in &results {
        assert!(
            result.is_ok(),
            "{}: {:?}",
            path.display(),
            result.as_ref().err()
        );
    }
    let names: Vec<String> = host
        .plugins()
        .await
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["example-c", "example-javascript", "example-python"]);
    for (lang, name) in LANGUAGES {
        let provider = host
            .provider(&format!("example-{lang}"))
            .await
            .expect("loaded");
        let language = get_one(
            &*provider,
            &format!("Device.X_EXAMPLE_{name}."),
            &["Language"],
        )
        .await
        .expect("Language");
        assert_eq!(language, values(&[("Language", name)]));
    }
}

#[test]
fn unchanged_plugins_are_served_from_the_build_cache() {
    plugins_dir();
    let output = run_build_script(&build_dir());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        !log.contains("building"),
        "a second build with unchanged inputs rebuilt:\n{log}"
    );
}

#[test]
fn stale_c_bindings_are_refused() {
    let copy = tempfile::tempdir().expect("temp repo");
    let examples = copy.path().join("examples/plugins");
    std::fs::create_dir_all(examples.join("c/gen")).expect("mkdir");
    std::fs::create_dir_all(copy.path().join("wit")).expect("mkdir");
    let source = repo_root().join("examples/plugins");
    std::fs::copy(source.join("build.sh"), examples.join("build.sh")).expect("copy build.sh");
    std::fs::copy(
        source.join("c/gen/WIT_SHA256"),
        examples.join("c/gen/WIT_SHA256"),
    )
    .expect("copy hash");
    let wit = std::fs::read_to_string(repo_root().join("wit/dm.wit")).expect("read WIT");
    std::fs::write(
        copy.path().join("wit/dm.wit"),
        format!("{wit}\n/// changed\n"),
    )
    .expect("write WIT");

    let output = Command::new("bash")
        .arg(examples.join("build.sh"))
        .args(["--no-install", "--out"])
        .arg(copy.path().join("out"))
        .output()
        .expect("bash runs build.sh");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("examples/plugins/c/gen is stale"), "{log}");
}
