#!/usr/bin/env bash
# "See the siblings talk": the oracle check done right, on `distinct`, with the real model sampling.
#
#   bash experiments/studies/talk.sh heldout          # the base model's answers to the held-out questions, in constructed sets
#   bash experiments/studies/talk.sh seed 0           # one training seed: Bridge and P-Match trained on the same sets,
#                                         # the read of each, then sampled at W = 2 4 8 on the three paths
#   bash experiments/studies/talk.sh bridge 0         # the same for one arm (bridge or pmatch)
#   bash experiments/studies/talk.sh commit 0         # seed 0's Bridge as bridges/distinct.safetensors, evaluated afresh
#   bash experiments/studies/talk.sh grpo 0           # GRPO with the set credited, from seed 0's oracle Bridge
#
# Targets are CONSTRUCTED (experiments/studies/oracle.py --targets successor or free), not self-generated.
# The committed bridges/distinct.safetensors is the setting
#   VARIANT=free4 TARGETS=free NUMBER_WEIGHT=10 EPOCHS=4 bash experiments/studies/talk.sh seed 0   (then: commit 0)
# Every stage skips what is done; a stopped training is redone from its start (its blocks appear
# only when it ends). Wall times: experiments/results/talk/walltime.jsonl, with the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
DTYPE=${DTYPE:-fp32}
DEVICE=${DEVICE:-cpu}
RES=experiments/results/talk
RUNS=experiments/runs/talk
TASK=(--task distinct --max-new-tokens 32)
PATHS=(--paths siblings self crossed)
mkdir -p "$RES" "$RUNS"
source experiments/studies/stages.sh  # evaluate, timed, ...

# the warm-up answers of the first set-level study, three seeds pooled per training question
WARMUP=(experiments/results/siblings/seed0/sft_bridge/data.jsonl experiments/results/siblings/seed1/sft_bridge/data.jsonl
        experiments/results/siblings/seed2/sft_bridge/data.jsonl)
# choice: the number's cross-entropy weighted 1 beside the token mean, one pass over 16 sets a
# training question (78 steps of 8 sets); seed 0's teacher-forced read says whether that is enough
# A setting other than the first is a VARIANT of its own name (for example VARIANT=w10e2
# NUMBER_WEIGHT=10 EPOCHS=2, or TARGETS=free): its runs are seedS_VARIANT_ARCH, beside the first
# setting's seedS_ARCH.
ORACLE=(--targets "${TARGETS:-successor}" --number-weight "${NUMBER_WEIGHT:-1}" --epochs "${EPOCHS:-1}" --sets-per-question 16
        --lr-new 2e-3 --micro-groups 8)
# INIT=RUN (a run's name, e.g. seed0_free): each arm starts from RUN's blocks of that arm, a later
# stage of the same training (oracle.py --init)
HELDOUT=$RUNS/heldout/sets.jsonl

need() {  # $1 = a file a stage needs, $2 = the stage that makes it
  [ -f "$1" ] || { echo "error: $1 is missing: run 'bash experiments/studies/talk.sh $2' first" >&2; exit 1; }
}

heldout() {
  if [ ! -f "$HELDOUT" ] && [ -f "$RES/heldout_sets.jsonl" ]; then  # a fresh clone: the committed sets
    mkdir -p "$RUNS/heldout" && cp "$RES/heldout_sets.jsonl" "$HELDOUT"
  fi
  [ -f "$HELDOUT" ] && { echo "== $HELDOUT: done"; return; }
  timed talk/heldout python experiments/studies/oracle_read.py heldout --out "$RUNS/heldout"
  cp "$HELDOUT" "$RES/heldout_sets.jsonl"
}

oracle_run() {  # $1 = arch, $2 = seed, $3 = name, then more experiments/studies/oracle.py flags
  local arch=$1 seed=$2 name=$3; shift 3
  local out=$RUNS/$name
  if [ -n "${INIT:-}" ]; then
    need "$RUNS/${INIT}_$arch/checkpoint/bridge.safetensors" "seed $seed (with the setting of $INIT)"
    set -- "$@" --init "$RUNS/${INIT}_$arch/checkpoint/bridge.safetensors"
  fi
  if [ ! -f "$out/checkpoint/bridge.safetensors" ]; then
    rm -rf "$out" && mkdir -p "$out"
    timed "talk/$name" logged "$out" python experiments/studies/oracle.py --arch "$arch" --warmup "${WARMUP[@]}" \
      --out "$out" "${ORACLE[@]}" --seed "$seed" "$@"
  fi
  cp "$out/log.jsonl" "$RES/$name.log.jsonl"
  if [ -f "$out/args.json" ]; then cp "$out/args.json" "$RES/$name.args.json"; fi  # the targets it learnt
}

