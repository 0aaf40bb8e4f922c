"""What a sweep tries: trials from comma lists, a preset or a spec file.

A trial is a plain dict of the per-run training keys in :data:`KEYS`; every
value is checked here, before any folder exists, and an error names the key
(``--lr`` for an option, ``lr`` for a spec-file key) and what is allowed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlp_backend.activations import ACTIVATIONS
from mlp_backend.defaults import DEFAULTS as TRAIN_DEFAULTS
from mlp_backend.errors import UsageError
from mlp_backend.optim import OPTIMIZERS, SCHEDULES
from mlp_backend.options import option_name
from mlp_backend.train import MONITORS, Member, TrainConfig, check_member
from mlp_backend.widths import parse_widths, widths_text

Trial = dict[str, Any]

#: Keys a trial may vary, with the defaults of ``mlp-backend train``.
DEFAULTS: dict[str, Any] = dict(TRAIN_DEFAULTS)
KEYS = tuple(DEFAULTS)
#: Keys that random search draws log-uniformly from a ``[low, high]`` range.
LOG_UNIFORM = ("lr", "weight_decay")
#: Keys of a spec file that are not trial keys.
SPEC_KEYS = ("search", "trials", "sample_seed", "repeats")
#: Spec keys that only random search reads.
RANDOM_KEYS = ("trials", "sample_seed")

PRESETS: dict[str, dict[str, list[Any]]] = {
    # The reference experiment: one tanh layer, sigmoid output with binary
    # cross-entropy (the default for a binary task), plain SGD, batch size 1:
    # a constant learning rate and no weight decay, unlike the default network.
    "reference": {
        "hidden": [(5,), (25,), (50,), (100,)],
        "lr": [1.0, 0.1, 0.01, 0.001],
        "activation": ["tanh"],
        "optimizer": ["sgd"],
        "batch_size": [1],
        "epochs": [20],
        "patience": [0],
        "schedule": ["none"],
        "weight_decay": [0.0],
    },
}


def _number(kind: type) -> Callable[[Any, str], Any]:
    def parse(value: Any, where: str) -> Any:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise UsageError(f"{where}: expected {kind.__name__}, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"{where}: expected {kind.__name__}, got {value!r}"
            ) from None
        if kind is float and not math.isfinite(number):
            raise UsageError(f"{where}: expected a finite number, got {value!r}")
        return number

    return parse


def _choice(allowed: Sequence[str]) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        if value not in allowed:
            raise UsageError(
                f"{where}: expected one of {', '.join(allowed)}, got {value!r}"
            )
        return str(value)

    return parse


def _hidden(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return parse_widths(widths_text(value), where)
    return parse_widths(str(value), where)


PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "hidden": _hidden,
    "activation": _choice(tuple(ACTIVATIONS)),
    "optimizer": _choice(OPTIMIZERS),
    "lr": _number(float),
    "momentum": _number(float),
    "weight_decay": _number(float),
    "batch_size": _number(int),
    "epochs": _number(int),
    "schedule": _choice(SCHEDULES),
    "patience": _number(int),
    "metric": _choice(tuple(MONITORS)),
    "seed": _number(int),
}


#: The trial keys whose values are numbers.
NUMBERS = ("lr", "momentum", "weight_decay", "batch_size", "epochs", "patience", "seed")


def check_trial(trial: Trial, where: Callable[[str], str] = option_name) -> None:
    """Rejects a trial that cannot train, naming the key (as ``where`` spells it)."""
    for key in KEYS:
        PARSERS[key](trial[key], where(key))
    try:
        train_config(trial).check()
        check_member(member(trial))
    except UsageError as exc:
        # The shared checks name the train option; a spec file names its key.
        message = str(exc)
        for key in KEYS:
            message = message.replace(option_name(key) + ":", where(key) + ":")
        raise UsageError(message) from None


def train_config(trial: Trial) -> TrainConfig:
    """What a trial shares with the other members of its fused stack."""
    return TrainConfig(
        activation=trial["activation"],
        optimizer=trial["optimizer"],
        batch_size=int(trial["batch_size"]),
        epochs=int(trial["epochs"]),
        schedule=trial["schedule"],
        patience=int(trial["patience"]),
        monitor=trial["metric"],
    )


def member(trial: Trial) -> Member:
    """What a trial may differ in from the other members of its stack."""
    return Member(
        hidden=tuple(int(h) for h in trial["hidden"]),
        lr=float(trial["lr"]),
        momentum=float(trial["momentum"]),
        weight_decay=float(trial["weight_decay"]),
        seed=int(trial["seed"]),
    )


def grid(
    values: Mapping[str, Sequence[Any]], repeats: int = 1, name: str = "--repeats"
) -> list[Trial]:
    """The product of the listed values; each point ``repeats`` times with seeds
    ``seed, seed + 1, ...``.

    Args:
        values: Per key, the values to try (keys left out take the defaults).
        repeats: Seeds per configuration.
        name: How errors name ``repeats`` (the option, or the spec file's key).
    """
    _check_repeats(list(values.get("seed", [])), repeats, name)
    keys = list(KEYS)
    lists = [list(values.get(k, [DEFAULTS[k]])) for k in keys]
    trials = []
    for point in itertools.product(*lists):
        base = dict(zip(keys, point, strict=True))
        for r in range(repeats):
            trials.append({**base, "seed": int(base["seed"]) + r})
    return trials


def _check_repeats(seeds: Sequence[Any], repeats: int, name: str) -> None:
    """Refuses ``repeats`` below 1, or above 1 beside a list of seeds."""
    if repeats < 1:
        raise UsageError(f"{name}: must be at least 1, got {repeats}")
    if repeats > 1 and len(seeds) > 1:
        # seed + r would train some seeds twice (0,1 x 2 repeats: 0,1,1,2).
        raise UsageError(
            f"{name}: draws seeds seed, seed + 1, ... from one seed; with a list "
            f"of seeds ({', '.join(str(s) for s in seeds)}) leave it out and "
            "list every seed instead"
        )


def _refuse_repeated(
    values: Mapping[str, Sequence[Any]], where: Callable[[str], str]
) -> None:
    """Refuses a value listed twice for one key: a grid would train the same
    configuration twice under two trial numbers."""
    for key, listed in values.items():
        seen: list[Any] = []
        for value in listed:
            if value in seen:
                raise UsageError(
                    f"{where(key)}: {_shown(value)} is listed twice; list each "
                    "value once (repeats trains more seeds)"
                )
            seen.append(value)


def _shown(value: Any) -> str:
    """A trial value as a user writes it: ``64x32`` for a tuple of widths."""
    if isinstance(value, tuple):
        return widths_text(value)
    return str(value)


def from_options(lists: Mapping[str, str | None], repeats: int) -> list[Trial]:
    """Trials from comma-list options (``{"lr": "0.1,0.01", ...}``); None = default."""
    values: dict[str, list[Any]] = {}
    for key, text in lists.items():
        if text is None:
            continue
        assert key in PARSERS, f"not a trial key: {key}"
        items = [t.strip() for t in str(text).split(",")]
        if not all(items):
            raise UsageError(
                f"{option_name(key)}: expected a comma list without empty items, "
                f"got {text!r}"
            )
        values[key] = [PARSERS[key](t, option_name(key)) for t in items]
    _refuse_repeated(values, option_name)
    trials = grid(values, repeats)
    for trial in trials:
        check_trial(trial)
    return trials


def from_preset(
    name: str, overrides: Mapping[str, str | None], repeats: int
) -> list[Trial]:
    """A named preset; options given on the command line replace its lists."""
    if name not in PRESETS:
        raise UsageError(
            f"--preset: expected one of {', '.join(PRESETS)}, got {name!r}"
        )
    values: dict[str, list[Any]] = dict(PRESETS[name])
    for key, text in overrides.items():
        if text is not None:
            values[key] = [
                PARSERS[key](t.strip(), option_name(key)) for t in str(text).split(",")
            ]
            _refuse_repeated({key: values[key]}, option_name)
    trials = grid(values, repeats)
    for trial in trials:
        check_trial(trial)
    return trials


def load_toml(path: Path) -> dict[str, Any]:
    """Reads a spec file with tomllib (tomli before Python 3.11)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"--spec: {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--spec: {path} is not valid TOML ({exc})") from None
    except OSError as exc:
        raise UsageError(f"--spec: {path} cannot be read ({exc.strerror})") from None


