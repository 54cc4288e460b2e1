#!/usr/bin/env bash
# Redrives the retry DLQ of a deployed stack once the cause of the failures is fixed: reopens each failed operation
# and re-enqueues it, so the retry worker replays it exactly once (`openmeet-local redrive`, with the retry worker's
# own configuration read from AWS). Needs the AWS CLI with credentials for the stack's account and region.
#
#   scripts/redrive.sh STACK_NAME
#
# SQS's own "start DLQ redrive" is not enough: the operations of those messages are marked failed, and the worker
# acknowledges a failed operation's message without replaying it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stack=${1:?usage: scripts/redrive.sh STACK_NAME}

function_name=$(aws cloudformation describe-stack-resource --stack-name "$stack" \
  --logical-resource-id RetryWorkerFunction --query StackResourceDetail.PhysicalResourceId --output text)
environment=$(aws lambda get-function-configuration --function-name "$function_name" \
  --query Environment.Variables --output json)
cargo build --release --locked -p openmeet-local

# The variables go to the command's environment only: nothing is printed or written to disk.
exports=$(python3 -c '
import json, shlex, sys
for name, value in json.load(sys.stdin).items():
    print(f"export {name}={shlex.quote(value)}")
' <<<"$environment")
eval "$exports"
exec target/release/openmeet-local redrive
