#!/usr/bin/env bash
# "Do the siblings matter?" (README): the set-level task `distinct` (name something, then pick a
# number 1..9 that no sibling picks). The base model and three arms trained from it with GRPO on
# the group reward at width 4 (RLVR only, P-Match, Bridge), several seeds, each evaluated on the
# held-out questions (n = 8 answers per question; Bridge at widths 1 2 4 8, width 1 also scored as
# pseudo-groups of 2, 4 and 8 independent answers, against the exact independent ceiling).
#
#   bash runs/siblings.sh base          # evaluate the base model
#   bash runs/siblings.sh seed 0        # one seed: warm-ups, then per arm train + evaluate
#   bash runs/siblings.sh blocks        # bridges/distinct.safetensors (blocks only), evaluated
#   python tools/siblings_report.py     # the README section from results/siblings/*.json
#
# Every stage skips what is already done (the same rules as runs/reproduce.sh): an arm whose
# results JSON exists is done; an arm with a checkpoint resumes; a warm-up reuses its sampled data.
# Wall time of every command is appended to results/siblings/walltime.jsonl with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-40}      # choice: sized from a pilot (README, "Do the siblings matter?")
DTYPE=${DTYPE:-fp32}
DEVICE=${DEVICE:-cpu}
RES=results/siblings
TASK=(--task distinct --max-new-tokens 32)
# the held-out protocol: every test question of the family (33), 8 answers each. Bridge is sampled
# at widths 1 2 4 8. # choice: the base model, RLVR only and P-Match have no path between rows, so
# their answers at any width are independent draws from one distribution: they are sampled at
# width 1 only and scored in pseudo-groups of 2, 4 and 8 (the same distribution, a quarter of the cost)
EVAL=(--split test --problems 33 --n 8 --seed 0 --device "$DEVICE" "${TASK[@]}")
BRIDGE_WIDTHS=(--widths 1 2 4 8)
ALONE_WIDTHS=(--widths 1 --set-sizes 2 4 8)
mkdir -p "$RES"

machine() { python -c "import evaluate; print(evaluate.machine('$DEVICE'))"; }

timed() {  # $1 = stage name, then the command; appends its wall time to walltime.jsonl
  local stage=$1; shift
  local t0; t0=$(date +%s)
  "$@"
  local t1; t1=$(date +%s)
  printf '{"stage": "%s", "seconds": %d, "machine": "%s", "finished": "%s"}\n' \
    "$stage" $((t1 - t0)) "$(machine)" "$(date '+%Y-%m-%d %H:%M:%S')" >> "$RES/walltime.jsonl"
}

evaluate() {  # $1 = results name, then evaluate.py flags
  local name=$1; shift
  [ -f "$RES/$name.json" ] && { echo "== $RES/$name.json: done"; return; }
  timed "eval/$name" python evaluate.py "$@" "${EVAL[@]}" --out "$RES/$name.json.tmp"
  mv "$RES/$name.json.tmp" "$RES/$name.json"
}

sft() {  # $1 = seed dir, $2 = seed, $3 = arch
  local out=$1/sft_$3
  [ -f "$out/checkpoint/state.pt" ] && { echo "== $out: warm-up done"; return; }
  mkdir -p "$out"
  if [ ! -f "$out/data.jsonl" ] && [ -f "$1/sft_bridge/data.jsonl" ]; then
    cp "$1/sft_bridge/data.jsonl" "$out/data.jsonl"
  fi
  # choice: every training question (39), 16 answers each: the warm-up keeps, per question, one
  # finished valid answer per distinct number, so its groups are sets of different numbers
  timed "${1#runs/}/sft_$3" bash -c "set -o pipefail; python train_sft.py --arch $3 --out $out --seed $2 \
    --problems 39 --samples-per-problem 16 ${TASK[*]} --dtype $DTYPE --device $DEVICE --show-every 10 \
    2>&1 | tee -a $out/stdout.txt"
}

