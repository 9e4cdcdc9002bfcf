#!/usr/bin/env bash
# Every check of weir's Terraform, in order:
#   1. terraform fmt -check -recursive
#   2. terraform init -backend=false (root module and both envs; offline provider
#      mirror /opt/tf-plugins when it exists)
#   3. terraform validate (root module and both envs); docs/deploy.md lists every variable
#   4. terraform test (mocked provider: wiring asserts)
#   5. checkov (own venv at <repo>/.venv-checkov; skipped checks in ../CHECKOV_SKIPS.md)
#   6. terraform apply of envs/local against a moto server on a free 127.0.0.1 port,
#      verification through the AWS API (moto_verify.py), the deployed flow end to end
#      (deployed_flow.py: the real `bootstrap` with the orders function's deployed
#      environment under `cargo lambda watch`, fed from the queue terraform made, then a
#      second one with the events function's, fed S3 -> SNS -> its queue), the deploy guide
#      (deploy_guide.py: every `sh test` block of docs/deploy.md, run as written), destroy,
#      stop moto
# and ends with one line: `terraform: N passed, M failed` (exit 1 when M > 0).
# A missing terraform, or a venv that pip cannot install, is reported as SKIPPED; so is the
# deployed flow when the `weir` / `bootstrap` binaries, cargo-lambda or the built example
# plugins are absent (paths: WEIR_BIN, WEIR_BOOTSTRAP, CARGO_LAMBDA, WEIR_WASM_DIR; defaults
# under <repo>/target/<host triple>/debug, <repo>/.venv-cargo-lambda and
# <repo>/plugins/target/wasm32-wasip2/release, where tests/run.sh builds them first).
# Runnable from any directory; leaves no state, .terraform dir or server behind.
set -uo pipefail

TF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$TF_DIR/.." && pwd)"
cd "$TF_DIR"

CHECKOV_VERSION="3.3.30"
# moto server, boto3 and the AWS CLI (the deploy guide's `aws` commands), pinned in one file.
MOTO_VERSION="$(sed -n 's/^moto\[server\]==//p' "$REPO_ROOT/tests/emulators/requirements.txt")"
PLUGIN_MIRROR="/opt/tf-plugins"
CHECKOV_VENV="$REPO_ROOT/.venv-checkov"
MOTO_VENV="$REPO_ROOT/.venv-moto"
PYTHON="${PYTHON:-python3}"
ENVS=(envs/local envs/example)

PASSED=0
FAILED=0
SKIPPED=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/weir-tf.XXXXXX")"
MOTO_PID=""
LAST_LOG=""
# .terraform dirs and lock files that this run creates are removed at exit; ones that
# were already there (a developer's own init, maybe with a backend) are left alone.
CREATED=()
for d in . "${ENVS[@]}"; do
  [[ -e "$TF_DIR/$d/.terraform" ]] || CREATED+=("$TF_DIR/$d/.terraform")
  [[ -e "$TF_DIR/$d/.terraform.lock.hcl" ]] || CREATED+=("$TF_DIR/$d/.terraform.lock.hcl")
done

