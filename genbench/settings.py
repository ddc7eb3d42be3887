"""Settings files: ``genbench.toml`` in the working directory, and a ``[tool.genbench]`` table in its
``pyproject.toml``.

Both hold the same keys (:data:`RUN_KEYS`, plus ``[profiles.NAME]`` and ``[compare]`` tables). Precedence,
key by key: a command-line flag (or an argument of :func:`genbench.run`) > ``genbench.toml`` >
``pyproject.toml`` > genbench's default. ``models`` and ``all`` are one choice (naming a model on the command
line sets both). A run records the files it read and their genbench tables in ``run.json``
(``config.settings``), and a user-defined profile in ``config.user_profile``.

A user-defined profile is based on ``smoke`` or ``default`` and overrides how many samples are scored
(``samples``), the training steps of every model (``steps``), the batch sizes timed (``batch_sizes``) and
the timing policy (``[profiles.NAME.timing]``). Plugins train as for its base profile; what changes the
quality numbers reaches their comparability key (``steps`` in the key's ``profile``, ``samples`` in its
``n``), so a user profile shares a ranked column with a built-in one only when its numbers are computed the
same way.

Every mistake is one line naming the file, the key and what is allowed (:class:`~genbench.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError

SETTINGS_FILE = "genbench.toml"
PYPROJECT = "pyproject.toml"
BUILT_IN_PROFILES = ("smoke", "default")
_NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*\Z")


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 (tomli is a dependency there)
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({' '.join(str(exc).split())}).") from None


# ------------------------------------------------------------------ checks: one line naming file, key, what is allowed


def _fail(where: str, key: str, value: Any, allowed: str) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(f"{where}: {key} = {shown} is not allowed: {allowed}.")


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, key, value, "give a non-empty string")
    return value


def _strings(where: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(where, key, value, 'give a non-empty list of names, e.g. ["gan-mlp", "vae-mlp"]')
    return value


def _boolean(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, key, value, "give true or false")
    return value


def _whole(low: int, high: int) -> Callable[[str, str, Any], int]:
    def check(where: str, key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _fail(where, key, value, f"give a whole number from {low} to {high}")
        return value

    return check


def _positive_number(where: str, key: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise _fail(where, key, value, "give a finite number, 0 or more")
    return value


def _seeds(where: str, key: str, value: Any) -> list[int]:
    ok = isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32
                                                   for s in value)
    if not ok or len(set(value)) != len(value):
        raise _fail(where, key, value, "give a list of different whole numbers from 0 to 2**32-1, e.g. [0, 1, 2]")
    return value


def _device(where: str, key: str, value: Any) -> str:
    if value not in ("auto", "cpu", "cuda"):
        raise _fail(where, key, value, 'give "auto", "cpu" or "cuda"')
    return value


#: keys of the settings tables that set options of ``genbench run`` (and :func:`genbench.run`), and their checks
RUN_KEYS: dict[str, Callable[[str, str, Any], Any]] = {
    "models": _strings, "all": _boolean, "tasks": _strings, "profile": _string, "seeds": _seeds,
    "device": _device, "out": _string, "jobs": _whole(1, 1024),
}
COMPARE_KEYS = ("fail_on_regression", "allow_incomparable")
PROFILE_KEYS = ("based_on", "samples", "steps", "batch_sizes", "timing")


# ------------------------------------------------------------------ user-defined profiles


@dataclass(frozen=True)
class UserProfile:
    """A profile defined in a settings file: ``based_on`` a built-in profile, with some of its settings
    overridden. ``samples``: samples scored per job (capped by the training split, as always); ``steps``:
    every model's training steps (``None``: each model's own for the base profile); ``batch_sizes``: the
    batch sizes timed; ``timing``: fields of :class:`genbench.perf.TimingPolicy` (each forward
    measurement's warm-up, minimum calls and seconds, cap, rounds)."""

    name: str
    based_on: str
    samples: int | None = None
    steps: int | None = None
    batch_sizes: tuple[int, ...] | None = None
    timing: Mapping[str, float] = field(default_factory=dict)
    source: str = ""  # the file that defined it

    def derive(self, base: Any) -> Any:
        """The :class:`genbench.config.Profile` this profile makes of its base."""
        timing = dataclasses.replace(base.timing, **dict(self.timing))
        return dataclasses.replace(base, name=self.name, timing=timing,
                                   max_samples=self.samples if self.samples is not None else base.max_samples,
                                   batch_sizes=self.batch_sizes or base.batch_sizes,
                                   description=f"user profile from {self.source or 'settings'}, based on {self.based_on}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "based_on": self.based_on, "samples": self.samples, "steps": self.steps,
                "batch_sizes": list(self.batch_sizes) if self.batch_sizes else None, "timing": dict(self.timing),
                "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "UserProfile":
        """Read back what :meth:`to_dict` wrote (e.g. a run's ``config.user_profile``), checked again."""
        where = f"user profile {data.get('name')!r}" if isinstance(data, Mapping) else "user profile"
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table of settings.")
        body = {k: v for k, v in data.items() if k in PROFILE_KEYS and v is not None}
        return _profile(where, str(data.get("name")), {**body, "batch_sizes": list(body["batch_sizes"])}
                        if "batch_sizes" in body else body, str(data.get("source") or ""))


def _timing_fields() -> dict[str, Callable[[str, str, Any], Any]]:
    """The TimingPolicy fields a profile may set, each with its check (numbers; counts are whole numbers)."""
    from .perf import TimingPolicy

    checks: dict[str, Callable[[str, str, Any], Any]] = {}
    for f in dataclasses.fields(TimingPolicy):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if "float" in kind and "None" not in kind:
            checks[f.name] = _positive_number
        elif kind == "int":
            checks[f.name] = _whole(1, 10**9)
    return checks


def _profile(where: str, name: str, body: Any, source: str) -> UserProfile:
    if not _NAME.match(name):
        raise _fail(where, "profile name", name, "use lower-case letters, digits, '-' and '_'")
    if name in BUILT_IN_PROFILES:
        raise _fail(where, f"profiles.{name}", name, f"the built-in profiles ({', '.join(BUILT_IN_PROFILES)}) cannot "
                                                     "be redefined; give yours another name and based_on = "
                                                     f'"{name}"')
    if not isinstance(body, Mapping):
        raise _fail(where, f"profiles.{name}", body, "give a table, e.g. [profiles.quick] based_on = \"default\"")
    key = f"profiles.{name}"
    unknown = [k for k in body if k not in PROFILE_KEYS]
    if unknown:
        raise _fail(where, f"{key}.{unknown[0]}", body[unknown[0]], f"a profile takes {', '.join(PROFILE_KEYS)}")
    if body.get("based_on") not in BUILT_IN_PROFILES:
        raise _fail(where, f"{key}.based_on", body.get("based_on"), 'give "smoke" or "default" (required)')
    samples = _whole(1, 10**7)(where, f"{key}.samples", body["samples"]) if "samples" in body else None
    steps = _whole(0, 10**9)(where, f"{key}.steps", body["steps"]) if "steps" in body else None
    batches = None
    if "batch_sizes" in body:
        value = body["batch_sizes"]
        if not isinstance(value, list) or not value or not all(
                isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 65536 for b in value):
            raise _fail(where, f"{key}.batch_sizes", value, "give a list of whole numbers from 1 to 65536, e.g. [1, 64]")
        batches = tuple(value)
    timing: dict[str, float] = {}
    raw = body.get("timing", {})
    if not isinstance(raw, Mapping):
        raise _fail(where, f"{key}.timing", raw, "give a table, e.g. [profiles.NAME.timing] min_seconds = 0.2")
    allowed = _timing_fields()
    for k, v in raw.items():
        if k not in allowed:
            raise _fail(where, f"{key}.timing.{k}", v, f"timing takes {', '.join(allowed)}")
        timing[k] = allowed[k](where, f"{key}.timing.{k}", v)
    return UserProfile(name, body["based_on"], samples, steps, batches, timing, source)


# ------------------------------------------------------------------ the files


@dataclass(frozen=True)
class SettingsFile:
    """One file read: where, which table (``tool.genbench`` in a pyproject.toml, else the whole file), and
    that table's content."""

    path: Path
    table: str | None
    content: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "table": self.table, "content": _jsonable(self.content)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def read_file(path: str | Path) -> SettingsFile | None:
    """The genbench settings in ``path`` (a ``genbench.toml``, or a ``pyproject.toml`` whose ``[tool.genbench]``
    table is read; None when it has none), every key checked."""
    path = Path(path).resolve()
    data = _read_toml(path)
    if path.name == PYPROJECT:
        tool = data.get("tool", {})
        if not isinstance(tool, Mapping) or "genbench" not in tool:
            return None
        table, content = "tool.genbench", tool["genbench"]
        where = f"{path} [tool.genbench]"
    else:
        table, content, where = None, data, str(path)
    if not isinstance(content, Mapping):
        raise ConfigError(f"{where}: must be a table of settings.")
    allowed = (*RUN_KEYS, "profiles", "compare")
    for key, value in content.items():
        if key in RUN_KEYS:
            RUN_KEYS[key](where, key, value)
        elif key == "profiles":
            if not isinstance(value, Mapping):
                raise _fail(where, "profiles", value, "give tables, e.g. [profiles.quick]")
            for name, body in value.items():
                _profile(where, str(name), body, str(path))
        elif key == "compare":
            _compare_table(where, value)
        else:
            raise _fail(where, key, value, f"unknown key; the keys are {', '.join(allowed)}")
    return SettingsFile(path, table, content)


def _compare_table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, "compare", value, 'give a table, e.g. [compare] fail_on_regression = "fd:5%"')
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == "fail_on_regression":
            if isinstance(v, Mapping):  # {fd = "5%", latency_p50 = "10%"}
                if not v or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v.values()):
                    raise _fail(where, "compare.fail_on_regression", v, 'give limits such as {fd = "5%", nll = 0.1}')
                out[k] = ",".join(f"{metric}:{limit}" for metric, limit in v.items())
            else:
                out[k] = _string(where, "compare.fail_on_regression", v)
        elif k == "allow_incomparable":
            out[k] = _boolean(where, "compare.allow_incomparable", v)
        else:
            raise _fail(where, f"compare.{k}", v, f"compare takes {', '.join(COMPARE_KEYS)}")
    return out