train_arm() {  # $1 = seed dir, $2 = seed, $3 = arm, then train_grpo.py flags; trains to STEPS steps
  local dir=$1 seed=$2 arm=$3; shift 3
  local out=$dir/grpo_$arm resume=() steps=0
  [ -f "$out/log.jsonl" ] && steps=$(wc -l < "$out/log.jsonl")
  if [ -f "$out/checkpoint/state.pt" ]; then
    [ "$steps" -ge "$STEPS" ] && { echo "== $out: trained ($steps steps)"; return; }
    resume=(--resume)
  fi
  mkdir -p "$out"
  timed "${dir#runs/}/grpo_$arm" bash -c "set -o pipefail; python train_grpo.py --out $out --steps $STEPS ${resume[*]} $* \
    ${TASK[*]} --seed $seed --dtype $DTYPE --device $DEVICE --show-every 10 2>&1 | tee -a $out/stdout.txt"
  steps=$(wc -l < "$out/log.jsonl")
  [ "$steps" -eq "$STEPS" ] || { echo "$out: log has $steps steps, expected $STEPS" >&2; exit 1; }
}

arm() {  # $1 = seed dir, $2 = seed, $3 = arm, $4 = results name, then train_grpo.py flags
  local dir=$1 seed=$2 arm=$3 name=$4; shift 4
  local out=$dir/grpo_$arm
  [ -f "$RES/$name.json" ] && { echo "== $RES/$name.json: done"; return; }
  train_arm "$dir" "$seed" "$arm" "$@"
  local flags=()
  [ -f "$out/checkpoint/config.json" ] && flags+=(--model "$out/checkpoint")
  [ -f "$out/checkpoint/bridge.safetensors" ] && flags+=(--bridge "$out/checkpoint/bridge.safetensors")
  if [ "$arm" = bridge ]; then flags+=("${BRIDGE_WIDTHS[@]}"); else flags+=("${ALONE_WIDTHS[@]}"); fi
  evaluate "$name" "${flags[@]}"
  cp "$out/log.jsonl" "$RES/$name.log.jsonl"  # the train reward per step, committed with the results
  if [ "${CLEAN:-0}" = 1 ] && [ -f "$out/checkpoint/config.json" ]; then rm -rf "$out/checkpoint"; fi
}

case "${1:-}" in
  base)
    evaluate base "${ALONE_WIDTHS[@]}"
    ;;
  seed)
    seed=${2:?usage: bash runs/siblings.sh seed SEED}
    dir=runs/siblings/seed$seed
    sft "$dir" "$seed" bridge
    sft "$dir" "$seed" pmatch
    arm "$dir" "$seed" rlvr "seed${seed}_rlvr" --arch none --train all
    arm "$dir" "$seed" pmatch "seed${seed}_pmatch" --arch pmatch --train all \
      --init "$dir/sft_pmatch/checkpoint/bridge.safetensors"
    arm "$dir" "$seed" bridge "seed${seed}_bridge" --arch bridge --train all \
      --init "$dir/sft_bridge/checkpoint/bridge.safetensors"
    ;;
  blocks)
    # the committed blocks-only Bridge for `distinct` (python sample.py --width 4 --task distinct):
    # only the new blocks train (--train new, a file of a few MB), from seed 0's warm-up, stored in bf16
    [ -f "$RES/distinct_bridge.json" ] && { echo "== $RES/distinct_bridge.json: done"; exit 0; }
    sft runs/siblings/seed0 0 bridge
    train_arm runs/siblings/seed0 0 bridge_new --arch bridge --train new \
      --init runs/siblings/seed0/sft_bridge/checkpoint/bridge.safetensors
    mkdir -p bridges
    python -c "import sys, checkpoint; checkpoint.convert_bridge(sys.argv[1], sys.argv[2], 'bf16')" \
      runs/siblings/seed0/grpo_bridge_new/checkpoint/bridge.safetensors bridges/distinct.safetensors
    evaluate distinct_bridge --bridge bridges/distinct.safetensors "${BRIDGE_WIDTHS[@]}"
    cp runs/siblings/seed0/grpo_bridge_new/log.jsonl "$RES/distinct_bridge.log.jsonl"
    ;;
  *)
    echo "usage: bash runs/siblings.sh base | seed SEED | blocks" >&2; exit 2
    ;;
esac