cleanup() {
  if [[ -n "$MOTO_PID" ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null
    wait "$MOTO_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  if ((${#CREATED[@]})); then rm -rf "${CREATED[@]}"; fi
}
trap cleanup EXIT

section() { printf '\n==== %s ====\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); printf '  PASS %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '  FAIL %s\n' "$*"; }
skip() {
  SKIPPED+=("$*")
  printf '\n  ******************************************************************\n'
  printf '  *** SKIPPED: %s\n' "$*"
  printf '  ******************************************************************\n'
}

# step NAME CMD...: runs CMD with its output in a log; shows the log's tail on failure.
step() {
  local name="$1"; shift
  local log="$WORK/step-$((PASSED + FAILED + 1)).log"
  LAST_LOG="$log"
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/      | /' "$log" | tail -n 40
  fi
}

# counted NAME LOG CMD...: runs a command that prints `N passed, M failed` itself and adds
# its N and M to the totals (at least one failure if it exits non-zero).
counted() {
  local name="$1" log="$2"; shift 2
  local rc=0 p f line
  "$@" >"$log" 2>&1 || rc=$?
  line="$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)"
  p="$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"${line:-0 passed, 0 failed}")"
  f="$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${line:-0 passed, 0 failed}")"
  if [[ $rc -ne 0 && $f -eq 0 ]]; then f=1; fi
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  if [[ $rc -eq 0 ]]; then
    printf '  PASS %s (%s passed)\n' "$name" "$p"
  else
    printf '  FAIL %s (%s passed, %s failed)\n' "$name" "$p" "$f"
    sed 's/^/      | /' "$log" | tail -n 60
  fi
  return $rc
}

finish() {
  if ((${#SKIPPED[@]})); then
    printf '\n'
    for s in "${SKIPPED[@]}"; do printf '*** SKIPPED: %s\n' "$s"; done
  fi
  printf '\nterraform: %d passed, %d failed\n' "$PASSED" "$FAILED"
  [[ $FAILED -eq 0 ]]
  exit $?
}

# A venv with PACKAGES in it, created when missing; returns 1 when pip cannot install.
ensure_venv() {
  local venv="$1" probe="$2"; shift 2
  if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "$probe" >/dev/null 2>&1; then
    return 0
  fi
  printf '  installing %s into %s\n' "$*" "$venv"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv" >"$WORK/venv.log" 2>&1 &&
    "$venv/bin/pip" install --quiet "$@" >>"$WORK/venv.log" 2>&1 &&
    "$venv/bin/python" -c "$probe" >>"$WORK/venv.log" 2>&1 && return 0
  sed 's/^/      | /' "$WORK/venv.log" | tail -n 15
  rm -rf "$venv"
  return 1
}

# ---------------------------------------------------------------------------------
preflight() {
  section "terraform: preflight"
  if ! command -v terraform >/dev/null 2>&1; then
    skip "terraform is not installed: fmt, init, validate, terraform test and the moto apply did not run (checkov still runs)"
    return 1
  fi
  # A CLI config path that does not exist only produces warnings: drop it.
  if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -e "$TF_CLI_CONFIG_FILE" ]]; then unset TF_CLI_CONFIG_FILE; fi
  export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
  terraform version | head -n 1
  INIT_ARGS=(-backend=false -input=false -no-color)
  if [[ -d "$PLUGIN_MIRROR" ]]; then
    INIT_ARGS+=("-plugin-dir=$PLUGIN_MIRROR")
    echo "  provider mirror: $PLUGIN_MIRROR"
  else
    echo "  provider mirror: none ($PLUGIN_MIRROR missing), using the registry"
  fi
}

static_checks() {
  section "terraform: fmt -check -recursive"
  step "fmt" terraform fmt -check -recursive -diff

  section "terraform: init"
  step "init ." terraform init "${INIT_ARGS[@]}"
  for env in "${ENVS[@]}"; do
    step "init $env" terraform -chdir="$env" init "${INIT_ARGS[@]}"
  done

  section "terraform: validate"
  step "validate ." terraform validate -no-color
  for env in "${ENVS[@]}"; do
    step "validate $env" terraform -chdir="$env" validate -no-color
  done
  step "docs/deploy.md lists every variable" docs_cover_variables

  section "terraform: test (mock_provider aws)"
  counted "terraform test" "$WORK/test.log" terraform test -no-color
  grep -E '^\s+run "|\.tftest\.hcl\.\.\. (pass|fail)' "$WORK/test.log" | sed 's/^/  /'
}

# Every variable of the root module has a row in the variables table of docs/deploy.md.
docs_cover_variables() {
  local missing=0 v
  for v in $(sed -nE 's/^variable "([^"]+)".*/\1/p' variables.tf); do
    if ! grep -qF "| \`$v\` |" "$REPO_ROOT/docs/deploy.md"; then
      echo "missing from docs/deploy.md: $v"
      missing=1
    fi
  done
  return $missing
}

checkov_check() {
  section "terraform: checkov"
  if ensure_venv "$CHECKOV_VENV" "import checkov" "checkov==$CHECKOV_VERSION"; then
    step "checkov (skips: CHECKOV_SKIPS.md)" "$CHECKOV_VENV/bin/checkov" --config-file .checkov.yaml
    grep -Eo 'Passed checks: [0-9]+, Failed checks: [0-9]+.*' "$LAST_LOG" | sed 's/^/  /'
  else
    skip "checkov: pip could not install checkov==$CHECKOV_VERSION into $CHECKOV_VENV"
  fi
}

moto_check() {
  section "terraform: apply envs/local against moto, verify, destroy"
  if ! "$REPO_ROOT/tests/emulators/venv.sh"; then
    skip "moto apply test: pip could not install moto[server]==$MOTO_VERSION into $MOTO_VENV"
    return
  fi
  PORT="$("$MOTO_VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  ENDPOINT="http://127.0.0.1:$PORT"
  "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  up=0
  for _ in $(seq 1 60); do
    if "$MOTO_VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$ENDPOINT/moto-api/', timeout=1)" 2>/dev/null; then up=1; break; fi
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.5
  done
  if [[ $up -eq 1 ]]; then
    pass "moto $MOTO_VERSION listening on $ENDPOINT (pid $MOTO_PID)"

    ZIP="$REPO_ROOT/target/lambda/bootstrap/bootstrap.zip"
    if [[ -f "$ZIP" ]]; then
      echo "  function zip: $ZIP (cargo lambda build)"
    else
      # moto stores the code and never runs it: any zip with a bootstrap will do.
      mkdir -p "$WORK/zip"
      printf '#!/bin/sh\necho "weir placeholder: build with cargo lambda" >&2\nexit 1\n' >"$WORK/zip/bootstrap"
      chmod +x "$WORK/zip/bootstrap"
      "$MOTO_VENV/bin/python" -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1],'w'); z.write(sys.argv[2],'bootstrap'); z.close()" "$WORK/zip/bootstrap.zip" "$WORK/zip/bootstrap"
      ZIP="$WORK/zip/bootstrap.zip"
      echo "  function zip: placeholder $ZIP (no target/lambda/bootstrap/bootstrap.zip)"
    fi

    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing AWS_DEFAULT_REGION=us-east-1
    unset AWS_PROFILE
    export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    STATE="$WORK/local.tfstate"
    TFVARS=(-var "endpoint=$ENDPOINT" -var "lambda_zip_path=$ZIP")
    # The functions require signed plugins, with a key made for this run: the deployed flow
    # publishes with it (`weir publish --sign`), as an operator does.
    flow_paths
    if [[ -x "$WEIR_BIN" ]] && pub="$("$WEIR_BIN" keygen --out "$WORK/signing.key" | tail -1)" && [[ -n "$pub" ]]; then
      export WEIR_SIGNING_KEY_FILE="$WORK/signing.key" WEIR_SIGNING_PUBLIC_KEY="$pub"
      TFVARS+=(-var "signing_keys=[\"$pub\"]")
    fi

    t0=$SECONDS
    step "apply envs/local" terraform -chdir=envs/local apply -auto-approve -no-color -input=false -state="$STATE" "${TFVARS[@]}"
    echo "  (apply took $((SECONDS - t0)) s)"
    if terraform -chdir=envs/local output -no-color -state="$STATE" -json >"$WORK/outputs.json" 2>"$WORK/outputs.err" && [[ -s "$WORK/outputs.json" ]] && grep -q '"weir"' "$WORK/outputs.json"; then
      counted "verify through the AWS API" "$WORK/verify.log" \
        "$MOTO_VENV/bin/python" tests/moto_verify.py "$ENDPOINT" "$WORK/outputs.json" "$REPO_ROOT/lambda/env-vars.json"
      grep -E '^  (ok|FAIL) ' "$WORK/verify.log" | sed 's/^/  /'
      flow_check
      guide_check
      t0=$SECONDS
      # No refresh: moto denies every object request to a bucket with the TLS-only policy
      # (it does not evaluate the condition), so reading back the bindings documents would
      # fail; destroy removes those policies before the documents (modules/bucket_policies).
      step "destroy envs/local" terraform -chdir=envs/local destroy -refresh=false -auto-approve -no-color -input=false -state="$STATE" "${TFVARS[@]}"
      echo "  (destroy took $((SECONDS - t0)) s)"
      counted "verify nothing is left" "$WORK/verify-destroyed.log" \
        "$MOTO_VENV/bin/python" tests/moto_verify.py "$ENDPOINT" "$WORK/outputs.json" "$REPO_ROOT/lambda/env-vars.json" --destroyed
    else
      fail "terraform output after apply"
      sed 's/^/      | /' "$WORK/outputs.err" | tail -n 20
    fi
  else
    fail "moto server did not come up on $ENDPOINT"
    sed 's/^/      | /' "$WORK/moto.log" | tail -n 20
  fi
}

