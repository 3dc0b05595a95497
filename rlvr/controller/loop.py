"""The RL loop, top to bottom: prompts and the initial policy, the actors, then step after step
(roll out, score, advantages, train, sync) with evaluations and checkpoints, then the end.

The controller is the one place that knows the order of things; each piece lives in a module
of its own: prompts.py (splits, templates, sampling order), actors.py (Ray, placement, actors,
weight sync set-up, shutdown), step.py (one RL step and its schedule: docs/loop.md),
evaluation.py (held-out eval, audit, sync check), checkpoint.py (save, resume).
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, Sequence

# torch is imported where it is used: `rlvr train` imports this module before it starts Ray,
# and the 2 s torch takes to import overlap Ray's start (Controller.inputs).
from rlvr.config import RecipeConfig, to_yaml
from rlvr.controller import evaluation
from rlvr.controller.actors import ActorPool
from rlvr.controller.checkpoint import RESUME_STATE, pending_generations, resume_point, save_checkpoint, set_aside
from rlvr.controller.faults import INJECT_ENV, inject, injections, lost_actor_name
from rlvr.controller.prompts import PromptSampler, chat_prompts, task_prompts
from rlvr.controller.step import StepRunner
from rlvr.controller.stop import StopSignals
from rlvr.tasks import Prompt
from rlvr.tracking.run_folder import RunFolder
from rlvr.tracking.tracker import Tracker, progress


def evaluates_at(cfg: RecipeConfig, step: int) -> bool:
    """Whether the loop evaluates on the held-out prompts after step `step`."""
    return bool(cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps


def checkpoints_at(cfg: RecipeConfig, step: int) -> bool:
    """Whether the loop saves a checkpoint after step `step` (a stop saves one too)."""
    return bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps


def default_run_name(cfg: RecipeConfig) -> str:
    """cleanrl-style `{task}__{design}__{seed}__{time}`."""
    design = cfg.reward.design.get("name", "design")
    return f"{cfg.task.name}__{design}__{cfg.seed}__{time.strftime('%Y%m%d-%H%M%S')}"


class Controller:
    """One run: its inputs, actors (`actors`), steps (`steps`) and run folder."""

    def __init__(self, cfg: RecipeConfig):
        self.cfg = cfg
        self.actors = ActorPool(cfg)
        self.steps = StepRunner(cfg, self.actors, tokenizer=None)  # the tokenizer comes with the model

    # ---- set-up ---------------------------------------------------------------------
    def prompts(self):
        """(train prompts, held-out eval prompts) of the recipe's task, with its prompt template."""
        return task_prompts(self.cfg)

    def initial_policy(self, train: Sequence[Prompt], held_out: Sequence[Prompt]):
        """(model folder, warm-up info): the recipe's model, or the tiny model built and warmed up."""
        from rlvr.models.prepare import prepare_policy
        from rlvr.rewards.verifiers import get_verifier

        return prepare_policy(self.cfg, list(train), list(held_out),
                              get_verifier(self.cfg.reward.verifier), progress)

    def inputs(self):
        """(train prompts, eval prompts, model folder, warm-up info), with the tokenizer loaded
        and the chat template applied when the recipe asks; a cluster too small for the run
        fails before a model download or warm-up.

        Start-up order: Ray starts on a thread while this one reads the prompts and imports
        what the driver needs; the actors are launched as soon as the model folder is known
        and start (imports, model load) while the driver loads its tokenizer and tracker
        (`ActorPool.wait_ready` waits for them).
        """
        from rlvr.models.tokenizer import load_tokenizer

        cfg = self.cfg
        self.actors.begin()
        train_prompts, eval_prompts = self.prompts()
        import torch  # noqa: F401 - the driver's one heavy import, while Ray starts

        self.actors.reserve()
        model_dir, warmup = self.initial_policy(train_prompts, eval_prompts)
        self.actors.launch(model_dir)
        self.steps.tokenizer = tokenizer = load_tokenizer(model_dir, built=not cfg.model.path)
        if cfg.task.apply_chat_template:
            train_prompts, eval_prompts = (chat_prompts(tokenizer, ps, cfg.model.path or model_dir)
                                           for ps in (train_prompts, eval_prompts))
        return train_prompts, eval_prompts, model_dir, warmup

    # ---- what the loop calls (small seams: tests and benches replace them) -------------
    def rl_step(self, step: int, prompts: Sequence[Prompt], epoch: int = 0):
        return self.steps.rl_step(step, prompts, epoch)

    def evaluate(self, prompts: Sequence[Prompt], step: int) -> Dict[str, float]:
        return evaluation.evaluate(self.steps, self.cfg, prompts, step)

    def audit(self, train_prompts: Sequence[Prompt], num_prompts: int) -> Dict[str, Any]:
        return evaluation.audit(self.steps, self.cfg, train_prompts, num_prompts)

    def sync_check(self, prompt: Prompt) -> float:
        return evaluation.sync_check(self.actors, self.steps.tokenizer, prompt)

    def checkpoint(self, folder: RunFolder, state: Dict[str, Any]) -> None:
        if self.steps.trained_ahead(state["step"] + 1):  # the trainer would save update step + 1's weights
            raise RuntimeError(f"checkpoint of step {state['step']}: step {state['step'] + 1}'s update was already "
                               "sent to the trainer (StepRunner.train_ahead must not run before a checkpoint)")
        save_checkpoint(self.cfg, self.actors.trainer, folder, state, self.steps.ready_ahead(state["step"] + 1))

    def end_cluster(self) -> None:
        self.actors.end()

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        cfg = self.cfg
        if cfg.run_name is None:
            cfg = self.cfg = replace(cfg, run_name=default_run_name(cfg))
        from rlvr.config.load import RecipeError

        path = Path(cfg.output_dir) / cfg.run_name
        try:
            folder = RunFolder(path)
            if not cfg.resume and not folder.is_used():
                folder.write_config(to_yaml(cfg))
        except OSError as err:  # read-only or full parent: one line, not a traceback
            raise RecipeError(f"output_dir = {cfg.output_dir}: cannot write the run folder {path} "
                              f"({err.strerror or err}): choose a writable output_dir") from None
        if cfg.resume:
            resume = resume_point(cfg, folder)
            set_aside(resume.skipped)
            folder.write_config(to_yaml(cfg))
        elif folder.is_used():
            raise RecipeError(f"run folder {folder.path} already holds a run: continue it with "
                              "resume=true, or choose another run_name")
        else:
            resume = None
        progress(f"run folder {folder.path}")
        started = time.time()
        summary: Dict[str, Any] = {"run_name": cfg.run_name, "status": "running",
                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        # A resume keeps the run's summary.json (a finished run's included) until its checkpoint
        # is restored: a resume that fails before that leaves the folder as it was.
        owns_summary = resume is None
        if owns_summary:
            folder.write_summary(summary)
        tracker = None
        stop = StopSignals()
        try:
            stop.__enter__()
            train_prompts, eval_prompts, model_dir, warmup = self.inputs()
            summary.update(model_dir=model_dir, warmup=warmup)
            tracker = Tracker(folder, cfg.steps, cfg.logging.console,
                              cfg.logging.wandb_project if cfg.logging.wandb else None,
                              cfg.run_name, asdict(cfg), wandb_group=cfg.logging.wandb_group,
                              wandb_tags=cfg.logging.wandb_tags)
            sampler = PromptSampler(train_prompts, cfg.seed)
            size = cfg.rollout.prompts_per_step
            plan = lambda s: (sampler.batch(s, size), sampler.epoch(s, size))  # noqa: E731
            # overlap: the last step's update overlaps step steps+1's generation too, which the
            # final checkpoint keeps, so a run extended with resume=true continues exactly
            self.steps.follow(plan, cfg.steps + (1 if cfg.rollout.overlap else 0),
                              holds=lambda s: (stop.requested is not None or evaluates_at(cfg, s)
                                               or checkpoints_at(cfg, s)))
            self.actors.wait_ready(model_dir)
            self.actors.open_weight_sync()
            if resume is None:
                first = self.evaluate(eval_prompts, 0)
                tracker.log({"step": 0, **first})
                state = {"step": 0, "evals": [first["eval/gt_accuracy"]],
                         "initial_eval_gt_accuracy": first["eval/gt_accuracy"]}
                if cfg.eval.audit_prompts:
                    state["audit"] = self.audit(train_prompts, cfg.eval.audit_prompts)
                    progress(f"audit of the initial policy under the proxy: gt accuracy "
                             f"{state['audit']['gt/accuracy']:.3f}, false-positive rate "
                             f"{state['audit']['reward/false_positive_rate']:.3f}, false-negative rate "
                             f"{state['audit']['reward/false_negative_rate']:.3f} (rlvr audit for the full table)")
            else:
                state, checkpoint = resume.state, resume.checkpoint
                self.restore(folder, plan, state, checkpoint)
                for gone in folder.truncate_samples(state["step"]):
                    progress(f"deleted {gone.name} of the crashed run (after step {state['step']})")
                summary["resumed_from_step"] = state["step"]
                owns_summary = True
                folder.write_summary(summary)
                progress(f"resumed from {checkpoint} (step {state['step']})")
            start_state = state  # what a restart without a checkpoint goes back to
            summary["initial_eval_gt_accuracy"] = state["initial_eval_gt_accuracy"]
            if "audit" in state:
                summary["audit"] = state["audit"]
            evals = list(state["evals"])
            step_times, sync_times = [], []
            faults = self.actors.faults
            if faults.max_restarts:
                summary["fault_events"] = faults.events  # the same list: filled in as events happen
            inject_plan = injections(os.environ.get(INJECT_ENV, ""))
            stop.arm()
            step, stopped = state["step"] + 1, False
            while step <= cfg.steps:
                try:
                    inject(self.actors, inject_plan, step)
                    t0 = time.time()
                    metrics, samples = self.rl_step(step, *plan(step))
                    if evaluates_at(cfg, step):
                        metrics.update(self.evaluate(eval_prompts, step))
                        evals.append(metrics["eval/gt_accuracy"])
                    metrics["perf/step_s"] = time.time() - t0
                    metrics.update(faults.metrics())
                    step_times.append(metrics["perf/step_s"])
                    sync_times.append(metrics["perf/weight_sync_s"])
                    tracker.log(metrics)
                    if cfg.logging.log_samples_every and step % cfg.logging.log_samples_every == 0:
                        folder.write_samples(step, samples)
                    # a stop that came after step + 1's update was sent (StepRunner.train_ahead) ends after it
                    stopping = (stop.requested is not None and step < cfg.steps
                                and not self.steps.trained_ahead(step + 1))
                    if stopping or checkpoints_at(cfg, step):
                        self.checkpoint(folder, {**state, "step": step, "evals": evals})
                except Exception as err:  # noqa: BLE001 - a lost actor restarts the run's actors; else re-raised
                    if not faults.allow(err, f"an actor of step {step}"):
                        raise
                    state = self.restart(folder, plan, step, start_state, err)
                    evals = list(state["evals"])
                    step = state["step"] + 1
                    continue
                if stopping:
                    summary.update({"status": "stopped", "steps": step, "stopped_by": stop.requested,
                                    "checkpoint": str(folder.checkpoint_dir(step))})
                    stopped = True
                    break
                step += 1
            if not stopped:
                summary.update({
                    "status": "finished", "steps": cfg.steps,
                    "final_eval_gt_accuracy": evals[-1], "best_eval_gt_accuracy": max(evals),
                    "sync_max_logprob_diff": self.sync_check(eval_prompts[0]),
                })
            summary.update({"mean_step_s": sum(step_times) / max(1, len(step_times)),
                            "mean_weight_sync_s": sum(sync_times) / max(1, len(sync_times))})
        except BaseException as err:
            aborted = isinstance(err, KeyboardInterrupt)
            summary.update({"status": "aborted" if aborted else "failed", "error": f"{type(err).__name__}: {err}",
                            "traceback": traceback.format_exc()})
            raise
        finally:
            stop.__exit__()
            summary["wall_s"] = time.time() - started
            self._close(folder, tracker, summary, owns_summary)
        if summary["status"] == "stopped":
            progress(f"stopped after step {summary['steps']} ({summary['stopped_by']}); checkpoint "
                     f"{summary['checkpoint']}; continue it with resume=true")
            return summary
        progress(f"done: held-out greedy gt accuracy {summary['initial_eval_gt_accuracy']:.3f} -> "
                 f"{summary['final_eval_gt_accuracy']:.3f} (best {summary['best_eval_gt_accuracy']:.3f}) "
                 f"in {summary['wall_s']:.0f} s; run folder {folder.path}")
        return summary

    # ---- restoring a checkpoint: resume=true and the restart after a lost actor --------------
    def restore(self, folder: RunFolder, plan, state: Dict[str, Any], checkpoint) -> None:
        """Trainer state from `checkpoint` (None: the initial policy the actors started with),
        weights to the engines, the overlap run's pending generations, and metrics after the
        checkpoint's step dropped (their samples files are the caller's: it names them)."""
        cfg = self.cfg
        if checkpoint is not None:
            self.actors.trainer.load_training_state(str(checkpoint / "trainer"))
            self.actors.sync_weights(state["step"])
            if cfg.rollout.overlap:  # the generations made before the checkpoint's update
                nxt = state["step"] + 1
                prompts, epoch = plan(nxt)
                self.steps.restore_ahead(nxt, prompts, epoch, pending_generations(checkpoint, nxt, prompts))
        folder.truncate_metrics(state["step"])

    def restart(self, folder: RunFolder, plan, failed_step: int, start_state: Dict[str, Any],
                err: BaseException) -> Dict[str, Any]:
        """After a lost actor that no replacement inside the step recovered (a trainer rank, a
        hang, an engine mid-broadcast): every actor anew, the last complete checkpoint restored
        (or the state the run started from), its later metrics and samples dropped. Returns the
        loop state to go on from; the steps after it are redone."""
        faults = self.actors.faults
        who = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        faults.restarts += 1
        progress(f"lost an actor at step {failed_step} ({type(err).__name__}: {who}): restarting every actor "
                 f"(restart {faults.restarts}, {faults.used} of cluster.max_restarts = {faults.max_restarts} "
                 "recoveries used)")
        name = lost_actor_name(err)
        role, _, index = name.rpartition(" ")
        node = self.actors.node_of({"trainer rank": "trainer", "rollout worker": "rollout",
                                    "reward worker": "reward"}.get(role, ""), int(index) if index.isdigit() else 0)
        self.steps.reset()
        self.actors.restart()
        done = sorted(folder.path.glob(f"checkpoints/step_*/{RESUME_STATE}"))
        if done:
            resume = resume_point(self.cfg, folder)
            set_aside(resume.skipped)
            state, checkpoint = resume.state, resume.checkpoint
        else:
            state, checkpoint = start_state, None
        if checkpoint is None and start_state["step"]:  # a resumed run whose checkpoint went missing
            raise RuntimeError(f"restart at step {failed_step}: no complete checkpoint left in {folder.path}")
        self.restore(folder, plan, state, checkpoint)
        folder.truncate_samples(state["step"])
        faults.redone_steps += failed_step - state["step"]
        where = checkpoint.name if checkpoint is not None else "the start of the run"
        faults.record(failed_step, name, node, f"every actor restarted from {where} "
                      f"(step {state['step']}); steps {state['step'] + 1}..{failed_step} redone", err)
        return state

    def _close(self, folder: RunFolder, tracker, summary: Dict[str, Any], owns_summary: bool) -> None:
        """The run's last writes, each guarded so that one failing (a full disk) skips none of
        the others: summary.json, the tracker, then actors and Ray."""
        try:
            if owns_summary:
                folder.write_summary(summary)
            else:
                progress(f"the resume failed before restoring its checkpoint: {folder.path / 'summary.json'} "
                         "is left as it was")
            try:
                if tracker is not None:
                    tracker.close(summary)
                else:
                    folder.close()
            except Exception as err:  # noqa: BLE001 - the run's own error matters more
                progress(f"closing the tracker failed: {type(err).__name__}: {err}")
        finally:
            self.end_cluster()


def train(cfg: RecipeConfig) -> Dict[str, Any]:
    return Controller(cfg).run()
