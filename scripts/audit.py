"""``make audit``: known vulnerabilities in the project's requirements, where the database can be reached.

It runs ``pip-audit`` over the virtualenv ``make`` built from ``requirements/dev.txt`` (the package's
dependencies, its extras and the project's tools, as resolved and installed; the package itself is
skipped) -- the same set ``pip-audit -r requirements/dev.txt`` resolves in a throwaway virtualenv, in a
quarter of the time.

Exit 1 when a package has a known vulnerability.  Where pip-audit cannot reach its vulnerability
database -- no network, or a package index mirror that answers no vulnerability queries, so that not a
single package could be looked up -- one line says the audit was skipped and why, and it exits 0: a
machine without the database proves nothing either way, and must not fail the lint.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Seconds the whole audit may take before it counts as "database unreachable".
TIMEOUT = 120

PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def skip(reason: str) -> int:
    print(f"audit: skipped, pip-audit cannot reach its vulnerability database here ({reason})")
    return 0


def main() -> int:
    command = [str(PIP_AUDIT), "--skip-editable", "--format", "json", "--progress-spinner", "off"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return skip(f"no answer within {TIMEOUT}s")
    try:
        dependencies = json.loads(done.stdout)["dependencies"]
    except (ValueError, KeyError):  # no report: pip-audit failed before auditing, e.g. a refused connection
        lines = done.stderr.strip().splitlines()
        return skip(lines[-1][:200] if lines else f"pip-audit exited {done.returncode}")
    audited = [dependency for dependency in dependencies if "skip_reason" not in dependency]
    if not audited:
        first = dependencies[0]["skip_reason"] if dependencies else "no packages"
        return skip(f"none of {len(dependencies)} packages could be looked up: {first}")
    vulnerable = [dependency for dependency in audited if dependency.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            print(f"{dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    unaudited = len(dependencies) - len(audited)
    print(
        f"audit: {len(audited)} packages audited, {len(vulnerable)} with known vulnerabilities"
        + (f"; {unaudited} could not be looked up" if unaudited else "")
    )
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