# The deployed flow (deployed_flow.py), between verify and destroy; SKIPPED without the
# binaries it runs.
flow_paths() {
  local triple bins
  triple="$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')"
  bins="$REPO_ROOT/target/${triple:-x86_64-unknown-linux-gnu}/debug"
  export WEIR_BIN="${WEIR_BIN:-$bins/weir}" WEIR_BOOTSTRAP="${WEIR_BOOTSTRAP:-$bins/bootstrap}"
  export CARGO_LAMBDA="${CARGO_LAMBDA:-$REPO_ROOT/.venv-cargo-lambda/bin/cargo-lambda}"
  export WEIR_WASM_DIR="${WEIR_WASM_DIR:-$REPO_ROOT/plugins/target/wasm32-wasip2/release}"
}

flow_check() {
  local missing=() b
  flow_paths
  for b in "$WEIR_BIN" "$WEIR_BOOTSTRAP" "$CARGO_LAMBDA"; do [[ -x "$b" ]] || missing+=("$b"); done
  for b in csv_reshape validate_order enrich_order pii_redact; do
    [[ -f "$WEIR_WASM_DIR/$b.wasm" ]] || missing+=("$WEIR_WASM_DIR/$b.wasm")
  done
  if ((${#missing[@]})); then
    skip "deployed flow (deployed_flow.py): missing ${missing[*]} (build with tests/run.sh)"
    return
  fi
  local t0=$SECONDS
  counted "deployed flow: bootstrap under cargo lambda watch, fed from the deployed queues (orders, events)" "$WORK/flow.log" \
    "$MOTO_VENV/bin/python" tests/deployed_flow.py "$ENDPOINT" "$WORK/outputs.json"
  grep -E '^  (ok|FAIL) |^  \(' "$WORK/flow.log" | sed 's/^/  /'
  echo "  (deployed flow took $((SECONDS - t0)) s)"
}

# docs/deploy.md's `sh test` blocks, run by deploy_guide.py against the applied stack.
guide_check() {
  flow_paths
  if [[ ! -x "$WEIR_BIN" ]]; then
    skip "deploy guide (deploy_guide.py): missing $WEIR_BIN (build with tests/run.sh)"
    return
  fi
  local t0=$SECONDS
  counted "deploy guide: every tested block of docs/deploy.md against the applied envs/local" "$WORK/guide.log" \
    "$MOTO_VENV/bin/python" tests/deploy_guide.py "$ENDPOINT" "$WORK/outputs.json" "$STATE"
  grep -E '^  (ok|FAIL) ' "$WORK/guide.log" | sed 's/^/  /'
  echo "  (deploy guide took $((SECONDS - t0)) s)"
}

if preflight; then
  static_checks
  checkov_check
  moto_check
else
  checkov_check
fi
finish
