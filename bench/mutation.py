"""Mutation testing of the gateway's pure core modules against the unit tests that cover them.

Run by hand, outside CI's time budget (a few minutes per module on 2 cores):

    .venv-test/bin/pip install 'mutmut>=3.8'
    .venv-test/bin/python bench/mutation.py [--module query ...] [--jobs 2] [--source DIR] [--survivors] [--keep]

Each module is tested in a copy of the tree in a temporary folder (the project itself is never written to),
against its own unit test files only (TARGETS), in two passes:

1. mutmut mutates every function and method body; its settings go into the copy's pyproject.toml.
2. mutmut leaves module and class level code alone: constants, enum values, dataclass defaults, regexes.
   This script mutates those statements with mutmut's own operators and runs the same test files once per
   mutant, in a child forked from a process that has pytest and pydicom imported and that imports the
   mutated module fresh. Not mutated there: docstrings, imports, ``__all__``, TypeVars, type aliases
   (read by type checkers only) and the module logger.

Counting: a mutant is killed when its tests fail (an error or a crash counts), timeout counts as killed,
survived when they pass; a mutant that no selected test reaches (mutmut's "no tests") counts as survived.
score = (killed + timeout) / (killed + timeout + survived). Mutants in EQUIVALENT (they cannot change
behaviour) are left out of those counts and listed apart (--survivors); "raw" is the score with them counted
as survivors. An EQUIVALENT entry that matches no mutant, or one the tests kill, is reported (a "!" line).
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    path: str  # relative to the tree's root
    tests: tuple[str, ...]  # the unit test files that cover it; missing ones are left out


TARGETS = (
    Target("query", "dicomrst/dicomweb/query.py",
           ("tests/unit/test_qido_query.py", "tests/unit/test_query_mutants.py")),
    Target("multipart_reader", "dicomrst/dicomweb/multipart_reader.py",
           ("tests/unit/test_multipart_reader.py", "tests/unit/test_multipart_reader_mutants.py")),
    Target("accept", "dicomrst/dicomweb/accept.py",
           ("tests/unit/test_media.py", "tests/unit/test_wado_media.py", "tests/unit/test_media_mutants.py")),
    Target("negotiation", "dicomrst/dicomweb/negotiation.py",
           ("tests/unit/test_media.py", "tests/unit/test_wado_media.py", "tests/unit/test_media_mutants.py")),
    Target("spool", "dicomrst/backends/dimse/spool.py",
           ("tests/unit/test_spool.py", "tests/unit/test_runtime_files.py")),
)

# Equivalent mutants: (scope, the mutated line(s) as the mutant shows them, why no test can tell).
# The scope is the function ("_collect", "MediaRange.matches") or the module or class level name.
EQUIVALENT: dict[str, list[tuple[str, str, str]]] = {
    "query": [
        ("_collect", 'collected.matches[path] = (key, None if (vr == "SQ") and False else _match_value(key, vr, raw))',
         "a sequence's value is empty here (one with a value was refused above), and _match_value gives None "
         "for an empty value too"),
        ("_collect", 'collected.matches[path] = (key, None if vr == "XXSQXX" else _match_value(key, vr, raw))',
         "as above: _match_value gives None for the sequence's empty value"),
        ("_collect", 'collected.matches[path] = (key, None if vr == "sq" else _match_value(key, vr, raw))',
         "as above: _match_value gives None for the sequence's empty value"),
        ("_vr", "def _vr(tag: int, matching: bool = True) -> str:",
         "only _resolve_path relies on the default, to ask whether a tag is SQ: a private tag reads LO or UN "
         "then, and neither is SQ (vr_of passes matching on)"),
        ("_vr", "return dictionary_VR(tag).split(None)[0]",
         "ambiguous dictionary VRs read 'US or SS' with single spaces: the first word either way"),
        ("_CONTROL_RE", '_CONTROL_RE = re.compile(r"[\\x00-\\x1F\\x7F]")', "hex digits of a regex escape are case-insensitive"),
    ],
    "multipart_reader": [
        ("_parse_headers", 'headers[name.strip().decode("LATIN-1").lower()] = value.strip().decode("latin-1")',
         "codec names are case-insensitive"),
        ("_parse_headers", 'headers[name.strip().decode("latin-1").lower()] = value.strip().decode("LATIN-1")',
         "codec names are case-insensitive"),
        ("MultipartReader.__init__", 'encoded = boundary.encode("LATIN-1")', "codec names are case-insensitive"),
        ("_parse_headers", "break",
         "a header block never holds an empty line: it ends at the first one, and _headers answers a part "
         "that starts with one before"),
        ("MultipartReader._headers", "if end > 0:", "end is never 0: a buffer that starts with CRLF is answered before"),
        ("MultipartReader._headers", "if end >= 1:", "end is never 0: a buffer that starts with CRLF is answered before"),
        ("MultipartReader._skip_preamble", "if at == 0 or (at >= 0 and data.data[at - 2:at] == CRLF):",
         "at == 0 is the left operand of the `or` already"),
        ("MultipartReader._skip_preamble", "if at == 0 or (at > 1 and data.data[at - 2:at] == CRLF):",
         "at == 1 slices data[-1:1], which is empty (the delimiter follows), never CRLF"),
        ("MultipartReader._skip_preamble", "start = None", "find(x, None) starts at 0 as find(x, 0) does"),
        ("MultipartReader._skip_preamble", "if at >= 0:", "at == 0 has returned above"),
        ("MultipartReader._skip_preamble", "start = at + 2",
         "a delimiter at at + 1 would need CRLF before it, but data[at] is '-': it is never taken"),
        ("MultipartReader._closing", "line_end = data.data.find(CRLF, None, DELIMITER_LINE_LIMIT)",
         "find(x, None, n) starts at 0 as find(x, 0, n) does"),
        ("_Buffer.__init__", "self.eof = None", "None is falsy like False, and eof is only tested for truth"),
        ("_Buffer.fill", "return True",
         "both returns: no caller calls fill() again once it returned False (each raises or stops), and an "
         "empty read sets eof, so the next call says False with nothing read"),
        ("_Buffer.fill", "self.eof = None", "eof is never consulted: no caller calls fill() again after False"),
        ("_Buffer.fill", "self.eof = False", "eof is never consulted: no caller calls fill() again after False"),
    ],
    "accept": [
        ("negotiate", "ignored = None", "None is falsy like False; the flag is only tested for truth"),
        ("_parse", "return _Accept([], wellformed=False, ignored=True, refused=False)",
         "with no header the ranges are [*/*] in the first pick already: a second pick of [*/*] gives the same"),
        ("_parse", "return _Accept([], wellformed=False, ignored=False, refused=True)",
         "with no header the ranges are [*/*] in the first pick already: skipping a second pick of them changes nothing"),
        ("_parse", "return _Accept(None, wellformed=False, ignored=False, refused=False)",
         "the ranges of a header that is not wellformed are never read ([*/*] is used)"),
        ("_parse", "return _Accept([], wellformed=None, ignored=False, refused=False)", "None is falsy like False"),
        ("_parse", "return _Accept([], wellformed=False, ignored=None, refused=False)", "None is falsy like False"),
        ("_parse", "return _Accept([], wellformed=False, ignored=False, refused=None)", "None is falsy like False"),
        ("_parse", "wellformed = ignored = refused = None",
         "None is falsy like False; each flag is set to True or tested for truth only"),
        ("_parse_media_type", "seen_q = None", "None is falsy like False"),
        ("_parse_media_type", "param = (_PARAM_RE if (weighted) and False else _CONTENT_TYPE_PARAM_RE).fullmatch(raw)",
         "the patterns differ only on an unquoted ',', and an Accept element was split at every one already"),
        ("_split_outside_quotes", "in_quotes = escaped = None", "None is falsy like False, and `not None` is True"),
        ("_split_outside_quotes", "escaped = None", "None is falsy like False"),
        ("_split_outside_quotes", "opened_at = None", "read only when a quote is open, which sets it first"),
        ("_split_outside_quotes", "opened_at = 1", "read only when a quote is open, which sets it first"),
        ("_split_outside_quotes", 'head = "XXXX".join(current)[: opened_at - len(text)]',
         "the piece holding an unterminated quote never parses, whatever comes before the quote in it"),
        ("parse_content_type", "return _parse_media_type(header, weighted=None)", "None is falsy like False"),
        ("_ANY", '_ANY = MediaRange("*", "*", {}, )', "1.0 is MediaRange's default q"),
        ("_Accept", "@dataclass(frozen=None)", "private, built once per header and never changed or hashed"),
        ("_Accept", "@dataclass(frozen=False)", "private, built once per header and never changed or hashed"),
    ],
    "negotiation": [
        ("_choose_bulkdata", "return False",
         "both returns: negotiate_bulkdata only needs a choice that is not None, and drops its value"),
        ("_choose_frames", 'explicit_raw = media_range.params.get("transfer-syntax", "XXXX").strip() == EXPLICIT_VR_LITTLE_ENDIAN',
         "the default only has to differ from the Explicit VR Little Endian UID, which '' and 'XXXX' both do"),
        ("_choose_qido", 'if _part_type_matches(media_range, "APPLICATION/DICOM+XML"):',
         "MediaRange.matches lower-cases the media type it is given"),
        ("_instance_representation", "ignored = None", "None is falsy like False; the flag is only tested for truth"),
        ("_part_pattern", "raise Ignored(None)", "nothing reads the value an _Ignored carries"),
        ("_transfer_syntax", "raise Ignored(None)", "nothing reads the value an _Ignored carries"),
    ],
    "spool": [],
}

KILLED, SURVIVED, TIMEOUT = "killed", "survived", "timeout"


@dataclass
class Mutant:
    name: str
    scope: str
    before: str
    after: str
    status: str  # killed, survived, timeout
    detail: str = ""  # mutmut's own status when it is not plain
    excluded: str = ""  # the reason, when equivalent


# ------------------------------------------------------------------------------------------- helpers


def _copy_tree(source: Path, work: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "mutants")
    shutil.copytree(source / "dicomrst", work / "dicomrst", ignore=ignore)
    shutil.copytree(source / "tests", work / "tests", ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml"):
        if (source / name).exists():
            shutil.copy2(source / name, work / name)


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def _write_mutmut_config(work: Path, target: Target, tests: list[str]) -> None:
    pyproject = work / "pyproject.toml"
    text = pyproject.read_text() if pyproject.exists() else ""
    text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)  # ours only, should the tree have one
    text += f"""

