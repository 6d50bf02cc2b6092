#!/usr/bin/env bash
# Runs the CDK assertion tests in infra/, which has its own package.json and lockfile so the
# app's install never pulls aws-cdk-lib. Installs infra's dependencies only when they are
# missing or older than the lockfile, then tests and synthesizes (offline: no account, no lookups).
set -euo pipefail
cd "$(dirname "$0")/.."

# npm writes node_modules/.package-lock.json on every install: its age is the install's age.
installed=infra/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ infra/package-lock.json -nt "$installed" ]; then
  echo "test-infra: installing infra dependencies (npm ci)"
  npm ci --prefix infra --no-audit --no-fund
fi

npm test --prefix infra
# Synthesis through the CDK CLI and bin/ as an operator runs it; the tests build the stack directly.
npm run synth --prefix infra --silent
echo "test-infra: synth OK ($(du -k infra/cdk.out/*.template.json | cut -f1) KiB template)"
