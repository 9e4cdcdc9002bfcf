#!/usr/bin/env bash
# weir's whole test suite: the README's test command, and what CI runs (.ci/run).
#
#   1. the Rust workspace (host, CLI, ...): `cargo test --workspace`; its build script compiles
#      the example and hostile plugins to wasm32-wasip2 first; the AWS integration tests run
#      against moto server and dynalite, installed here (into .venv-moto and target/emulators);
#      cargo-lambda (into .venv-cargo-lambda) runs the Lambda's bootstrap binary in its tests,
#      then packages the function (`cargo lambda build --x86-64 --output-format zip`);
#   2. the plugin workspace's native unit tests (SDK and example plugins, no wasm);
#   3. terraform/: fmt, validate, `terraform test` with a mocked provider, checkov, and a real
#      apply against the local AWS emulator (terraform/tests/run.sh; installs its own venvs).
#
# Ends with one line `weir: N passed, M failed`; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
logs=$root/target/test-logs
mkdir -p "$logs"

passed=0
failed=0
failures=()

section() { printf '\n==== %s ====\n' "$*"; }

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
  # rust-toolchain.toml names the toolchain and the wasm32-wasip2 target; make sure both are here.
  rustup target add wasm32-wasip2 >/dev/null 2>&1 || echo "warning: could not add the wasm32-wasip2 target with rustup"
fi

# The local AWS emulators the integration tests start (they install them themselves when
# missing; doing it once here keeps parallel tests from racing to install). A failure here is
# not fatal: the tests that need an emulator then say SKIPPED.
section "emulators"
if [ ! -x .venv-moto/bin/moto_server ]; then
  echo "installing moto[server]==5.2.5 into .venv-moto"
  { python3 -m venv .venv-moto && .venv-moto/bin/pip install --quiet 'moto[server]==5.2.5' boto3; } \
    || echo "warning: could not install moto server; emulator tests will be SKIPPED"
fi
if [ ! -f target/emulators/node_modules/dynalite/cli.js ]; then
  echo "installing dynalite@4.0.0 into target/emulators"
  mkdir -p target/emulators
  npm install --no-audit --no-fund --loglevel=error --prefix target/emulators dynalite@4.0.0 \
    || echo "warning: could not install dynalite; DynamoDB sink tests will be SKIPPED"
fi

# cargo-lambda: the Lambda tests run the bootstrap binary under `cargo lambda watch`, and the
# function is packaged below as deployed (x86_64 here; arm64 is the same command with --arm64).
if [ ! -x .venv-cargo-lambda/bin/cargo-lambda ]; then
  echo "installing cargo-lambda==1.9.2 into .venv-cargo-lambda"
  { python3 -m venv .venv-cargo-lambda && .venv-cargo-lambda/bin/pip install --quiet 'cargo-lambda==1.9.2'; } \
    || echo "warning: could not install cargo-lambda; its tests will be SKIPPED"
fi

cargo_suite workspace cargo test --workspace --locked

section "lambda package: cargo lambda build --x86-64 --output-format zip"
if [ -x .venv-cargo-lambda/bin/cargo-lambda ]; then
  if PATH="$root/.venv-cargo-lambda/bin:$PATH" cargo lambda build --x86-64 --output-format zip --locked -p weir-lambda \
      && python3 -c 'import sys, zipfile; sys.exit("bootstrap" not in zipfile.ZipFile(sys.argv[1]).namelist())' \
        target/lambda/bootstrap/bootstrap.zip; then
    echo "ok: target/lambda/bootstrap/bootstrap.zip ($(du -h target/lambda/bootstrap/bootstrap.zip | cut -f1))"
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failures+=("lambda package")
  fi
else
  echo "SKIPPED: cargo-lambda is not installed; the function was not packaged"
fi

cargo_suite plugins cargo test --locked --manifest-path plugins/Cargo.toml --target-dir target/plugins-native

section "terraform"
if [ -f terraform/tests/run.sh ]; then
  tf_log=$logs/terraform.log
  bash terraform/tests/run.sh 2>&1 | tee "$tf_log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^terraform: [0-9]+ passed, [0-9]+ failed' "$tf_log" | tail -1)
  p=$(echo "$line" | awk '{print $2+0}')
  f=$(echo "$line" | awk '{print $4+0}')
  if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then f=1; fi
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ]; then failures+=("terraform (exit $rc)"); fi
else
  echo "SKIPPED: terraform/tests/run.sh not found"
fi

section "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "weir: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "${#failures[@]}" -eq 0 ]