[tool.mutmut]
source_paths = ["dicomrst"]
only_mutate = {_toml_list([target.path])}
pytest_add_cli_args_test_selection = {_toml_list(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly"]
use_git_change_detection = false
"""
    pyproject.write_text(text)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


def _changed_lines(before: str, after: str) -> tuple[str, str]:
    old, new = before.splitlines(), after.splitlines()
    removed, added = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag != "equal":
            removed += [line.strip() for line in old[i1:i2]]
            added += [line.strip() for line in new[j1:j2]]
    return "\n".join(removed), "\n".join(added)


# ---------------------------------------------------------------------------------- pass 1: mutmut


_MUTMUT_STATUS = {1: KILLED, 3: KILLED, 0: SURVIVED, 5: SURVIVED, 33: SURVIVED, 35: SURVIVED,
                  36: TIMEOUT, 24: TIMEOUT, -24: TIMEOUT, 152: TIMEOUT, 255: TIMEOUT, -11: KILLED, -9: KILLED}
_MUTMUT_DETAIL = {5: "no tests", 33: "no tests", 35: "suspicious", -11: "crashed", -9: "crashed"}


def _mutmut_scope(name: str, module: str) -> str:
    mangled = name[len(module) + 1:].rsplit("__mutmut_", 1)[0]
    if mangled.startswith("x\u01c1"):
        return ".".join(mangled[2:].split("\u01c1"))
    return mangled[2:] if mangled.startswith("x_") else mangled


def _run_mutmut(work: Path, target: Target, jobs: int) -> list[Mutant]:
    module = target.path[:-3].replace("/", ".")
    with open(work / "mutmut.log", "w") as log:
        result = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
                                cwd=work, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    meta = work / "mutants" / (target.path + ".meta")
    if result.returncode != 0 or not meta.exists():
        tail = (work / "mutmut.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"mutmut failed for {target.path} (exit {result.returncode}):\n{tail}")
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    mutants = []
    for name, code in sorted(exit_codes.items()):
        if code is None:
            raise RuntimeError(f"mutmut did not check {name}")
        status = _MUTMUT_STATUS.get(code, SURVIVED)
        detail = _MUTMUT_DETAIL.get(code, "" if code in _MUTMUT_STATUS else f"exit code {code}")
        mutants.append(Mutant(name, _mutmut_scope(name, module), "", "", status, detail))
    return mutants


def _describe_mutmut(work: Path, mutants: list[Mutant]) -> None:
    """The changed lines of each mutant, from `mutmut show` (only for those the report needs)."""
    for mutant in mutants:
        shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant.name], cwd=work, env=_env(),
                               capture_output=True, text=True).stdout
        lines = shown.splitlines()
        removed = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
        added = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
        mutant.before, mutant.after = "\n".join(removed), "\n".join(added)


# ------------------------------------------------------------------- pass 2: module and class level


def _scope_mutants(source: str, module: str) -> list[dict[str, str]]:
    """Mutants of the statements outside functions, made with mutmut's operators."""
    import libcst as cst
    from mutmut.mutation.mutators import mutation_operators

    tree = cst.parse_module(source)
    statements: list[tuple[str, cst.CSTNode]] = []

    def skipped(small: cst.CSTNode) -> bool:
        if isinstance(small, (cst.Import, cst.ImportFrom, cst.Expr, cst.Pass)):
            return True  # imports and docstrings
        if isinstance(small, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            if any(isinstance(t, cst.Name) and t.value == "__all__" for t in targets):
                return True
            value = small.value
            if value is None or isinstance(value, cst.Subscript):
                return True  # annotations and type aliases
            if isinstance(value, cst.Call):
                called = tree.code_for_node(value.func)
                if called in ("TypeVar", "logging.getLogger"):
                    return True
        return False

    def name_of(small: cst.CSTNode, default: str) -> str:
        if isinstance(small, cst.Assign) and isinstance(small.targets[0].target, cst.Name):
            return small.targets[0].target.value
        if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
            return small.target.value
        return default

    def collect(body: list[cst.CSTNode], prefix: str, default: str) -> None:
        for statement in body:
            if isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if not skipped(small):
                        statements.append((prefix + name_of(small, default), small))
            elif isinstance(statement, cst.ClassDef):
                for decorator in statement.decorators:
                    statements.append((prefix + statement.name.value, decorator))
                if isinstance(statement.body, cst.IndentedBlock):
                    collect(list(statement.body.body), f"{prefix}{statement.name.value}.", "<class>")
            # functions are mutmut's; compound statements at module level are left alone

    collect(list(tree.body), "", "<module>")

    class Collector(cst.CSTVisitor):
        def __init__(self) -> None:
            self.nodes: list[cst.CSTNode] = []

        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.Annotation):
                return False
            self.nodes.append(node)
            return True

    mutants = []
    for scope, statement in statements:
        collector = Collector()
        statement.visit(collector)
        original = tree.code_for_node(statement)
        for node in collector.nodes:
            for node_type, operator in mutation_operators:
                if not isinstance(node, node_type):
                    continue
                for mutated in operator(node):
                    new_statement = statement.deep_replace(node, mutated)
                    before, after = _changed_lines(original, tree.code_for_node(new_statement))
                    if not after and not before:
                        continue
                    mutants.append({
                        "name": f"{module}.<{scope}>_{len(mutants) + 1}",
                        "scope": scope, "before": before, "after": after,
                        "source": tree.deep_replace(statement, new_statement).code,
                    })
    return mutants


def _run_scope_pass(work: Path, target: Target, tests: list[str], jobs: int) -> list[Mutant]:
    source = (work / target.path).read_text()
    module = target.path[:-3].replace("/", ".")
    specs = _scope_mutants(source, module)
    job = {"module": module, "file": str(work / target.path), "tests": tests, "jobs": jobs, "mutants": specs}
    (work / "scope-job.json").write_text(json.dumps(job))
    with open(work / "scope.log", "w") as log:
        result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--scope-runner",
                                 str(work / "scope-job.json")], cwd=work, env=_env(), stdout=log,
                                stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"the module level pass failed for {target.path}:\n"
                           + (work / "scope.log").read_text(errors="replace")[-3000:])
    statuses = json.loads((work / "scope-results.json").read_text())
    return [Mutant(spec["name"], spec["scope"], spec["before"], spec["after"], statuses[spec["name"]])
            for spec in specs]


