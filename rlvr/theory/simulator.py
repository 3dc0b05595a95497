"""Batched policy-gradient training of log-linear policies on a finite output set.

B independent bandit problems with the same shape (K outputs, d features) and the
same algorithm are stepped together, so a config, its error ablations and the
paper's whole set cost one numpy loop. Pure numpy, no I/O.

One step = one round of (exact or sampled) estimation followed by
`inner_epochs` optimizer updates on it. E[r_G] is computed exactly after every
step, so `steps_to_threshold` is the number of steps applied before E[r_G] first
reaches the threshold (0 if the initial policy already does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlvr.theory import policy

GRADIENTS = ("exact", "sampled")
OPTIMIZERS = ("sgd", "adam")
BASELINES = ("none", "mean")
NORMALIZE_STD = ("none", "detached", "official")
KL_REFERENCES = ("initial", "uniform")
KL_DIRECTIONS = ("reverse", "forward")

_ADAM_BETA1, _ADAM_BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_STD_EPS = 1e-8
# Uniforms buffered per refill for the sampled variant (about 8 MB). One generator per
# problem keeps each problem's sample stream independent of what shares its batch
# and of the buffer size (numpy streams are sequential).
_SAMPLE_BUFFER = 1 << 20


@dataclass(frozen=True)
class Algorithm:
    """How the policy is trained. Field defaults are the schema's defaults."""

    lr: float
    """Learning rate (step size of gradient ascent)."""
    steps: int
    """Number of training steps (estimation rounds)."""
    gradient: str = "exact"
    """'exact': closed-form E_pi gradient; 'sampled': REINFORCE on samples_per_step draws."""
    samples_per_step: int = 1
    """Outputs sampled per step for gradient='sampled' (the paper's REINFORCE uses 1)."""
    normalize_std: str = "none"
    """'none'; 'detached': centred advantages / a constant std (exact: under pi; sampled: sample std,
    ddof=1), as GRPO; 'official': the paper code's r / (std_pi(r) + 1e-8), differentiated through std."""
    kl_coef: float = 0.0
    """Coefficient of the KL term subtracted from the objective (exact gradient in both modes)."""
    kl_reference: str = "initial"
    """KL reference: 'initial' (pi_0) or 'uniform' (1/K on every output)."""
    kl_direction: str = "reverse"
    """'reverse': KL(pi || ref); 'forward': KL(ref || pi)."""
    temperature: float = 1.0
    """Softmax temperature tau: pi = softmax(Phi theta / tau) (the official code's logits_temperature)."""
    clip_eps: float | None = None
    """PPO ratio clipping epsilon (None: no clipping)."""
    inner_epochs: int = 1
    """Optimizer updates per step on the same estimate (PPO-style epochs)."""
    optimizer: str = "sgd"
    """'sgd' (the paper) or 'adam' (betas 0.9, 0.999, eps 1e-8)."""
    baseline: str = "none"
    """Sampled variant only: 'none' (plain REINFORCE, as in the paper) or 'mean' (group mean, GRPO-style)."""


@dataclass(frozen=True)
class Trajectories:
    """What a batched run produced. B problems, T logged steps, K outputs."""

    logged_steps: np.ndarray
    """(T,) int: steps at which the state was logged (see log_schedule)."""
    gt_reward: np.ndarray
    """(B, T): E_pi[r_G] at each logged step."""
    proxy_reward: np.ndarray
    """(B, T): E_pi[r_P] at each logged step."""
    probs: np.ndarray
    """(B, T, K): pi(y) at each logged step."""
    steps_to_threshold: np.ndarray
    """(B,) int: first step with E[r_G] >= threshold; -1 if never reached."""
    final_probs: np.ndarray
    """(B, K): pi after the last step."""
    steps_to_thresholds: np.ndarray | None = None
    """(B, M) int: first step with E[r_G] >= track_thresholds[m]; -1 if never (None unless tracked)."""
    gt_area: np.ndarray | None = None
    """(B, H): mean of E[r_G] after steps 1..track_horizons[h], the normalised area under the
    learning curve (None unless tracked)."""

    @property
    def final_gt_reward(self) -> np.ndarray:
        """(B,) E_pi[r_G] after the last step."""
        return self.gt_reward[:, -1]

    @property
    def final_proxy_reward(self) -> np.ndarray:
        """(B,) E_pi[r_P] after the last step."""
        return self.proxy_reward[:, -1]