@dataclass(frozen=True)
class Settings:
    """The settings files found, the highest precedence first (``genbench.toml``, then ``pyproject.toml``)."""

    files: tuple[SettingsFile, ...] = ()

    def get(self, key: str) -> tuple[Any, SettingsFile | None]:
        """``key``'s value from the first file that sets it, and that file."""
        for f in self.files:
            if key in f.content:
                return f.content[key], f
        return None, None

    def profiles(self) -> dict[str, UserProfile]:
        """Every user-defined profile by name; a name in several files is the highest-precedence file's."""
        found: dict[str, UserProfile] = {}
        for f in reversed(self.files):
            where = f"{f.path}" + (f" [{f.table}]" if f.table else "")
            for name, body in (f.content.get("profiles") or {}).items():
                found[name] = _profile(where, str(name), body, str(f.path))
        return found

    def profile(self, name: str) -> UserProfile | None:
        """The user profile ``name``; None for a built-in one; an error naming the choices otherwise."""
        if name in BUILT_IN_PROFILES:
            return None
        profiles = self.profiles()
        if name not in profiles:
            from .registry import suggest

            mine = f"; profiles defined in {', '.join(str(f.path) for f in self.files)}: " \
                   f"{', '.join(profiles) or 'none'}" if self.files else \
                f" (define one as [profiles.{name}] in {SETTINGS_FILE})"
            raise ConfigError(f"Unknown profile '{name}'.{suggest(name, [*BUILT_IN_PROFILES, *profiles])} Use "
                              f"{' or '.join(BUILT_IN_PROFILES)}{mine}.")
        return profiles[name]

    def run_options(self, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``given`` (run()'s arguments; None or empty: not given) completed from the files, and which file
        each completed option came from."""
        options, used = dict(given), {}
        selection = ("models", "all")
        if not (given.get("models") or given.get("all")):
            for key in selection:
                value, source = self.get(key)
                if value is not None:
                    options[key], used[key] = (tuple(value) if key == "models" else value), str(source.path)
        for key in RUN_KEYS:
            if key in selection or key not in options:
                continue
            if key == "seeds" and given.get("seed") is not None:
                continue  # --seed given: the file's seeds do not apply
            if options.get(key) in (None, (), []):
                value, source = self.get(key)
                if value is None:
                    continue
                if key == "out":  # relative to the file's directory
                    value = str(source.path.parent / value)
                options[key], used[key] = (tuple(value) if isinstance(value, list) else value), str(source.path)
        return options, used

    def compare_options(self, gates: str | None, allow_incomparable: bool | None) -> tuple[str | None, bool, list[str]]:
        """``genbench compare``'s gate and ``--allow-incomparable``: the flags', else the files'; with a note
        naming the file for each taken from one."""
        notes = []
        table, source = self.get("compare")
        where = str(source.path) if source else ""
        values = _compare_table(where, table) if table is not None else {}
        if gates is None and "fail_on_regression" in values:
            gates = values["fail_on_regression"]
            notes.append(f"note: --fail-on-regression {gates!r} from {where}")
        if allow_incomparable is None:
            allow_incomparable = bool(values.get("allow_incomparable", False))
            if values.get("allow_incomparable"):
                notes.append(f"note: --allow-incomparable from {where}")
        return gates, bool(allow_incomparable), notes

    def record(self, used: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """What run.json keeps (``config.settings``): each file read with its genbench table, and which file
        gave each option that was not given as a flag; None when no file was read."""
        if not self.files:
            return None
        return {"files": [f.to_dict() for f in self.files], "used": dict(used or {})}


def env_number(name: str, default: float, what: str, zero: bool = False) -> float:
    """The number in environment variable ``name`` (``default`` when unset or empty): finite and above 0 (or
    0 too with ``zero``); anything else is a one-line :class:`ConfigError` naming the variable and ``what``
    it holds (e.g. ``"a size in MiB"``)."""
    import os

    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        shown = repr(raw) if len(raw) <= 40 else repr(raw[:37] + "...")
        raise ConfigError(f"${name}={shown} is not allowed: give {what}, {'0 or more' if zero else 'above 0'} "
                          "(or unset it).")
    return value


def load_settings(where: str | Path | bool | None = True) -> Settings:
    """The settings files for a run: ``genbench.toml`` and ``pyproject.toml`` (its ``[tool.genbench]``) in the
    working directory (``True``/``None``) or in the directory ``where``; ``where`` may also name one such file;
    ``False`` reads none."""
    if where is False:
        return Settings()
    base = Path.cwd() if where in (True, None) else Path(where)  # type: ignore[arg-type]
    if base.is_file():
        found = read_file(base)
        return Settings((found,) if found else ())
    files = []
    for name in (SETTINGS_FILE, PYPROJECT):
        path = base / name
        if path.is_file():
            found = read_file(path)
            if found is not None:
                files.append(found)
    return Settings(tuple(files))


__all__ = ["BUILT_IN_PROFILES", "PYPROJECT", "RUN_KEYS", "SETTINGS_FILE", "Settings", "SettingsFile", "UserProfile",
           "env_number", "load_settings", "read_file"]