def _scope_runner(job_file: str) -> None:
    """In the copy: fork a child per mutant that imports the mutated module and runs the tests."""
    import importlib.abc
    import importlib.util

    job = json.loads(Path(job_file).read_text())
    work = Path(job_file).parent
    sys.path.insert(0, str(work))
    import pytest
    import hypothesis  # noqa: F401
    import pydicom
    import pydicom.datadict  # noqa: F401

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def __init__(self, name: str, source: str, filename: str) -> None:
            self.name, self.source, self.filename = name, source, filename

        def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
            if fullname != self.name:
                return None
            return importlib.util.spec_from_loader(fullname, self, origin=self.filename)

        def create_module(self, spec):  # type: ignore[no-untyped-def]
            return None

        def exec_module(self, module):  # type: ignore[no-untyped-def]
            module.__file__ = self.filename
            exec(compile(self.source, self.filename, "exec"), module.__dict__)

    def start(source: str | None) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 3
        try:
            os.chdir(work)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            if source is not None:
                sys.meta_path.insert(0, Finder(job["module"], source, job["file"]))
            code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *job["tests"]]))
        finally:
            os._exit(code)

    began = time.monotonic()
    _, status = os.waitpid(start(None), 0)
    baseline = time.monotonic() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the tests fail without any mutant: {job['tests']}")
    limit = max(30.0, baseline * 10)
    print(f"clean run {baseline:.1f}s; timeout {limit:.0f}s", flush=True)

    results: dict[str, str] = {}
    running: dict[int, tuple[str, float]] = {}
    pending = list(job["mutants"])

    def reap(block: bool) -> None:
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                name, _ = running.pop(pid)
                results.setdefault(name, SURVIVED if os.waitstatus_to_exitcode(status) == 0 else KILLED)
                continue
            now = time.monotonic()
            for child, (name, started) in list(running.items()):
                if now - started > limit and name not in results:
                    results[name] = TIMEOUT
                    os.kill(child, signal.SIGKILL)
            if not block:
                return
            time.sleep(0.01)
            if len(running) < job["jobs"] and pending:
                return

    while pending:
        while len(running) >= job["jobs"]:
            reap(block=True)
        spec = pending.pop(0)
        running[start(spec["source"])] = (spec["name"], time.monotonic())
    while running:
        reap(block=True)
    (work / "scope-results.json").write_text(json.dumps(results))


