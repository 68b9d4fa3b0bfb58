#!/usr/bin/env bash
# "Making the siblings pay" (README): the set-level task `distinct` again, with the credit fixed.
#
#   bash experiments/studies/credit.sh oracle          # the oracle check: blocks alone on constructed sibling-dependent sets
#   bash experiments/studies/credit.sh pilot           # which credit: Bridge, seed 0, each credit for PILOT_STEPS steps (train split)
#   bash experiments/studies/credit.sh seed 0          # one seed: warm-ups, then RLVR only, P-Match, Bridge trained + evaluated
#   bash experiments/studies/credit.sh committed       # the fixed-randomness comparison of the committed Bridges
#   bash experiments/studies/credit.sh mul2            # the same for the mul2 study's Bridge, seed 0 retrained as it was
#   python experiments/studies/credit_report.py       # the README section from experiments/results/credit/*.json
#
# Every stage skips what is already done (experiments/studies/stages.sh). Wall times: experiments/results/credit/walltime.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
DTYPE=${DTYPE:-fp32}
DEVICE=${DEVICE:-cpu}
RES=experiments/results/credit
TASK=(--task distinct --max-new-tokens 32)
# the held-out protocol: every test question of the family (33), 16 answers each, so that every
# width 2 4 8 has an even number of sets per question (the crossed path pairs them)
EVAL=(--split test --problems 33 --n 16 --device "$DEVICE" "${TASK[@]}")
PATHS=(--paths siblings self crossed)
mkdir -p "$RES"
source experiments/studies/stages.sh  # evaluate, timed, ...

# the warm-up answers of the first study, three seeds pooled per training question
WARMUP=(experiments/results/siblings/seed0/sft_bridge/data.jsonl experiments/results/siblings/seed1/sft_bridge/data.jsonl
        experiments/results/siblings/seed2/sft_bridge/data.jsonl)
ORACLE=(--steps "${ORACLE_STEPS:-60}" --lr-new 2e-3 --micro-groups 8 --seed 0)

# the GRPO study. choice: 2 sets of width 4 per prompt, the advantage over their 8 answers
# (train_grpo.py --sets); the blocks' learning rate 1e-3 (the first study's 1e-4 moved them by at
# most ~0.004 per weight over its 40 steps); STEPS from the pilot's seconds per step
STEPS=${STEPS:-60}
SETS=(--sets 2 --lr-new 1e-3)
CREDIT=${CREDIT:-}
SFT_FLAGS=(--problems 39 --samples-per-problem 16)
BRIDGE_WIDTHS=(--widths 1 2 4 8 "${PATHS[@]}")
ALONE_WIDTHS=(--widths 1 --set-sizes 2 4 8)
arm_eval_flags() {  # Bridge at every width and path; the arms without a path between rows at width 1, pooled
  if [ "$1" = bridge ]; then echo "${BRIDGE_WIDTHS[*]}"; else echo "${ALONE_WIDTHS[*]}"; fi
}
chosen_credit() {  # the pilot's choice (experiments/results/credit/pilot.json), unless CREDIT is set
  if [ -n "$CREDIT" ]; then echo "$CREDIT"; return; fi
  python -c "import json; print(json.load(open('$RES/pilot.json'))['chosen'])"
}
warmups() {  # $1 = seed: the first study's sampled warm-up answers, trained again (the same blocks)
  local dir=experiments/runs/credit/seed$1
  mkdir -p "$dir/sft_bridge"
  [ -f "$dir/sft_bridge/data.jsonl" ] || cp "experiments/results/siblings/seed$1/sft_bridge/data.jsonl" "$dir/sft_bridge/data.jsonl"
  sft "$dir" "$1" bridge
  sft "$dir" "$1" pmatch
}