read_blocks() {  # $1 = name: the teacher-forced read of $RUNS/$1's blocks on the held-out sets
  need "$HELDOUT" heldout
  [ -f "$RES/${1}_read.json" ] && { echo "== $RES/${1}_read.json: done"; return; }
  timed "read/$1" python experiments/studies/oracle_read.py read --bridge "$RUNS/$1/checkpoint/bridge.safetensors" \
    --sets "$HELDOUT" --out "$RES/${1}_read.json"
}

case "${1:-}" in
  heldout)
    heldout
    ;;
  seed|bridge|pmatch)
    # seed: both arms, Bridge first; bridge / pmatch: one arm (two processes can train the two at once)
    seed=${2:?usage: bash experiments/studies/talk.sh seed SEED}
    run=seed$seed${VARIANT:+_$VARIANT}
    need "$HELDOUT" heldout
    EVAL=(--split test --problems 33 --n 32 --seed "$seed" --device "$DEVICE" "${TASK[@]}")
    if [ "$1" != pmatch ]; then
      oracle_run bridge "$seed" "${run}_bridge"
      read_blocks "${run}_bridge"
      evaluate "${run}_bridge" --bridge "$RUNS/${run}_bridge/checkpoint/bridge.safetensors" --widths 2 4 8 "${PATHS[@]}"
    fi
    if [ "$1" != bridge ]; then
      oracle_run pmatch "$seed" "${run}_pmatch"
      read_blocks "${run}_pmatch"
      evaluate "${run}_pmatch" --bridge "$RUNS/${run}_pmatch/checkpoint/bridge.safetensors" --widths 1 --set-sizes 2 4 8
    fi
    ;;
  commit)
    # the blocks a reader samples first: seed SEED's oracle Bridge, stored in bf16 as
    # bridges/distinct.safetensors, then that file evaluated at W = 4 with a sampling seed no run used.
    # It stays only if it passes the ceiling and its self path by two standard errors (the report
    # says); otherwise `git checkout bridges/distinct.safetensors` puts the earlier one back
    seed=${2:?usage: bash experiments/studies/talk.sh commit SEED}
    run=seed$seed${VARIANT:+_$VARIANT}
    need "$RUNS/${run}_bridge/checkpoint/bridge.safetensors" "seed $seed"
    # an earlier candidate's results stay, under its run's name (the report lists every candidate tried)
    if [ -f "$RES/candidate.json" ]; then
      was=$(sed -n 's/.*"run": *"\([^"]*\)".*/\1/p' "$RES/candidate.json")
      if [ "$was" != "$run" ]; then
        for kind in distinct fp32; do
          if [ -f "$RES/candidate_$kind.json" ]; then mv "$RES/candidate_$kind.json" "$RES/earlier_${was}_$kind.json"; fi
        done
      fi
    fi
    python -c "import sys; from bridgekit import checkpoint; checkpoint.convert_bridge(sys.argv[1], sys.argv[2], 'bf16')" \
      "$RUNS/${run}_bridge/checkpoint/bridge.safetensors" bridges/distinct.safetensors
    EVAL=(--split test --problems 33 --n 32 --seed 7 --device "$DEVICE" "${TASK[@]}")
    evaluate candidate_distinct --bridge bridges/distinct.safetensors --widths 4 --paths siblings self
    # the same run's fp32 blocks with the same seed: what storing them in bf16 changes
    evaluate candidate_fp32 --bridge "$RUNS/${run}_bridge/checkpoint/bridge.safetensors" --widths 4 --paths siblings self
    echo "{\"run\": \"$run\"}" > "$RES/candidate.json"  # which run the candidate file is
    ;;
  grpo)
    seed=${2:?usage: bash experiments/studies/talk.sh grpo SEED}
    run=seed$seed${VARIANT:+_$VARIANT}
    need "$RUNS/${run}_bridge/checkpoint/bridge.safetensors" "seed $seed"
    STEPS=${STEPS:-40}
    EVAL=(--split test --problems 33 --n 32 --seed "$seed" --device "$DEVICE" "${TASK[@]}")
    arm_eval_flags() { echo "--widths 2 4 8 ${PATHS[*]}"; }
    # choice: the credit study's recipe (2 sets of 4 per prompt, the set credited per answer, the
    # blocks' learning rate 1e-3), only the blocks training so that the base model cannot drift
    arm "$RUNS/grpo_$run" "$seed" bridge "grpo_${run}_bridge" --arch bridge --train new --sets 2 \
      --lr-new 1e-3 --credit answer --init "$RUNS/${run}_bridge/checkpoint/bridge.safetensors"
    ;;
  *)
    echo "usage: bash experiments/studies/talk.sh heldout | seed SEED | bridge SEED | pmatch SEED | commit SEED | grpo SEED" >&2; exit 2
    ;;
esac