# ---------------------------------------------------------------------------------------- report


def _apply_exclusions(target: Target, mutants: list[Mutant]) -> list[str]:
    problems = []
    for scope, after, reason in EQUIVALENT.get(target.name, []):
        matched = [m for m in mutants if m.scope == scope and m.after == after.strip()]
        if not matched:
            problems.append(f"stale exclusion (no such mutant): {scope}: {after}")
        for mutant in matched:
            if mutant.status == SURVIVED:
                mutant.excluded = reason
            else:
                problems.append(f"exclusion of a mutant the tests {mutant.status}: {scope}: {after}")
    return problems


def _counts(mutants: list[Mutant]) -> dict[str, int]:
    kept = [m for m in mutants if not m.excluded]
    counts = {status: sum(m.status == status for m in kept) for status in (KILLED, SURVIVED, TIMEOUT)}
    counts["total"] = len(kept)
    counts["excluded"] = len(mutants) - len(kept)
    return counts


def _score(counts: dict[str, int]) -> float:
    return 100.0 * (counts[KILLED] + counts[TIMEOUT]) / counts["total"] if counts["total"] else 0.0


def _raw_score(counts: dict[str, int]) -> float:
    """The score with the excluded mutants counted as survivors."""
    tested = counts["total"] + counts["excluded"]
    return 100.0 * (counts[KILLED] + counts[TIMEOUT]) / tested if tested else 0.0