case "${1:-}" in
  oracle)
    for arch in bridge pmatch; do
      out=experiments/runs/credit/oracle_$arch
      if [ ! -f "$out/checkpoint/bridge.safetensors" ]; then
        mkdir -p "$out"
        timed "credit/oracle_$arch" logged "$out" python experiments/studies/oracle.py --arch "$arch" --warmup "${WARMUP[@]}" \
          --out "$out" "${ORACLE[@]}" --device "$DEVICE"
      fi
    done
    evaluate oracle_bridge --bridge experiments/runs/credit/oracle_bridge/checkpoint/bridge.safetensors \
      --widths 1 2 4 8 "${PATHS[@]}" --seed 0
    evaluate oracle_pmatch --bridge experiments/runs/credit/oracle_pmatch/checkpoint/bridge.safetensors \
      --widths 1 --set-sizes 2 4 8 --seed 0
    cp experiments/runs/credit/oracle_bridge/log.jsonl "$RES/oracle_bridge.log.jsonl"
    cp experiments/runs/credit/oracle_pmatch/log.jsonl "$RES/oracle_pmatch.log.jsonl"
    ;;
  pilot)
    # choice: the credit is chosen on the TRAINING split only: the Bridge arm of seed 0 with each
    # credit for PILOT_STEPS steps; the pick is the credit whose rollouts score best per answer
    # over the second half of the steps (the log's acc), the same for every arm afterwards
    PILOT_STEPS=${PILOT_STEPS:-20}
    warmups 0
    for credit in answer team difference; do
      STEPS=$PILOT_STEPS train_arm experiments/runs/credit/pilot 0 "bridge_$credit" --arch bridge --train all "${SETS[@]}" \
        --credit "$credit" --init experiments/runs/credit/seed0/sft_bridge/checkpoint/bridge.safetensors
      cp "experiments/runs/credit/pilot/grpo_bridge_$credit/log.jsonl" "$RES/pilot_$credit.log.jsonl"
    done
    python experiments/studies/credit_report.py --pilot "$RES"
    ;;
  seed)
    seed=${2:?usage: bash experiments/studies/credit.sh seed SEED}
    credit=$(chosen_credit)
    # choice: 32 answers per question (8 sets at W = 4, 4 at W = 8), so that a difference of 3
    # points in per-answer score is about two standard errors; evaluation randomness varies with
    # the training seed
    EVAL=(--split test --problems 33 --n 32 --seed "$seed" --device "$DEVICE" "${TASK[@]}")
    dir=experiments/runs/credit/seed$seed
    warmups "$seed"
    arm "$dir" "$seed" rlvr "seed${seed}_rlvr" --arch none --train all "${SETS[@]}" --credit "$credit"
    arm "$dir" "$seed" pmatch "seed${seed}_pmatch" --arch pmatch --train all "${SETS[@]}" --credit "$credit" \
      --init "$dir/sft_pmatch/checkpoint/bridge.safetensors"
    arm "$dir" "$seed" bridge "seed${seed}_bridge" --arch bridge --train all "${SETS[@]}" --credit "$credit" \
      --init "$dir/sft_bridge/checkpoint/bridge.safetensors"
    ;;
  committed)
    # the same sets sampled with each path, for the two committed Bridges: the set-level one on its
    # task (as the oracle), and the default one on the default task (its first study's protocol:
    # 200 held-out problems, 8 answers each, at its training width 4)
    evaluate committed_distinct --bridge experiments/results/siblings/distinct_blocks.safetensors --widths 2 4 8 "${PATHS[@]}" --seed 0
    EVAL=(--problems 200 --n 8 --device "$DEVICE" --seed 0)
    evaluate committed_default --bridge bridges/default.safetensors --widths 4 "${PATHS[@]}"
    ;;
  mul2)
    # the mul2 study's (experiments/studies/headroom.sh) Bridge checkpoints were not kept: seed 0 retrained with
    # that study's flags, on its committed warm-up answers, then its 200 held-out problems at the
    # width it trained at and half of it, each set sampled with the three paths
    TASK=(--task mul2 --hi 99 --max-new-tokens 96)
    SFT_FLAGS=()
    dir=experiments/runs/credit/mul2_seed0
    mkdir -p "$dir/sft_bridge"
    [ -f "$dir/sft_bridge/data.jsonl" ] || cp experiments/results/headroom/seed0/sft_bridge/data.jsonl "$dir/sft_bridge/data.jsonl"
    sft "$dir" 0 bridge
    EVAL=(--split test --problems 200 --n 8 --seed 0 --device "$DEVICE" "${TASK[@]}")
    arm_eval_flags() { echo "--widths 2 4 ${PATHS[*]}"; }
    arm "$dir" 0 bridge mul2_bridge --arch bridge --train all --init "$dir/sft_bridge/checkpoint/bridge.safetensors"
    ;;
  *)
    echo "usage: bash experiments/studies/credit.sh oracle | pilot | seed SEED | committed | mul2" >&2; exit 2
    ;;
esac
