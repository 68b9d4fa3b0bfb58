#!/usr/bin/env bash
# The measurements behind docs/speed.md: where a decode step goes, the sampler against
# transformers' generate, Bridge on/off, and the end-to-end effect on one
# evaluation and on GRPO steps. Run it alone: 2 cores are easily shared, and a second process
# halves every number. Each part skips what its file already holds.
#
#   bash experiments/bench/speed.sh         # about 80 minutes on 2 CPU cores (AMD EPYC): 37 minutes for all parts in one run
#                               # on 2026-11-30, before parts 2-4 grew the frozen --compile, which measured
#                               # 11 (sampler), 15 (blocks) and 15 minutes (the --compile evaluation) that day;
#                               # later that day the blocks with --repeats 5 took 20 minutes, each profile about
#                               # one, and the second GRPO-against-TRL run 9; block_cost.py takes about 2
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=experiments/results/speed
source experiments/bench/once.sh  # once FILE COMMAND...: skipped when FILE is already written; measure_into, profile_steps

measure_into "$OUT"
# (before/ holds the earlier runs the report compares with, named by the commit they measured)
# 1. one decode step at width 16 (fp32), by kind of op: packed weights (fast.packed_linears), then F.linear,
profile_steps "$OUT"
#    and the packed step with 30 random non-zero Bridge blocks: what the blocks add, by kind of op
once "$OUT/profile_w16_bridge.md" python experiments/bench/profile_step.py --width 16 --bridge --out "$OUT/profile_w16_bridge.json" --overwrite
# 2. the sampler against generate, fp32 and bf16 weights, widths 4 and 16, also with F.linear in
#    place of the packed weights. (experiments/results/speed holds the runs with the --compile engine made before
#    it was removed; the report reads them as they are.)
once "$OUT/sampler.md" python experiments/bench/bench_sampler.py --what sampler --dtypes fp32 bf16 --widths 4 16 \
  --plain --out "$OUT/sampler.json" --overwrite
# 3. Bridge and P-Match off/on at width 16, also with F.linear
once "$OUT/bridge.md" python experiments/bench/bench_sampler.py --what bridge --bridge-widths 16 --plain --repeats 5 \
  --out "$OUT/bridge.json" --overwrite
#    and one Bridge block stage by stage, alone and inside decode steps (about 2 minutes)
once "$OUT/block_cost.md" python experiments/bench/block_cost.py --out "$OUT/block_cost.json" --overwrite
# 4. end to end: one evaluation stage of the first study's protocol on 40 problems (eval_compile.json
#    is the same with the --compile of that time, kept as measured)
once "$OUT/eval_plain.md" python evaluate.py --fast --bridge bridges/default.safetensors --problems 40 --n 8 \
  --widths 1 2 4 8 --seed 0 --out "$OUT/eval_plain.json" --overwrite
# 4b. the same evaluation in bf16 weights: its time, and how many answers move
once "$OUT/eval_bf16.md" python evaluate.py --fast --bridge bridges/default.safetensors --problems 40 --n 8 \
  --widths 1 2 4 8 --seed 0 --dtype bf16 --out "$OUT/eval_bf16.json" --overwrite
# 5. end to end: 6 GRPO steps of the first study's Bridge arm (from a fresh block). (The same with
#    the --compile of commit 57c38b0, whose rollouts compiled without freezing, is kept in before/.)
rm -rf /tmp/speed_grpo_plain
once "$OUT/grpo_plain.log.jsonl" bash -c "python train_grpo.py --fast --out /tmp/speed_grpo_plain --steps 6 --arch bridge \
  --train all --seed 0 --show-every 0 > /dev/null && cat /tmp/speed_grpo_plain/log.jsonl"
# 6. one GRPO step against TRL's GRPOTrainer, 3 timed steps each (needs pip install -e ".[bench]");
#    TRL in micro-batches of 8 rows: its 32-row default peaks at 22 GB, this machine's whole memory
once "$OUT/grpo_trl.md" python experiments/bench/bench_grpo.py --grpo-steps 3 --trl-micro-batch 8 --out "$OUT/grpo_trl.json" --overwrite
#    and a second run of the same (the step time of either engine moves from run to run; 9 minutes)
once "$OUT/grpo_trl_run2.md" python experiments/bench/bench_grpo.py --grpo-steps 3 --trl-micro-batch 8 --out "$OUT/grpo_trl_run2.json" --overwrite
#    and a third (added 2026-11-30: the goal is at least 4x in every run)
once "$OUT/grpo_trl_run3.md" python experiments/bench/bench_grpo.py --grpo-steps 3 --trl-micro-batch 8 --out "$OUT/grpo_trl_run3.json" --overwrite
# 7. both paths (every command's naive default and --fast) against the same peers, in one sitting
#    (docs/speed.md "Both paths", written by experiments/bench/paths_report.py)
once "$OUT/sampler_naive.md" python experiments/bench/bench_sampler.py --what sampler --dtypes fp32 --widths 4 16 --naive \
  --out "$OUT/sampler_naive.json" --overwrite
once "$OUT/grpo_trl_naive.md" python experiments/bench/bench_grpo.py --grpo-engines ours naive trl --grpo-steps 3 \
  --trl-micro-batch 8 --out "$OUT/grpo_trl_naive.json" --overwrite
once "$OUT/eval_paths.txt" python experiments/bench/bench_paths.py --out "$OUT/eval_paths.json" --overwrite
python -c "from bridgekit.result_files import machine; print(machine('cpu'))" > "$OUT/paths_machine.txt"
