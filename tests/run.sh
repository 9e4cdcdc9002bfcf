#!/usr/bin/env bash
# weir's whole test suite: the README's test command, and what CI runs (.ci/run).
#
#   0. README command 1 (the orders example, run locally), whose build every later step reuses;
#   1. the Rust workspace (host, CLI, ...): `cargo test --workspace` (built first, then run beside
#      step 3, which has the binaries it needs by then); its build script compiles
#      the example and hostile plugins to wasm32-wasip2 first; the AWS integration tests run
#      against moto server and dynalite, installed here (into .venv-moto and target/emulators);
#      cargo-lambda (into .venv-cargo-lambda) runs the Lambda's bootstrap binary in its tests,
#      then packages the function (`cargo lambda build --compiler cargo --output-format zip`);
#      neither recompiles a heavy dependency that an earlier step built (checked);
#   2. the plugin workspace's native unit tests (SDK and example plugins, no wasm);
#   3. terraform/: fmt, validate, `terraform test` with a mocked provider, checkov, and a real
#      apply against the local AWS emulator (terraform/tests/run.sh; installs its own venvs).
#
# `bash tests/run.sh --long` runs only the release soak instead (issue #15): the chaos soak
# (host/tests/all/soak.rs) at 100,000 records, repeated on new seeds for 60 minutes
# (WEIR_SOAK_RECORDS and WEIR_SOAK_MINUTES override both). Run it before a release.
#
# Ends with one line `weir: N passed, M failed, K skipped`; exits non-zero if anything failed.
# A test that cannot run (a missing emulator or tool) says SKIPPED and is counted; under CI=true
# a skip is a failure, so CI never passes on a test that did not run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
logs=$root/target/test-logs
mkdir -p "$logs"

passed=0
failed=0
skipped=0
failures=()
# Tests record their skips here (weir_test_artifacts::emulators::skipped): libtest hides the
# output of a test that passes.
export WEIR_SKIPS_FILE=$logs/skips.txt
rm -f "$WEIR_SKIPS_FILE"

section() { printf '\n==== %s ====\n' "$*"; }

skip() {
  echo "SKIPPED: $*"
  skipped=$((skipped + 1))
  if [ "${CI:-}" = "true" ]; then
    failed=$((failed + 1)); failures+=("skipped under CI=true: $*")
  fi
}

# Sums the `test result:` lines cargo prints; a failing command counts at least one failure.
cargo_suite() {
  local name=$1; shift
  section "$name: $*"
  local log=$logs/$name.log
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f
  p=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ]; then failures+=("$name (exit $rc)"); fi
}

if command -v rustup >/dev/null 2>&1; then
  # rustup adds rust-toolchain.toml's targets only when it installs the toolchain; `weir build`
  # adds a missing one itself, and the test build (tests/artifacts/build.rs) needs it too.
  rustup target add wasm32-wasip2 >/dev/null 2>&1 || echo "warning: could not add the wasm32-wasip2 target with rustup"
fi

# The local AWS emulators the integration tests start (with the aws CLI the deploy guide uses),
# cargo-lambda and checkov, installed in the background while the first build compiles (network and pip, not the 2 cores cargo uses). The
# tests install a missing emulator themselves; doing it once here keeps parallel tests from racing.
# A failure here is not fatal: the tests that need the tool say SKIPPED.
install_tools() {
  # The versions tests/emulators/requirements.txt and terraform/tests/run.sh pin (both install what is missing too).
  local checkov
  checkov=$(sed -n 's/^CHECKOV_VERSION="\(.*\)"/\1/p' terraform/tests/run.sh)
  tests/emulators/venv.sh || echo "warning: could not install moto server; emulator tests will be SKIPPED"
  if [ ! -f target/emulators/node_modules/dynalite/cli.js ]; then
    echo "installing dynalite@4.0.0 into target/emulators"
    mkdir -p target/emulators
    npm install --no-audit --no-fund --loglevel=error --prefix target/emulators dynalite@4.0.0 \
      || echo "warning: could not install dynalite; DynamoDB sink tests will be SKIPPED"
  fi
  # cargo-lambda: the Lambda tests run the bootstrap binary under `cargo lambda watch`, and the
  # function is packaged below.
  if [ ! -x .venv-cargo-lambda/bin/cargo-lambda ]; then
    echo "installing cargo-lambda==1.9.2 into .venv-cargo-lambda"
    { python3 -m venv .venv-cargo-lambda && .venv-cargo-lambda/bin/pip install --quiet 'cargo-lambda==1.9.2'; } \
      || echo "warning: could not install cargo-lambda; its tests will be SKIPPED"
  fi
  # checkov, for the terraform checks at the end.
  if [ ! -x .venv-checkov/bin/checkov ]; then
    echo "installing checkov==$checkov into .venv-checkov"
    { python3 -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet "checkov==$checkov"; } \
      || echo "warning: could not install checkov; terraform/tests/run.sh will try again"
  fi
}
if [ "${1:-}" = "--long" ]; then
  section "release soak: the chaos soak at ${WEIR_SOAK_RECORDS:-100000} records for ${WEIR_SOAK_MINUTES:-60} minutes"
  install_tools 2>&1 | tee "$logs/tools.log"
  export WEIR_SOAK_RECORDS=${WEIR_SOAK_RECORDS:-100000} WEIR_SOAK_MINUTES=${WEIR_SOAK_MINUTES:-60}
  cargo_suite soak cargo test --locked -p weir-host --test all soak:: -- --include-ignored --nocapture
  if [ -f "$WEIR_SKIPS_FILE" ]; then
    while IFS= read -r s; do skip "$s"; done < "$WEIR_SKIPS_FILE"
  fi
  for f in "${failures[@]}"; do echo "FAILED: $f"; done
  echo "weir: $passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ] && [ "${#failures[@]}" -eq 0 ]
  exit
fi

section "tools (in the background)"
install_tools > "$logs/tools.log" 2>&1 &
tools_pid=$!

# README command 1, as a newcomer runs it first. Every later build must reuse what it compiled:
# .cargo/config.toml gives every build one explicit target triple (cargo-lambda always passes
# one) and the workspace-hack crate (.config/hakari.toml) one feature set for every command.
section "README command 1: cargo run -p weir-cli -- run examples/orders/weir.toml --input examples/orders/data/orders.csv"
readme_log=$logs/readme-command-1.log
cargo run --locked -p weir-cli -- run examples/orders/weir.toml --input examples/orders/data/orders.csv \
  --out target/readme-out 2>&1 | tee "$readme_log"
if [ "${PIPESTATUS[0]}" -eq 0 ] && grep -q '^every input accounted for: yes' "$readme_log"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); failures+=("README command 1")
fi