def from_spec(
    spec: Mapping[str, Any], source: str, n_trials: int | None = None
) -> list[Trial]:
    """Trials from a spec file's table.

    The file has ``search = "grid"`` (default) or ``"random"``; each trial key
    is a value or a list. For random search a two-number list of ``lr`` or
    ``weight_decay`` is a log-uniform range, every other list a set of
    choices; ``trials`` (or ``--trials``) draws that many, seeded by
    ``sample_seed`` (``seed`` is the trials' training seed, as on the command line).
    A grid search trains its whole product and refuses those two and ``--trials``.

    Args:
        spec: The parsed TOML table.
        source: The file, to name in errors.
        n_trials: ``--trials``; overrides the file's ``trials``.
    """

    def where(key: str) -> str:
        return f"{source}: {key}"

    unknown = sorted(set(spec) - set(KEYS) - set(SPEC_KEYS))
    if unknown:
        raise UsageError(
            f"{where(unknown[0])}: unknown key; expected {', '.join(KEYS + SPEC_KEYS)}"
        )
    search = spec.get("search", "grid")
    if search not in ("grid", "random"):
        raise UsageError(
            f"{where('search')}: expected 'grid' or 'random', got {search!r}"
        )
    for key in ("trials", "sample_seed", "repeats"):
        if isinstance(spec.get(key), str):
            raise UsageError(
                f"{where(key)}: expected a number, got the string {spec[key]!r}; "
                "write it without quotes"
            )
    repeats = _number(int)(spec.get("repeats", 1), where("repeats"))
    # A list is a set of choices; for hidden each choice is 64, "64x32" or [64, 32].
    raw = {k: v if isinstance(v, list) else [v] for k, v in spec.items() if k in KEYS}
    for key in NUMBERS:
        quoted = next((v for v in raw.get(key, []) if isinstance(v, str)), None)
        if quoted is not None:
            # The command line's values are text; a file's are TOML values.
            raise UsageError(
                f"{where(key)}: expected a number, got the string {quoted!r}; "
                "write it without quotes (a list as [a, b])"
            )
    if search == "grid":
        _refuse_random_keys(spec, source, n_trials)
        values = {k: [PARSERS[k](v, where(k)) for v in vs] for k, vs in raw.items()}
        if any(not vs for vs in values.values()):
            empty = next(k for k, vs in values.items() if not vs)
            raise UsageError(f"{where(empty)}: the list is empty")
        _refuse_repeated(values, where)
        trials = grid(values, repeats, where("repeats"))
    else:
        count, name = _trial_count(spec, n_trials, where)
        seed = _sample_seed(spec, where)
        trials = _random(raw, (count, name), seed, repeats, where)
    for trial in trials:
        check_trial(trial, where)
    return trials