class _Optimizer:
    """SGD or Adam ascent on a (B, d) parameter array."""

    def __init__(self, name: str, lr: float, shape: tuple[int, ...]):
        self.name, self.lr, self.t = name, lr, 0
        if name == "adam":
            self.m, self.v = np.zeros(shape), np.zeros(shape)

    def step(self, theta: np.ndarray, grad: np.ndarray) -> None:
        if self.name == "sgd":
            theta += self.lr * grad
            return
        self.t += 1
        self.m = _ADAM_BETA1 * self.m + (1 - _ADAM_BETA1) * grad
        self.v = _ADAM_BETA2 * self.v + (1 - _ADAM_BETA2) * grad * grad
        m_hat = self.m / (1 - _ADAM_BETA1**self.t)
        v_hat = self.v / (1 - _ADAM_BETA2**self.t)
        theta += self.lr * m_hat / (np.sqrt(v_hat) + _ADAM_EPS)


def default_log_every(steps: int) -> int:
    """About 1000 logged points per run."""
    return max(1, steps // 1000)


def log_schedule(steps: int, log_every: int | None) -> np.ndarray:
    """(steps + 1,) bool: which steps to log. Always 0 and the last step, plus multiples
    of log_every; with log_every None, every steps // 1000 plus about 100 log-spaced
    early steps (stalling and escape happen on a log time scale)."""
    log_at = np.zeros(steps + 1, dtype=bool)
    log_at[:: log_every or default_log_every(steps)] = True
    if log_every is None and steps > 0:
        log_at[np.unique(np.geomspace(1, steps, 100).astype(np.int64))] = True
    log_at[[0, steps]] = True
    return log_at


def _sample_weights(
    probs: np.ndarray, uniforms: np.ndarray, rewards: np.ndarray, algorithm: Algorithm
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical output frequencies and per-output advantages from one round of samples.

    probs (B, K), uniforms (B, n), rewards (B, K) -> (freq (B, K), advantage (B, K)).
    The advantage of a sample depends only on its output and on group statistics,
    so n samples fold into K weights.
    """
    k = probs.shape[-1]
    cdf = np.cumsum(probs, axis=-1)
    cdf[:, -1] = 1.0  # guard against round-off leaving u > cdf[-1]
    idx = (uniforms[:, :, None] >= cdf[:, None, :]).sum(axis=-1)  # (B, n) inverse-CDF draw
    sampled_rewards = np.take_along_axis(rewards, idx, axis=-1)  # (B, n)
    freq = (idx[:, :, None] == np.arange(k)).mean(axis=1)  # (B, K)
    baseline = sampled_rewards.mean(axis=-1, keepdims=True) if algorithm.baseline == "mean" else 0.0
    advantage = rewards - baseline
    if algorithm.normalize_std == "detached":
        std = sampled_rewards.std(axis=-1, ddof=1, keepdims=True)
        # A group whose samples all agree carries no scale information: leave it unscaled.
        advantage = advantage / np.where(std > 0, std + _STD_EPS, 1.0)
    return freq, advantage


def _exact_weights(probs: np.ndarray, rewards: np.ndarray, algorithm: Algorithm) -> tuple[np.ndarray, np.ndarray]:
    """Output probabilities and exact advantages r - V (optionally / std). (B, K) -> ((B, K), (B, K))."""
    advantage = rewards - policy.expected_reward(probs, rewards)[:, None]
    if algorithm.normalize_std == "detached":
        advantage = advantage / (policy.reward_std(probs, rewards)[:, None] + _STD_EPS)
    return probs, advantage


def _surrogate_gradient(
    features: np.ndarray,
    theta: np.ndarray,
    old_probs: np.ndarray,
    freq: np.ndarray,
    advantage: np.ndarray,
    ref_log_probs: np.ndarray,
    algorithm: Algorithm,
) -> np.ndarray:
    """Gradient of E_{y~freq}[min(ratio A, clip(ratio) A)] - kl_coef KL(pi || pi_0) at theta.

    With one inner epoch and no clipping this is exactly REINFORCE (sampled) or the
    closed-form policy gradient (exact). Shapes: features (B, K, d), theta (B, d),
    the rest (B, K) -> (B, d).
    """
    log_probs = policy.log_softmax(policy.logits(features, theta))
    probs = np.exp(log_probs)
    ratio = np.divide(probs, old_probs, out=np.zeros_like(probs), where=old_probs > 0)
    weights = freq * ratio * advantage
    if algorithm.clip_eps is not None:
        # The clipped branch is selected (zero gradient) once the ratio leaves the
        # trust region in the direction the advantage pushes it.
        clipped = ((advantage > 0) & (ratio > 1 + algorithm.clip_eps)) | (
            (advantage < 0) & (ratio < 1 - algorithm.clip_eps)
        )
        weights = np.where(clipped, 0.0, weights)
    weights = weights + kl_weights(probs, log_probs, ref_log_probs, algorithm)
    return policy.score_weighted_sum(features, probs, weights)


def kl_weights(probs: np.ndarray, log_probs: np.ndarray, ref_log_probs: np.ndarray,
               algorithm: Algorithm) -> np.ndarray:
    """Score weights w of -kl_coef * grad KL, i.e. -kl_coef grad KL = sum_y w(y) grad log pi(y).

    reverse KL(pi || ref): grad = sum_y pi (log pi - log ref) grad log pi;
    forward KL(ref || pi) = -sum_y ref log pi + const: grad = -sum_y ref grad log pi.
    probs, log_probs, ref_log_probs (B, K) -> (B, K); zeros when kl_coef is 0.
    """
    if not algorithm.kl_coef:
        return np.zeros_like(probs)
    if algorithm.kl_direction == "forward":
        return algorithm.kl_coef * np.exp(ref_log_probs) * np.ones_like(probs)
    return -algorithm.kl_coef * probs * (log_probs - ref_log_probs)


def official_std_weights(probs: np.ndarray, log_probs: np.ndarray, freq: np.ndarray, rewards: np.ndarray,
                         sampled: bool, prompts: int = 1) -> np.ndarray:
    """Score weights of the official code's std-normalised objective (one prompt), std not detached.

    s = std_pi(r), r~ = r / (s + eps). Exact: J = E_pi[r~]; sampled: J = sum_y freq(y) r~(y) log pi(y)
    (REINFORCE's surrogate, in which r~ still depends on theta through s). With
    grad s = sum_y pi (r - V)^2 / (2 s) grad log pi (the mean's own gradient drops out since
    E_pi[r - V] = 0):  grad J = sum_y [q r / (s + eps) - c pi (r - V)^2 / (2 s)] grad log pi,
    q = pi (exact) or freq (sampled), c = sum_y q r g / (s + eps)^2, g = 1 (exact) or log pi (sampled).
    A std of 0 has no gradient here (torch would give NaN); its term is dropped.

    P prompts (rows b * P + p): as the official code, the mean m = mean_p V_p and the scale
    s = mean_p s_p with s_p = sqrt(E_pi_p[(r_p - m)^2]) are shared, J is the mean over prompts,
    and the shared mean's gradient adds + c kappa pi_p r_p, kappa = mean_p (V_p - m) / s_p (0 when P = 1).
    Weights are per prompt; the caller averages the per-prompt gradients over prompts.
    probs, log_probs, freq, rewards (B * P, K) -> (B * P, K).
    """
    rows, k = probs.shape
    pi, r = probs.reshape(-1, prompts, k), rewards.reshape(-1, prompts, k)
    q = (freq if sampled else probs).reshape(-1, prompts, k)
    g = log_probs.reshape(-1, prompts, k) if sampled else 1.0
    value = (pi * r).sum(axis=-1, keepdims=True)  # (B, P, 1)
    mean = value.mean(axis=1, keepdims=True)  # (B, 1, 1)
    std_p = np.sqrt(np.maximum((pi * (r - mean) ** 2).sum(axis=-1, keepdims=True), 0.0))
    scale = std_p.mean(axis=1, keepdims=True) + _STD_EPS
    c = (q * r * g).sum(axis=-1, keepdims=True).mean(axis=1, keepdims=True) / scale**2
    dstd = np.divide(pi * (r - mean) ** 2, 2 * std_p, out=np.zeros_like(pi), where=std_p > 0)
    kappa = np.divide(value - mean, std_p, out=np.zeros_like(value), where=std_p > 0).mean(axis=1, keepdims=True)
    return (q * r / scale - c * (dstd - kappa * pi * r)).reshape(rows, k)


def simulate(
    features: np.ndarray,
    theta0: np.ndarray,
    proxy_rewards: np.ndarray,
    gt_rewards: np.ndarray,
    thresholds: np.ndarray,
    algorithm: Algorithm,
    seeds: np.ndarray | None = None,
    log_every: int | None = None,
    stop_when_reached: bool = False,
    track_thresholds: np.ndarray | None = None,
    track_horizons: list[int] | None = None,
) -> Trajectories:
    """Train B log-linear policies on their proxy rewards and track E[r_G].

    features (B, K, d), theta0 (B, d), proxy_rewards (B, K), gt_rewards (B, K),
    thresholds (B,), seeds (B,) ints (sampled variant; problem b draws from
    numpy default_rng(seeds[b])), log_every: see log_schedule; stop_when_reached ends the run (and
    its logs) at the step where the last problem reaches its threshold; track_thresholds (M,) adds
    steps_to_thresholds (B, M) and track_horizons (H ints <= steps) gt_area (B, H), at a few
    array operations per step. Returns Trajectories.

    Several prompts: features (B, P, K, d), rewards (B, P, K). One theta per problem is shared by
    its P prompts (each a softmax over its own K outputs); the objective and the tracked E[r] are
    the mean over prompts (as the official code); probs are then logged as (B, T, P, K).
    """
    features = np.asarray(features, dtype=np.float64)
    multi = features.ndim == 4
    prompts = features.shape[1] if multi else 1
    if multi:
        # One row per (problem, prompt); theta is expanded to the rows and gradients averaged back.
        features = features.reshape(-1, *features.shape[-2:])
        proxy_rewards = np.asarray(proxy_rewards, dtype=np.float64).reshape(-1, features.shape[-2])
        gt_rewards = np.asarray(gt_rewards, dtype=np.float64).reshape(-1, features.shape[-2])
    theta = np.array(theta0, dtype=np.float64)
    proxy_rewards = np.asarray(proxy_rewards, dtype=np.float64)
    gt_rewards = np.asarray(gt_rewards, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    b = features.shape[0] // prompts
    log_at = log_schedule(algorithm.steps, log_every)
    sampled = algorithm.gradient == "sampled"
    if sampled:
        seeds = np.zeros(b, dtype=np.int64) if seeds is None else np.asarray(seeds)
        generators = [np.random.default_rng(int(s)) for s in seeds]
        n = algorithm.samples_per_step
        chunk = max(1, _SAMPLE_BUFFER // (b * prompts * n))

    def expand(t: np.ndarray) -> np.ndarray:  # (B, d) -> (B * P, d)
        return t if prompts == 1 else np.repeat(t, prompts, axis=0)

    def reduce(g: np.ndarray) -> np.ndarray:  # (B * P, ...) -> (B, ...): mean over prompts
        return g if prompts == 1 else g.reshape(b, prompts, *g.shape[1:]).mean(axis=1)

    if algorithm.temperature != 1.0:
        # softmax(Phi theta / tau): the same policy as features Phi / tau, gradients included.
        features = features / algorithm.temperature
    if algorithm.normalize_std == "official" and (
            algorithm.inner_epochs != 1 or algorithm.clip_eps is not None or algorithm.baseline != "none"):
        raise ValueError("normalize_std 'official' is the paper code's one-update REINFORCE/exact step: "
                         "use inner_epochs 1, no clip_eps and baseline 'none'")
    # Identity features (the tabular case, e.g. the paper set): theta are the logits.
    k, d = features.shape[-2:]
    tabular = prompts == 1 and k == d and bool(np.all(features == np.eye(k)))
    initial_log_probs = policy.log_softmax(theta if tabular else policy.logits(features, expand(theta)))
    probs = np.exp(initial_log_probs)
    if algorithm.kl_reference == "uniform":
        ref_log_probs = np.full_like(probs, -np.log(k))
    else:
        ref_log_probs = initial_log_probs
    optimizer = _Optimizer(algorithm.optimizer, algorithm.lr, theta.shape)
    # One matmul per step gives E_pi[r_P] and E_pi[r_G]: (B, 1, K) @ (B, K, 2).
    reward_pair = np.stack([proxy_rewards, gt_rewards], axis=-1)
    values = reduce(np.matmul(probs[:, None, :], reward_pair)[:, 0, :])
    official = algorithm.normalize_std == "official"
    plain_exact = (not sampled and algorithm.inner_epochs == 1 and algorithm.clip_eps is None
                   and not algorithm.kl_coef and not official)
    plain_sampled = (sampled and algorithm.inner_epochs == 1 and algorithm.clip_eps is None
                     and not algorithm.kl_coef and not official)

    def shaped(p: np.ndarray) -> np.ndarray:  # logged probs: (B, K) or (B, P, K)
        return p.reshape(b, prompts, k) if multi else p

    logged_steps, proxy_log, gt_log, probs_log = [0], [values[:, 0]], [values[:, 1]], [shaped(probs)]
    first = np.where(values[:, 1] >= thresholds, 0, -1)
    tracked = None if track_thresholds is None else np.asarray(track_thresholds, dtype=np.float64)
    if tracked is not None:
        first_m = np.where(values[:, 1:2] >= tracked[None, :], 0, -1)
    area_at = {int(h): i for i, h in enumerate(track_horizons or ())}
    if any(h < 1 or h > algorithm.steps for h in area_at):
        raise ValueError(f"track_horizons {sorted(area_at)} must lie within [1, steps = {algorithm.steps}]")
    area_sum, gt_area = np.zeros(b), np.zeros((b, len(area_at)))
    # Thresholds still to be reached; +inf once a problem has reached its threshold.
    open_thresholds = np.where(first < 0, thresholds, np.inf)

    for step in range(1, algorithm.steps + 1):
        if plain_exact:
            # Closed form pi * (r - V); its sum over outputs is zero, so no re-centring.
            weights = probs * (proxy_rewards - policy.expected_reward(probs, proxy_rewards)[:, None])
            if algorithm.normalize_std == "detached":
                weights /= policy.reward_std(probs, proxy_rewards)[:, None] + _STD_EPS
            optimizer.step(theta, weights if tabular else reduce(policy.features_transpose_times(features, weights)))
        else:
            if sampled:
                chunk_pos = (step - 1) % chunk
                if chunk_pos == 0:
                    uniforms = np.stack([g.random((chunk, prompts, n)) for g in generators])
                freq, advantage = _sample_weights(probs, uniforms[:, chunk_pos].reshape(b * prompts, n),
                                                  proxy_rewards, algorithm)
            else:
                freq, advantage = _exact_weights(probs, proxy_rewards, algorithm)
            if official:  # one update at the sampling policy, through the std
                log_probs = policy.log_softmax(theta if tabular else policy.logits(features, expand(theta)))
                weights = official_std_weights(probs, log_probs, freq, proxy_rewards, sampled, prompts)
                weights = weights + kl_weights(probs, log_probs, ref_log_probs, algorithm)
                optimizer.step(theta, reduce(policy.score_weighted_sum(features, probs, weights)))
            elif plain_sampled:  # at the sampling policy the ratio is 1: plain REINFORCE
                optimizer.step(theta, reduce(policy.score_weighted_sum(features, probs, freq * advantage)))
            else:
                old_probs = probs
                for _ in range(algorithm.inner_epochs):
                    grad = _surrogate_gradient(features, expand(theta), old_probs, freq, advantage, ref_log_probs,
                                               algorithm)
                    optimizer.step(theta, reduce(grad))

        probs = policy.softmax(theta if tabular else policy.logits(features, expand(theta)))
        values = reduce(np.matmul(probs[:, None, :], reward_pair)[:, 0, :])
        if tracked is not None:
            first_m[(first_m < 0) & (values[:, 1:2] >= tracked[None, :])] = step
        if area_at:
            area_sum += values[:, 1]
            if step in area_at:
                gt_area[:, area_at[step]] = area_sum / step
        hit = values[:, 1] >= open_thresholds
        if hit.any():
            first[hit] = step
            open_thresholds[hit] = np.inf
        done = stop_when_reached and bool(np.all(open_thresholds == np.inf))
        if log_at[step] or done:
            logged_steps.append(step)
            proxy_log.append(values[:, 0])
            gt_log.append(values[:, 1])
            probs_log.append(shaped(probs))
        if done:
            break

    return Trajectories(
        logged_steps=np.asarray(logged_steps, dtype=np.int64),
        gt_reward=np.stack(gt_log, axis=1),
        proxy_reward=np.stack(proxy_log, axis=1),
        probs=np.stack(probs_log, axis=1),
        steps_to_threshold=first.astype(np.int64),
        final_probs=shaped(probs),
        steps_to_thresholds=None if tracked is None else first_m.astype(np.int64),
        gt_area=gt_area if area_at else None,
    )
