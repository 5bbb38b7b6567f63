"""ci/min-versions.txt pins every dependency at the lower bound pyproject.toml declares, so the
minimum-versions job of .ci/run tests exactly those bounds (issue 14)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for items in project["optional-dependencies"].values():
        # bge-vdb[...] inside an extra ('all', 'test' -> docs) adds no version of its own
        reqs += [Requirement(r) for r in items if Requirement(r).name != "bge-vdb"]
    return reqs


def pinned() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "ci" / "min-versions.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_every_lower_bound_is_pinned_and_nothing_else() -> None:
    pins = pinned()
    floors: dict[str, Version] = {}
    problems = []
    for req in declared():
        name = canonicalize_name(req.name)
        ops = {s.operator: Version(s.version) for s in req.specifier}
        if "==" in ops:  # an exact pin is its own lower bound
            continue
        if ">=" not in ops:
            problems.append(f"{req}: no lower bound (declare the lowest version that works)")
            continue
        floors[name] = ops[">="]
        if name not in pins:
            problems.append(f"{req}: missing from ci/min-versions.txt")
        elif pins[name] != ops[">="]:
            problems.append(f"{req}: ci/min-versions.txt pins {pins[name]}")
    problems += [f"ci/min-versions.txt pins {n}, which pyproject.toml does not declare"
                 for n in sorted(set(pins) - set(floors))]
    assert not problems, "\n".join(problems)
    assert len(floors) >= 30


def test_ci_runs_the_minimum_versions_job_and_it_names_a_test_for_every_floor() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    job = (ROOT / "ci" / "min-versions.sh").read_text(encoding="utf-8")
    assert "ci/min-versions.sh" in ci
    assert "ci/min-versions.txt" in job and '-r "$dir/first.txt"' in job
    table = "\n".join(line for line in job.splitlines() if line.startswith("#"))
    missing = [name for name in pinned() if name not in table]
    assert not missing, f"ci/min-versions.sh does not say which tests exercise {missing}"
