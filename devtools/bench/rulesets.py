"""Many rules for the bench: the bundled MSBuild rule again for other binaries.

Elastic ships a family of rules of exactly this shape ("<binary> Process Making Network
Connections", a start then an outbound connection of the same process). Each copy here
keeps the MSBuild rule's query with another binary's name and a rule id of its own, so a
worker running them does the work each real rule of the family costs (its own
prefilter fragment, its own state scope, its own sequences), while the bench still
counts the bundled rule's alerts only: the generated stream's other binaries seldom
match any of these.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from app.engine.rule import DEFAULT_RULE, load_rule

BINARIES = (
    "RegSvr32.exe", "mshta.exe", "rundll32.exe", "cmstp.exe", "RegAsm.exe", "RegSvcs.exe",
    "msxsl.exe", "wmic.exe", "certutil.exe", "bitsadmin.exe", "odbcconf.exe", "Msiexec.exe",
    "xwizard.exe", "ieexec.exe", "PresentationHost.exe", "control.exe", "hh.exe",
    "wscript.exe", "cscript.exe", "forfiles.exe", "pcalua.exe", "SyncAppvPublishingServer.exe",
    "infdefaultinstall.exe", "mavinject.exe", "dnx.exe", "rcsi.exe", "csi.exe", "tracker.exe",
    "vbc.exe", "csc.exe", "jsc.exe", "ilasm.exe", "AddInProcess.exe", "te.exe",
    "Microsoft.Workflow.Compiler.exe", "msdeploy.exe", "dfsvc.exe", "bash.exe",
    "scriptrunner.exe", "appvlp.exe",
)  # fmt: skip
"""Binaries Windows signs that attackers run to proxy execution (LOLBAS)."""


def write_rules(folder: Path, count: int) -> list[Path]:
    """`count` copies of the bundled rule, one binary each, as TOML files in `folder`."""
    if not 0 < count <= len(BINARIES):
        raise ValueError(f"between 1 and {len(BINARIES)} rules, not {count}")
    bundled = load_rule(DEFAULT_RULE)
    source = DEFAULT_RULE.read_text()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for binary in BINARIES[:count]:
        rule_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"seqwatch-bench/{binary}"))
        text = (
            source.replace('"MSBuild.exe"', f'"{binary}"')
            .replace(bundled.name, f"{binary} Making Network Connections")
            .replace(bundled.rule_id, rule_id)
        )
        path = folder / f"{binary.lower().replace('.', '_')}_making_network_connections.toml"
        path.write_text(text)
        written.append(path)
    return written
