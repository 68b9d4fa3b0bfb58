#!/usr/bin/env bash
# The core of docs/speed.md on another machine, for the tables "the same measurements on other
# machines": where one decode step goes (packed weights and F.linear), the sampler against
# transformers' generate (fp32 and bf16, widths 4 and 16), the cost of the Bridge blocks (whole
# decode steps, off and on, and one block stage by stage), and one GRPO step against TRL's
# GRPOTrainer. No end-to-end runs: those stay in experiments/bench/speed.sh.
# Run it alone (2 cores are easily shared); each part skips what its file already holds.
#
#   bash experiments/bench/speed_machine.sh DIR      # DIR: experiments/results/speed/machines/<a name for the machine>
#   python experiments/bench/speed_report.py        # then rewrite docs/speed.md's speed section
#
# About 32 minutes on 2 cores (Intel Xeon with AMX, 2026-12-01, less the 3 of a --compile run since
# removed): each profile 1, one block stage by
# stage 1, the sampler 3, the blocks 6, each of the three GRPO runs
# against TRL 6.5-7 (TRL needs pip install -e ".[bench]").
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 1 ] || { echo "usage: bash experiments/bench/speed_machine.sh experiments/results/speed/machines/NAME" >&2; exit 2; }
OUT=$1
source experiments/bench/once.sh  # once FILE COMMAND...: skipped when FILE is already written; measure_into, profile_steps

measure_into "$OUT"
profile_steps "$OUT"  # one decode step at width 16 (fp32), by kind of op: packed weights, then F.linear
once "$OUT/block_cost.md" python experiments/bench/block_cost.py --out "$OUT/block_cost.json" --overwrite
once "$OUT/sampler.md" python experiments/bench/bench_sampler.py --what sampler --dtypes fp32 bf16 --widths 4 16 --out "$OUT/sampler.json" --overwrite
once "$OUT/bridge.md" python experiments/bench/bench_sampler.py --what bridge --bridge-widths 16 --repeats 5 --out "$OUT/bridge.json" --overwrite
once "$OUT/grpo_trl.md" python experiments/bench/bench_grpo.py --grpo-steps 3 --trl-micro-batch 8 --out "$OUT/grpo_trl.json" --overwrite
#    twice more: the step time of either engine moves from run to run
for k in 2 3; do
  once "$OUT/grpo_trl_run$k.md" python experiments/bench/bench_grpo.py --grpo-steps 3 --trl-micro-batch 8 --out "$OUT/grpo_trl_run$k.json" --overwrite
done