wait "$tools_pid"
cat "$logs/tools.log"

# Fails when a command compiled one of the heavy dependencies again (issue #12: build once).
heavy='Compiling (wasmtime|wasmtime-[a-z-]+|cranelift-[a-z-]+|pulley-[a-z-]+|wasmparser|aws-[a-z-]+|tokio|hyper|rustls) v'
built_once() {
  local what=$1 log=$2
  if grep -Eq "$heavy" "$log"; then
    echo "FAILED: $what compiled again what an earlier command built:"
    grep -E "$heavy" "$log" | head -20
    failed=$((failed + 1)); failures+=("build once: $what")
  else
    echo "ok: $what reused every heavy dependency"
    passed=$((passed + 1))
  fi
}

# The test build first (so that the terraform checks below have the binaries), then the tests.
section "workspace test build: cargo test --workspace --no-run"
build_log=$logs/workspace-build.log
cargo test --workspace --locked --no-run 2>&1 | tee "$build_log"
if [ "${PIPESTATUS[0]}" -ne 0 ]; then
  failed=$((failed + 1)); failures+=("workspace test build")
fi
section "build once: cargo test after README command 1"
built_once "cargo test --workspace" "$build_log"

# The function packaged as deployed, built with the profile and target triple the tests just
# built, so it only links. (The release build for Lambda is the deploy command in the README,
# `cargo lambda build --release --arm64`, which uses zig and compiles everything optimized.)
# Linux hosts only, as Lambda is; hakari's platforms are the two Lambda triples.
host_triple=$(rustc -vV | sed -n 's/^host: //p')
section "lambda package: cargo lambda build --compiler cargo --target $host_triple --output-format zip"
if [ -x .venv-cargo-lambda/bin/cargo-lambda ]; then
  lambda_log=$logs/lambda-package.log
  if PATH="$root/.venv-cargo-lambda/bin:$PATH" cargo lambda build --compiler cargo --target "$host_triple" \
      --output-format zip --locked -p weir-lambda 2>&1 | tee "$lambda_log" \
      && python3 -c 'import sys, zipfile; sys.exit("bootstrap" not in zipfile.ZipFile(sys.argv[1]).namelist())' \
        target/lambda/bootstrap/bootstrap.zip; then
    echo "ok: target/lambda/bootstrap/bootstrap.zip ($(du -h target/lambda/bootstrap/bootstrap.zip | cut -f1))"
    passed=$((passed + 1))
    built_once "cargo lambda build" "$lambda_log"
  else
    failed=$((failed + 1)); failures+=("lambda package")
  fi
else
  skip "cargo-lambda is not installed; the function was not packaged"
fi

# The terraform checks run beside the Rust tests: both spend most of their time waiting on
# emulators (each starts its own, on its own port), and nothing is built from here on. Their
# output is shown when they end.
tf_log=$logs/terraform.log
tf_pid=""
if [ -f terraform/tests/run.sh ]; then
  section "terraform (in the background, beside the Rust tests): bash terraform/tests/run.sh > $tf_log"
  bash terraform/tests/run.sh > "$tf_log" 2>&1 &
  tf_pid=$!
fi

cargo_suite workspace cargo test --workspace --locked --no-fail-fast
cargo_suite plugins cargo test --locked --manifest-path plugins/Cargo.toml

section "terraform"
if [ -n "$tf_pid" ]; then
  wait "$tf_pid"
  rc=$?
  cat "$tf_log"
  while IFS= read -r s; do skip "terraform: $s"; done < <(sed -n 's/^\*\*\* SKIPPED: //p' "$tf_log")
  line=$(grep -E '^terraform: [0-9]+ passed, [0-9]+ failed' "$tf_log" | tail -1)
  p=$(echo "$line" | awk '{print $2+0}')
  f=$(echo "$line" | awk '{print $4+0}')
  if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then f=1; fi
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ]; then failures+=("terraform (exit $rc)"); fi
else
  skip "terraform/tests/run.sh not found"
fi

section "summary"
# Skips inside the cargo suites (counted as failures there already when CI=true: the test panics).
if [ -f "$WEIR_SKIPS_FILE" ]; then
  while IFS= read -r s; do
    echo "$s"; skipped=$((skipped + 1))
  done < "$WEIR_SKIPS_FILE"
fi
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "weir: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "${#failures[@]}" -eq 0 ]