def _refuse_random_keys(
    spec: Mapping[str, Any], source: str, n_trials: int | None
) -> None:
    """Refuses what only random search reads: a grid trains its whole product."""
    if n_trials is not None:
        raise UsageError(
            f"--trials: only for random search; {source} is a grid search "
            '(set search = "random" in it to draw trials)'
        )
    for key in RANDOM_KEYS:
        if key in spec:
            raise UsageError(
                f'{source}: {key}: only for random search (search = "random"); '
                "a grid search trains every combination"
            )


def _trial_count(
    spec: Mapping[str, Any], n_trials: int | None, where: Callable[[str], str]
) -> tuple[int, str]:
    """How many trials random search draws, ``--trials`` or else the file's
    key, and how messages name it."""
    if n_trials is not None:
        count, name = n_trials, "--trials"
    elif "trials" in spec:
        count = _number(int)(spec["trials"], where("trials"))
        name = where("trials")
    else:
        raise UsageError(
            f"{where('trials')}: random search needs a number of trials "
            "(in the file or --trials)"
        )
    if count < 1:
        raise UsageError(f"{name}: must be at least 1, got {count}")
    return count, name


def _sample_seed(spec: Mapping[str, Any], where: Callable[[str], str]) -> int:
    # NumPy's generators take seeds of 0 or more only.
    seed = _number(int)(spec.get("sample_seed", 0), where("sample_seed"))
    if seed < 0:
        raise UsageError(f"{where('sample_seed')}: must be 0 or more, got {seed}")
    return seed


def _random(
    raw: Mapping[str, list[Any]],
    wanted: tuple[int, str],
    seed: int,
    repeats: int,
    where: Callable[[str], str],
) -> list[Trial]:
    """``wanted`` trials, each a configuration not drawn before.

    A configuration drawn again is drawn anew (with log-uniform ranges that
    hardly happens; among a few choices it did, and trained one
    configuration under several trial numbers). Choices alone that hold
    fewer configurations than ``wanted`` are refused.
    """
    count, name = wanted
    _check_repeats(raw.get("seed", []), repeats, where("repeats"))
    ranges = {}
    choices = {}
    for key, options in raw.items():
        if not options:
            raise UsageError(f"{where(key)}: the list is empty")
        parsed = [PARSERS[key](v, where(key)) for v in options]
        if key in LOG_UNIFORM and len(options) == 2:
            low, high = parsed
            if not 0 < low < high:
                raise UsageError(
                    f"{where(key)}: a log-uniform range needs 0 < low < high, "
                    f"got [{low}, {high}]"
                )
            ranges[key] = (low, high)
        else:
            choices[key] = parsed
    space = math.prod(len(set(values)) for values in choices.values())
    if not ranges and space < count:
        raise UsageError(
            f"{name}: {count} trials, but the choices hold {space} "
            f"configuration{'s' if space != 1 else ''}; ask for at most {space}, "
            "or use a grid search"
        )
    rng = np.random.default_rng(seed)
    trials: list[Trial] = []
    drawn: set[tuple] = set()
    while len(drawn) < count:
        point: dict[str, list[Any]] = {}
        for key in raw:
            if key in ranges:
                low, high = ranges[key]
                value = float(math.exp(rng.uniform(math.log(low), math.log(high))))
            else:
                value = choices[key][int(rng.integers(len(choices[key])))]
            point[key] = [value]
        configuration = tuple(sorted((k, v[0]) for k, v in point.items()))
        if configuration in drawn:
            continue
        drawn.add(configuration)
        trials += grid(point, repeats, where("repeats"))
    return trials
