"""Every metric name a training run writes to metrics.jsonl (and wandb), with its meaning.

The declared list the docs are generated from (`python tools/gen_docs.py` writes
docs/metrics.md) and a test holds training to (a short quickstart may write no name missing
here). A new metric gets its line here in the same change that logs it. Names are
`group/name`; `step` is the row's key. Rates and shares are over the step's samples unless
a line says otherwise.
"""
from __future__ import annotations

from typing import Dict

from rlvr.rewards.labels import LABELS, family

METRICS: Dict[str, str] = {
    "step": "the RL step the row belongs to (0: the evaluation before training)",
    # the two reward channels
    "gt/reward_mean": "mean ground-truth reward of the step's samples",
    "gt/accuracy": "share of the step's samples the ground truth gives full credit (gt >= 1)",
    "proxy/reward_mean": "mean proxy reward (what the policy is trained on)",
    "reward/error_rate": "share of samples whose proxy differs from the ground truth",
    "reward/false_positive_rate": "P(proxy pass | gt fail): rho0 as measured on the step's samples",
    "reward/false_negative_rate": "P(proxy fail | gt pass): rho1 as measured on the step's samples",
    "reward/table_pp_gp": "share of samples that pass under both proxy and ground truth",
    "reward/table_pp_gf": "share that pass under the proxy and fail under the ground truth",
    "reward/table_pf_gp": "share that fail under the proxy and pass under the ground truth",
    "reward/table_pf_gf": "share that fail under both",
    "reward/proxy_std": "mean over prompt groups of the proxy's standard deviation within the group",
    "reward/gt_std": "mean over prompt groups of the ground truth's standard deviation within the group",
    "reward/zero_proxy_variance_groups": "share of prompt groups whose proxy is flat (no learning signal)",
    "reward/gt_flat_proxy_varied_groups": "share of groups where the ground truth is flat but the proxy varies",
    "reward/verifier_error_rate": "share of samples the verifier could not judge (timeout, unparsable answer or gold)",
    "reward/kl_penalty_mean": "with algorithm.kl_in=reward: mean KL penalty subtracted from the proxy",
    # noise kept apart from error (docs/labels.md): expected = E[proxy | prompt, response]
    "reward/systematic_error_rate": "share of samples whose systematic proxy (noise undone) differs from the ground truth",
    "reward/signal_scale": "slope of the expected proxy on the ground truth (1 - rho0 - rho1 under flip noise)",
    "reward/signal_var": "mean within-group variance of the expected proxy (the signal the policy can follow)",
    "reward/noise_var": "mean variance of the proxy around its expected value (the design's noise)",
    "reward/snr": "reward/signal_var / reward/noise_var (inf without noise)",
    "reward/proxy_variance": "rlvr rm-eval: mean over prompts of the proxy's within-prompt variance under the policy",
    "reward/proxy_gt_correlation": "rlvr rm-eval: correlation of the proxy with the ground truth over the policy's samples",
    # online error labels (a diagnostic heuristic, rlvr/rewards/labels.py)
    "errors/harmful": "share of samples whose error the online heuristic labels harmful",
    "errors/benign": "share of samples whose error the online heuristic labels benign",
    "errors/beneficial": "share of samples whose error the online heuristic labels beneficial",
    # held-out evaluation (every eval_every steps, at step 0 and at the end)
    "eval/gt_accuracy": "held-out greedy ground-truth accuracy",
    "eval/gt_reward_mean": "held-out greedy mean ground-truth reward",
    "eval/gt_accuracy_sampled": "with eval.samples_per_prompt = k: accuracy of k sampled answers per held-out prompt",
    "eval/pass_at_k": "with eval.samples_per_prompt = k: share of held-out prompts with a correct answer among k",
    # the policy update (means over the step's tokens unless said otherwise)
    "loss": "the policy loss of the step's update(s)",
    "policy/entropy": "mean per-token entropy of the policy on the step's responses",
    "policy/clip_fraction": "share of tokens whose PPO ratio was clipped",
    "policy/ratio_mean": "mean PPO ratio pi / pi_old",
    "policy/approx_kl": "KL estimate between the updated and the old policy",
    "policy/kl_to_ref": "KL to the reference model (the kl_coef term)",
    "policy/kl_to_init": "k3 KL to the initial policy (unless algorithm.log_kl_to_init = false)",
    "policy/grad_norm": "gradient norm before clipping, mean over the step's optimizer steps",
    "policy/logprob_mismatch_mean": "mean |engine log-prob - trainer log-prob| per token",
    "policy/logprob_mismatch_max": "largest |engine log-prob - trainer log-prob| of a token",
    "policy/tis_weight_mean": "with algorithm.tis_cap: mean truncated importance weight",
    "policy/version": "the weights (updates applied) the step's samples came from",
    "policy/version_lag": "updates between those weights and the ones trained (0 synchronous; 1 with overlap)",
    "response/length_mean": "mean response length in tokens",
    "trainer/response_tokens": "response tokens in the step's train batch, over all ranks",
    # timings (docs/loop.md says what each one spans)
    "perf/step_s": "the step's wall time, evaluation included",
    "perf/rollout_s": "the slowest engine's generation time for the step's samples",
    "perf/rollout_tokens_per_s": "response tokens generated per second of perf/rollout_s",
    "perf/reward_s": "scoring the step's samples",
    "perf/train_s": "from issuing train_step to its result (with rank 0's broadcast under collective sync)",
    "perf/train_compute_s": "the trainer rank's own seconds in train_step before any broadcast (perf/train_s minus it: the Ray call, the batch's transport and the broadcast)",
    "perf/weight_sync_s": "handing the step's weights to the engines (rank 0's send under collective sync)",
    "perf/weight_receive_s": "collective sync: the slowest engine's receive, waiting included",
    "perf/controller_s": "the driver's own work on the step's samples, waits excluded",
    # recoveries from lost actors (docs/faults.md), cumulative; with cluster.max_restarts > 0 or after an event
    "fault/restarts": "restarts of the actors from the last complete checkpoint so far",
    "fault/replaced_workers": "rollout and reward workers replaced within a step so far",
    "fault/redone_steps": "steps trained again after restarts so far",
    "perf/engine_sleep_s": "with rollout.sleep_while_training: putting the engines to sleep before the update",
    "perf/engine_wake_s": "with rollout.sleep_while_training: waking the engines before the weight sync",
}

# Fine labels, logged beside the families: errors/harmful_hacking, errors/benign_I, ...
for _label in LABELS:
    if family(_label) != _label:
        METRICS.setdefault(f"errors/{_label}", f"share of samples the online heuristic labels {_label}")


def undeclared(names) -> list:
    """The names in `names` that METRICS does not declare, sorted."""
    return sorted(set(names) - set(METRICS))
