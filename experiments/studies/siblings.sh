#!/usr/bin/env bash
# "Do the siblings matter?" (docs/results.md): the set-level task `distinct` (name something, then pick a
# number 1..9 that no sibling picks). The base model and three arms trained from it with GRPO on
# the group reward at width 4 (RLVR only, P-Match, Bridge), several seeds, each evaluated on the
# held-out questions (n = 8 answers per question; Bridge at widths 1 2 4 8, width 1 also scored as
# pseudo-groups of 2, 4 and 8 independent answers, against the exact independent ceiling).
#
#   bash experiments/studies/siblings.sh base          # evaluate the base model
#   bash experiments/studies/siblings.sh seed 0        # one seed: warm-ups, then per arm train + evaluate
#   bash experiments/studies/siblings.sh blocks        # experiments/results/siblings/distinct_blocks.safetensors (blocks only), evaluated
#   python experiments/studies/siblings_report.py     # its section of docs/results.md from experiments/results/siblings/*.json
#
# Every stage skips what is already done (experiments/studies/stages.sh). Wall times: experiments/results/siblings/walltime.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-40}      # choice: sized from a pilot (docs/results.md, "Do the siblings matter?")
DTYPE=${DTYPE:-fp32}
DEVICE=${DEVICE:-cpu}
RES=experiments/results/siblings
TASK=(--task distinct --max-new-tokens 32)
# the held-out protocol: every test question of the family (33), 8 answers each. Bridge is sampled
# at widths 1 2 4 8. # choice: the base model, RLVR only and P-Match have no path between rows, so
# their answers at any width are independent draws from one distribution: they are sampled at
# width 1 only and scored in pseudo-groups of 2, 4 and 8 (the same distribution, a quarter of the cost)
EVAL=(--split test --problems 33 --n 8 --seed 0 --device "$DEVICE" "${TASK[@]}")
BRIDGE_WIDTHS=(--widths 1 2 4 8)
ALONE_WIDTHS=(--widths 1 --set-sizes 2 4 8)
mkdir -p "$RES"

SFT_FLAGS=(--problems 39 --samples-per-problem 16)
# choice: every training question (39), 16 answers each: the warm-up keeps, per question, one
# finished valid answer per distinct number, so its groups are sets of different numbers

arm_eval_flags() {  # Bridge at every width; the arms without a path between rows at width 1, pooled
  if [ "$1" = bridge ] || [ "$1" = bridge_new ]; then echo "${BRIDGE_WIDTHS[*]}"; else echo "${ALONE_WIDTHS[*]}"; fi
}
source experiments/studies/stages.sh  # evaluate, sft, train_arm, arm, three_arms, blocks_only

case "${1:-}" in
  base)
    evaluate base "${ALONE_WIDTHS[@]}"
    ;;
  seed)
    seed=${2:?usage: bash experiments/studies/siblings.sh seed SEED}
    three_arms "experiments/runs/siblings/seed$seed" "$seed"
    ;;
  blocks)
    # the blocks-only Bridge for `distinct` (bridges/distinct.safetensors until the oracle's replaced it)
    blocks_only experiments/runs/siblings/seed0 distinct_bridge experiments/results/siblings/distinct_blocks.safetensors "${BRIDGE_WIDTHS[@]}"
    ;;
  *)
    echo "usage: bash experiments/studies/siblings.sh base | seed SEED | blocks" >&2; exit 2
    ;;
esac