HEADER = (f"{'module':<40} {'killed':>6} {'survived':>8} {'timeout':>7} {'total':>6} {'excluded':>8}  "
          f"{'score':>6}  {'raw':>6}    time")


def _line(label: str, counts: dict[str, int], seconds: float | None = None) -> str:
    took = f"  {seconds:6.0f}s" if seconds is not None else ""
    return (f"{label:<40} {counts[KILLED]:>6} {counts[SURVIVED]:>8} {counts[TIMEOUT]:>7} {counts['total']:>6} "
            f"{counts['excluded']:>8}  {_score(counts):5.1f}%  {_raw_score(counts):5.1f}%{took}")


def _show(mutant: Mutant) -> str:
    def indent(text: str, mark: str) -> str:
        return "\n".join(f"        {mark} {line}" for line in text.splitlines())

    detail = f" ({mutant.detail})" if mutant.detail else ""
    shown = f"    {mutant.name} [{mutant.scope}]{detail}\n{indent(mutant.before, '-')}\n{indent(mutant.after, '+')}"
    return shown + (f"\n        ({mutant.excluded})" if mutant.excluded else "")


def _test_module(source: Path, target: Target, tests: list[str], jobs: int,
                 keep: bool) -> tuple[list[Mutant], list[Mutant], list[str]]:
    work = Path(tempfile.mkdtemp(prefix=f"dicomrst-mutation-{target.name}-"))
    try:
        _copy_tree(source, work)
        _write_mutmut_config(work, target, tests)
        print(f"{target.path}: mutmut over function bodies; tests {', '.join(tests)}", flush=True)
        function_mutants = _run_mutmut(work, target, jobs)
        print(f"{target.path}: module and class level", flush=True)
        scope_mutants = _run_scope_pass(work, target, tests, jobs)
        _describe_mutmut(work, [m for m in function_mutants if m.status == SURVIVED])
        problems = _apply_exclusions(target, function_mutants + scope_mutants)
    finally:
        if keep:
            print(f"    kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return function_mutants, scope_mutants, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=[t.name for t in TARGETS],
                        help="only this module (repeatable); all four by default")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="mutants tested at once")
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to test (default: this checkout)")
    parser.add_argument("--survivors", action="store_true", help="list surviving and excluded mutants")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (and mutmut's results)")
    parser.add_argument("--scope-runner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scope_runner:
        _scope_runner(args.scope_runner)
        return
    try:
        import libcst  # noqa: F401
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit("needs mutmut 3: .venv-test/bin/pip install 'mutmut>=3.8'") from None

    source = args.source.resolve()
    began = time.monotonic()
    rows: list[str] = []
    everything: list[Mutant] = []
    for target in TARGETS:
        if args.module and target.name not in args.module:
            continue
        tests = [test for test in target.tests if (source / test).exists()]
        if not (source / target.path).exists() or not tests:
            rows.append(f"{target.path:<40} skipped: the module or all of its test files are missing")
            continue
        started = time.monotonic()
        function_mutants, scope_mutants, problems = _test_module(source, target, tests, args.jobs, args.keep)
        mutants = function_mutants + scope_mutants
        everything += mutants
        module_rows = [_line(target.path, _counts(mutants), time.monotonic() - started),
                       _line("  functions (mutmut)", _counts(function_mutants)),
                       _line("  module and class level", _counts(scope_mutants))]
        module_rows += [f"  ! {problem}" for problem in problems]
        rows += module_rows
        print("\n".join([HEADER, *module_rows]), flush=True)
        if args.survivors:
            survivors = [m for m in mutants if m.status == SURVIVED and not m.excluded]
            print("\n".join([f"  survived ({len(survivors)}):", *map(_show, survivors)]))
            excluded = [m for m in mutants if m.excluded]
            print("\n".join([f"  excluded as equivalent ({len(excluded)}):", *map(_show, excluded)]))
        print(flush=True)
    print("score: (killed + timeout) / total, equivalent mutants excluded; raw: with them counted as survivors")
    print(HEADER)
    print("\n".join(rows))
    if everything:
        print(_line("overall", _counts(everything), time.monotonic() - began))


if __name__ == "__main__":
    main()
