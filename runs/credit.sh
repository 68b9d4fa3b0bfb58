#!/usr/bin/env bash
# "Making the siblings pay" (README): the set-level task `distinct` again, with the credit fixed.
#
#   bash runs/credit.sh oracle          # the oracle check: blocks alone on constructed sibling-dependent sets
#   python tools/credit_report.py       # the README section from results/credit/*.json
#
# Every stage skips what is already done (runs/stages.sh). Wall times: results/credit/walltime.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
DTYPE=${DTYPE:-fp32}
DEVICE=${DEVICE:-cpu}
RES=results/credit
TASK=(--task distinct --max-new-tokens 32)
# the held-out protocol: every test question of the family (33), 16 answers each, so that every
# width 2 4 8 has an even number of sets per question (the crossed path pairs them)
EVAL=(--split test --problems 33 --n 16 --device "$DEVICE" "${TASK[@]}")
PATHS=(--paths siblings self crossed)
mkdir -p "$RES"
source runs/stages.sh  # evaluate, timed, ...

# the warm-up answers of the first study, three seeds pooled per training question
WARMUP=(runs/siblings/seed0/sft_bridge/data.jsonl runs/siblings/seed1/sft_bridge/data.jsonl
        runs/siblings/seed2/sft_bridge/data.jsonl)
ORACLE=(--steps "${ORACLE_STEPS:-120}" --lr-new 2e-3 --micro-groups 8 --seed 0)

case "${1:-}" in
  oracle)
    for arch in bridge pmatch; do
      out=runs/credit/oracle_$arch
      if [ ! -f "$out/checkpoint/bridge.safetensors" ]; then
        mkdir -p "$out"
        timed "credit/oracle_$arch" logged "$out" python tools/oracle.py --arch "$arch" --warmup "${WARMUP[@]}" \
          --out "$out" "${ORACLE[@]}" --device "$DEVICE"
      fi
    done
    evaluate oracle_bridge --bridge runs/credit/oracle_bridge/checkpoint/bridge.safetensors \
      --widths 1 2 4 8 "${PATHS[@]}" --seed 0
    evaluate oracle_pmatch --bridge runs/credit/oracle_pmatch/checkpoint/bridge.safetensors \
      --widths 1 --set-sizes 2 4 8 --seed 0
    cp runs/credit/oracle_bridge/log.jsonl "$RES/oracle_bridge.log.jsonl"
    cp runs/credit/oracle_pmatch/log.jsonl "$RES/oracle_pmatch.log.jsonl"
    ;;
  *)
    echo "usage: bash runs/credit.sh oracle" >&2; exit 2
    ;;
esac
